//! Finding, reading and merging the configuration files, env files and interpolation.
//!
//! Owns: discovery (`procs.yaml`/`procs.yml` in the working directory or its nearest
//! ancestor, or `-f`), the project directory, reading `procs.yaml` and
//! `procs.override.yaml`, the interpolation sources (the invoking environment over `.env`
//! and the top-level `env_file`s), parsing each file into a located tree (`tree.rs`,
//! serde-saphyr), merging the override on top, and turning every problem validation finds
//! into file, line and column.
//! Must not: mutate the process environment (env files are read by `env_file.rs`), or
//! decide what keys mean (that is `validate/`).
//! Invariants: every problem it reports names the file as the user knows it (relative to
//! the working directory when possible); a YAML syntax error, duplicate key or failed
//! interpolation stops the load before validation, since the tree is then incomplete.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use super::error::{ConfigError, Problem};
use super::model::Config;
use super::site::Site;
use super::tree::{self, Loc, Node, Value};
use super::{env_file, validate};

/// What [`load`](super::load) needs to know about the invocation.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f/--file`, relative to `cwd` unless absolute; `None` = discover.
    pub file: Option<PathBuf>,
    /// The directory procs was invoked in.
    pub cwd: PathBuf,
    /// The invoking environment (highest-priority interpolation source).
    pub env: BTreeMap<String, String>,
}

impl LoadOptions {
    /// Options for the current process: its working directory and environment.
    pub fn from_process(file: Option<PathBuf>) -> std::io::Result<Self> {
        Ok(Self {
            file,
            cwd: std::env::current_dir()?,
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        })
    }
}

/// Names looked for, in order, in each directory.
pub const FILE_NAMES: [&str; 2] = ["procs.yaml", "procs.yml"];
/// Merged on top of the configuration when it sits beside it.
pub const OVERRIDE_FILE_NAME: &str = "procs.override.yaml";
/// Read (when present) before the listed top-level env files.
pub const DOT_ENV: &str = ".env";

/// `procs.yaml` or `procs.yml` in `cwd` or its nearest ancestor.
pub fn discover(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors().find_map(|dir| {
        FILE_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// The source files of one load, for turning locations into problems with snippets.
pub(crate) struct Sources {
    files: Vec<(String, String)>,
}

impl Sources {
    /// The text of every file, the main file first.
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(_, text)| text.as_str())
    }

    /// A problem at `loc` (line 0 = no snippet).
    pub(crate) fn problem(&self, loc: Loc, message: impl Into<String>) -> Problem {
        let (name, text) = self
            .files
            .get(loc.file)
            .map_or((None, ""), |(n, t)| (Some(n.clone()), t.as_str()));
        let source_line = usize::try_from(loc.line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| text.lines().nth(l))
            .map(str::to_owned);
        Problem {
            file: name,
            line: loc.line,
            column: loc.column,
            width: loc.width,
            message: message.into(),
            hint: None,
            source_line,
        }
    }
}

/// Loads, merges, interpolates and validates; see [`super::load`].
pub(crate) fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
    let file = match &opts.file {
        Some(given) => {
            let path = opts.cwd.join(given);
            if !path.is_file() {
                return Err(ConfigError::single(Problem::unlocated(
                    None,
                    format!("configuration file `{}` not found", given.display()),
                )));
            }
            path
        }
        None => discover(&opts.cwd).ok_or_else(|| {
            ConfigError::single(
                Problem::unlocated(
                    None,
                    format!(
                        "no `procs.yaml` found in `{}` or any parent directory",
                        opts.cwd.display()
                    ),
                )
                .with_hint("create a `procs.yaml` in the project directory, or pass `-f FILE`"),
            )
        })?,
    };
    let main_name = display_name(&file, &opts.cwd);
    let file = file.canonicalize().map_err(|e| {
        ConfigError::single(Problem::unlocated(
            Some(main_name.clone()),
            format!("cannot read the configuration file: {e}"),
        ))
    })?;
    let project_dir = file
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let main_text = read_text(&file, &main_name)?;
    let mut sources = Sources {
        files: vec![(main_name, main_text)],
    };
    let override_path = project_dir.join(OVERRIDE_FILE_NAME);
    let override_file = if override_path.is_file() {
        let name = display_name(&override_path, &opts.cwd);
        let text = read_text(&override_path, &name)?;
        sources.files.push((name, text));
        Some(override_path)
    } else {
        None
    };

    // Pass 1: the top-level `env_file`s, read literally (they feed interpolation).
    let mut problems = Vec::new();
    let file_env = top_level_env(&sources, &project_dir, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::new(problems));
    }

    // Pass 2: parse with interpolation, the invoking environment winning.
    let mut props: HashMap<String, String> = file_env.iter().cloned().collect();
    props.extend(opts.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let input = validate::Input {
        project_dir: &project_dir,
        file: file.clone(),
        override_file,
        invoking_env: &opts.env,
        file_env: &file_env,
    };

    // Located trees, and every problem with its file, line and column.
    let root = match located(&sources, Some(&props)) {
        Ok((root, complex_keys)) if complex_keys.is_empty() => root,
        Ok((_, problems)) | Err(problems) => return Err(ConfigError::new(problems)),
    };
    validate::validate(root.to_json(), &input).map_err(|found| {
        ConfigError::new(
            found
                .into_iter()
                .map(|(site, m)| sources.problem(site.resolve(&root), m))
                .collect(),
        )
    })
}

/// Every file parsed into a located tree, merged in order, with the problems that do not
/// stop parsing (complex keys); `Err` with every problem when some file cannot be parsed.
fn located(
    sources: &Sources,
    props: Option<&HashMap<String, String>>,
) -> Result<(Node, Vec<Problem>), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut trees = Vec::new();
    let mut failed = false;
    for (index, (_, text)) in sources.files.iter().enumerate() {
        match tree::parse(text, index, props) {
            Ok((node, complex_keys)) => {
                problems.extend(complex_keys.into_iter().map(|(l, m)| sources.problem(l, m)));
                trees.push(node);
            }
            Err(e) => {
                failed = true;
                problems.push(sources.problem(
                    Loc {
                        file: index,
                        line: e.line,
                        column: e.column,
                        width: 1,
                    },
                    e.message,
                ));
            }
        }
    }
    if failed {
        return Err(problems);
    }
    let mut iter = trees.into_iter();
    let first = iter.next().unwrap_or(Node {
        value: Value::Null,
        loc: Loc::default(),
    });
    Ok((iter.fold(first, Node::merge), problems))
}

fn read_text(path: &Path, name: &str) -> Result<String, ConfigError> {
    std::fs::read(path)
        .map_err(|e| format!("cannot read the configuration file: {e}"))
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| "the configuration file is not valid UTF-8".into())
        })
        .map_err(|m| ConfigError::single(Problem::unlocated(Some(name.to_owned()), m)))
}

/// Reads `.env` (if present) and the top-level `env_file`s of the merged, uninterpolated
/// files, in order (later files win). A YAML error here is ignored: pass 2 reports it.
fn top_level_env(
    sources: &Sources,
    project_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let dot_env = project_dir.join(DOT_ENV);
    if dot_env.is_file() {
        match env_file::read(&dot_env) {
            Ok(v) => vars.extend(v),
            Err(m) => problems.push(Problem::unlocated(Some(DOT_ENV.into()), m)),
        }
    }
    if !sources.texts().any(may_spell_env_file) {
        return vars;
    }
    let Ok((root, _)) = located(sources, None) else {
        return vars;
    };
    for entry in env_file::entries(&root.to_json(), &[]) {
        let full = project_dir.join(&entry.file);
        if full == dot_env {
            continue;
        }
        match env_file::read(&full) {
            Ok(v) => vars.extend(v),
            Err(m) => problems.push(sources.problem(Site::value(entry.path).resolve(&root), m)),
        }
    }
    vars
}

/// Whether `text` could hold an `env_file` key: YAML spells every key out in the text, except
/// through an escape sequence of a double-quoted scalar (`"env\x5ffile"`), which needs a
/// backslash. Most files have neither, which spares pass 1 a whole parse.
fn may_spell_env_file(text: &str) -> bool {
    text.contains("env_file") || text.contains('\\')
}

/// The file name as the user knows it: relative to `cwd` when inside it, `../procs.yaml`
/// when in an ancestor, otherwise the path as found.
fn display_name(file: &Path, cwd: &Path) -> String {
    let canon_file = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    let canon_cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_path_buf());
    if let Ok(rel) = canon_file.strip_prefix(&canon_cwd) {
        return rel.display().to_string();
    }
    if let (Some(dir), Some(name)) = (canon_file.parent(), canon_file.file_name())
        && let Ok(down) = canon_cwd.strip_prefix(dir)
    {
        {
            let ups = down
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .count();
            let mut s = "../".repeat(ups);
            s.push_str(&name.to_string_lossy());
            return s;
        }
    }
    file.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_finds_nearest_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(discover(&sub), None);
        std::fs::write(dir.path().join("procs.yml"), "processes: {}\n").unwrap();
        assert_eq!(discover(&sub), Some(dir.path().join("procs.yml")));
        std::fs::write(dir.path().join("a/procs.yaml"), "processes: {}\n").unwrap();
        assert_eq!(discover(&sub), Some(dir.path().join("a/procs.yaml")));
    }

    #[test]
    fn display_names() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("x/y");
        std::fs::create_dir_all(&sub).unwrap();
        let f = dir.path().join("procs.yaml");
        std::fs::write(&f, "").unwrap();
        assert_eq!(display_name(&f, dir.path()), "procs.yaml");
        assert_eq!(display_name(&f, &sub), "../../procs.yaml");
    }
}
