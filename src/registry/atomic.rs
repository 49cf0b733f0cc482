//! Atomic file replacement: temp file in the same directory → write → fsync → rename →
//! fsync of the directory. A reader sees the old or the new content, never a mix, and a
//! crash at any instruction leaves one of the two on disk.
//!
//! A temp file is named `.tmp-NAME-PID-N` (NAME the target's file name, PID the writer). A
//! writer killed between create and rename leaves one behind; the next durable write of the
//! same target removes those of writers that are gone ([`clean_stale`]), so they never pile
//! up. Invariant: a temp file of a live writer is never removed.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replace `path` with `bytes` (mode 0600). `durable` adds the fsyncs that make the
/// new content survive a power loss; pid files skip them (they can be rebuilt).
pub fn write(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".tmp-{name}-");
    if durable {
        clean_stale(dir, &prefix);
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Remove the temp files `PREFIX<pid>-…` in `dir` whose writer (pid) is no longer alive.
pub fn clean_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let writer = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
        let gone = writer.is_none_or(|pid| crate::platform::stat(pid).is_none());
        if gone {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Open (create) a file for appending, mode 0600.
pub fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_of_gone_writers_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("state.json");
        // A writer that died (no such pid), one of an unparsable name, and one of a live writer.
        let dead = dir.path().join(".tmp-state.json-2147483646-abc");
        let odd = dir.path().join(".tmp-state.json-xyz");
        let live = dir
            .path()
            .join(format!(".tmp-state.json-{}-zzz", std::process::id()));
        let other = dir.path().join(".tmp-other.json-2147483646-abc");
        for p in [&dead, &odd, &live, &other] {
            fs::write(p, b"partial").expect("write");
        }
        write(&target, b"{}", true).expect("write");
        assert_eq!(fs::read(&target).expect("read"), b"{}");
        assert!(
            !dead.exists() && !odd.exists(),
            "leftovers of gone writers are removed"
        );
        assert!(live.exists(), "a live writer's temp file is kept");
        assert!(other.exists(), "another target's temp files are left alone");
    }
}
