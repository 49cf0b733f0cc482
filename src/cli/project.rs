//! Finding the project a command is about: its config file, directory and paths, and
//! checking the process names a command was given.
//!
//! Owns: the "no config found", "`-f` names no file" and "unknown process" situations for
//! every command (each a variant of [`Error`]), so `up` and `status` say the same thing.
//! Must not: parse the config when a command only needs the paths (`status`, `logs` and
//! `down` work from the registry and the log files).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context as _;

use super::args::Global;
use crate::config::{self, Config, LoadOptions};
use crate::error::Error;
use crate::paths::Paths;

/// The project located from `-f` or by searching upwards, without validating its config.
pub struct Project {
    /// The config file (absolute).
    pub file: PathBuf,
    pub paths: Paths,
}

fn cwd() -> anyhow::Result<PathBuf> {
    std::env::current_dir().context("cannot read the current directory")
}

/// Find the config file and the project directory.
pub fn locate(global: &Global) -> anyhow::Result<Project> {
    let cwd = cwd()?;
    let file = match &global.file {
        Some(given) => {
            let file = cwd.join(given);
            if !file.is_file() {
                return Err(Error::ConfigFileMissing {
                    given: given.clone(),
                }
                .into());
            }
            file
        }
        None => config::discover(&cwd).ok_or(Error::NoConfig { dir: cwd.clone() })?,
    };
    let file = file.canonicalize().unwrap_or(file);
    let dir = file
        .parent()
        .map_or_else(|| cwd.clone(), std::path::Path::to_path_buf);
    let dir = dir.canonicalize().unwrap_or(dir);
    Ok(Project {
        file,
        paths: Paths::new(&dir),
    })
}

/// Locate, then load and validate the config (a config error maps to exit code 2).
pub fn load(global: &Global) -> anyhow::Result<Config> {
    let project = locate(global)?;
    load_file(&project)
}

/// Load and validate the config of a located project.
pub fn load_file(project: &Project) -> anyhow::Result<Config> {
    let opts = LoadOptions {
        file: Some(project.file.clone()),
        cwd: cwd()?,
        env: invoking_env(),
    };
    config::load(&opts).map_err(|e| Error::Config(e).into())
}

/// Every name in `names` must be `known`; `known` is asked only when a name is missing
/// from `first` (so a command that finds every name in its registry never parses the
/// config).
pub fn check_names(
    file: &std::path::Path,
    names: &[String],
    first: &BTreeSet<String>,
    known: impl FnOnce() -> BTreeSet<String>,
) -> Result<(), Error> {
    let Some(missing) = names.iter().find(|n| !first.contains(*n)) else {
        return Ok(());
    };
    let mut all = first.clone();
    all.extend(known());
    let missing = names
        .iter()
        .skip_while(|n| *n != missing)
        .find(|n| !all.contains(*n));
    match missing {
        None => Ok(()),
        Some(name) => Err(Error::UnknownProcess {
            name: name.clone(),
            file: file.to_path_buf(),
            known: all.into_iter().collect(),
        }),
    }
}

/// The process names a config defines.
pub fn defined(config: &Config) -> BTreeSet<String> {
    config.processes.keys().cloned().collect()
}

/// The environment this command was invoked with (UTF-8 entries only).
pub fn invoking_env() -> std::collections::BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The process names the registry records (`None` if it is missing or unreadable).
pub fn recorded_names(paths: &crate::paths::Paths) -> Option<BTreeSet<String>> {
    match crate::registry::load(&paths.state_file, false) {
        Ok(crate::registry::Loaded::Ok(reg)) => Some(reg.processes.into_keys().collect()),
        _ => None,
    }
}

/// `names` split into those the running stack has (`recorded`: its registry's names) and
/// those it does not. With no names, or no readable registry, every name is the stack's
/// (the supervisor then answers for them).
pub fn split_by_running_stack(
    recorded: Option<&BTreeSet<String>>,
    names: &[String],
) -> (Vec<String>, Vec<String>) {
    match recorded {
        Some(recorded) => names.iter().cloned().partition(|n| recorded.contains(n)),
        None => (names.to_vec(), Vec::new()),
    }
}
