//! The user-level index of projects (`$XDG_STATE_HOME/procs/projects.json`), for `procs ls`.
//!
//! Owns: that one file. Many supervisors of different projects may register at once, so
//! every update happens under an exclusive lock on `projects.lock` beside it, and the
//! file itself is replaced atomically, and only when its content changes. Readers do not
//! lock.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::paths;
use crate::registry::atomic;

/// One project with a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub project_dir: PathBuf,
    pub state_dir: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    #[serde(default)]
    projects: Vec<Entry>,
}

fn read(path: &Path) -> Index {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Every registered project (best effort: a missing or unreadable index is empty).
pub fn load() -> Vec<Entry> {
    read(&paths::user_index_file()).projects
}

/// Change the index under its lock.
fn update(change: impl FnOnce(&mut Vec<Entry>)) -> io::Result<()> {
    update_at(&paths::user_index_file(), change)
}

/// [`update`] of the index at `file`.
fn update_at(file: &Path, change: impl FnOnce(&mut Vec<Entry>)) -> io::Result<()> {
    let dir = file.parent().unwrap_or_else(|| Path::new("/tmp"));
    paths::create_private_dir(dir)?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("projects.lock"))?;
    lock.lock()?;
    let before = std::fs::read(file).unwrap_or_default();
    let mut index: Index = serde_json::from_slice(&before).unwrap_or_default();
    change(&mut index.projects);
    let mut bytes = serde_json::to_vec_pretty(&index).map_err(io::Error::other)?;
    bytes.push(b'\n');
    // Every supervisor start registers its project: when it is already there as it is, the
    // file is left alone (a durable write is two fsyncs, on the path of every `up`).
    if bytes == before {
        return Ok(());
    }
    atomic::write(file, &bytes, true)
}

/// Add or refresh a project.
pub fn register(name: &str, project_dir: &Path, state_dir: &Path) -> io::Result<()> {
    let entry = Entry {
        name: name.to_owned(),
        project_dir: project_dir.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
    };
    update(|projects| {
        projects.retain(|e| e.project_dir != entry.project_dir);
        projects.push(entry);
        projects.sort_by(|a, b| a.project_dir.cmp(&b.project_dir));
    })
}

/// Drop projects whose state directory no longer exists.
pub fn prune() -> io::Result<()> {
    update(|projects| projects.retain(|e| e.state_dir.join("state.json").exists()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[test]
    fn registering_a_project_that_is_already_there_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("procs").join("projects.json");
        let entry = Entry {
            name: "demo".to_owned(),
            project_dir: PathBuf::from("/p/demo"),
            state_dir: PathBuf::from("/p/demo/.procs"),
        };
        let add = |e: &Entry| {
            let e = e.clone();
            move |projects: &mut Vec<Entry>| {
                projects.retain(|p| p.project_dir != e.project_dir);
                projects.push(e);
            }
        };
        update_at(&file, add(&entry)).expect("first");
        let inode = std::fs::metadata(&file).expect("index").ino();
        update_at(&file, add(&entry)).expect("again");
        assert_eq!(
            std::fs::metadata(&file).expect("index").ino(),
            inode,
            "an unchanged index is not replaced"
        );
        let renamed = Entry {
            name: "other".to_owned(),
            ..entry
        };
        update_at(&file, add(&renamed)).expect("changed");
        assert_ne!(std::fs::metadata(&file).expect("index").ino(), inode);
        assert_eq!(read(&file).projects, vec![renamed]);
    }
}
