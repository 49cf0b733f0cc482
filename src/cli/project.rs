//! Finding the project a command is about: its config file, directory and paths.

use std::path::PathBuf;

use anyhow::Context as _;

use super::args::Global;
use crate::config::{self, Config, LoadOptions};
use crate::error::{Failure, exit};
use crate::paths::Paths;

/// The project located from `-f` or by searching upwards, without validating its config.
pub struct Project {
    pub paths: Paths,
}

fn cwd() -> anyhow::Result<PathBuf> {
    std::env::current_dir().context("cannot read the current directory")
}

/// Find the config file and the project directory.
pub fn locate(global: &Global) -> anyhow::Result<Project> {
    let cwd = cwd()?;
    let file = match &global.file {
        Some(file) => {
            let file = cwd.join(file);
            if !file.is_file() {
                return Err(Failure::new(
                    exit::USAGE,
                    format!("no config file at `{}`", file.display()),
                )
                .hint("check the path given to -f/--file")
                .into());
            }
            file
        }
        None => config::discover(&cwd).ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                format!(
                    "no procs.yaml in `{}` or any parent directory",
                    cwd.display()
                ),
            )
            .hint("create a procs.yaml (see docs/configuration.md), or pass -f PATH")
        })?,
    };
    let dir = file
        .parent()
        .map_or_else(|| cwd.clone(), std::path::Path::to_path_buf);
    let dir = dir.canonicalize().unwrap_or(dir);
    Ok(Project {
        paths: Paths::new(&dir),
    })
}

/// Load and validate the config (a config error maps to exit code 2).
pub fn load(global: &Global) -> anyhow::Result<Config> {
    let opts = LoadOptions {
        file: global.file.clone(),
        cwd: cwd()?,
        env: invoking_env(),
    };
    Ok(config::load(&opts)?)
}

/// The environment this command was invoked with (UTF-8 entries only).
pub fn invoking_env() -> std::collections::BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
