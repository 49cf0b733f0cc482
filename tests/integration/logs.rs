//! Log rotation (collapse or copytruncate, by the supervisor) and `procs logs -f` across rotations
//! and restarts.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::harness::{Project, procs_bin, wait_until};
use crate::lifecycle::pid_of;

const WAIT: Duration = Duration::from_secs(30);
const KIB: u64 = 1024;
/// The line `procs-testd --write-bytes` repeats.
const X_LINE: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn log_path(p: &Project, name: &str) -> PathBuf {
    p.state_dir().join("logs").join(name)
}

fn size(p: &Project, name: &str) -> Option<u64> {
    fs::metadata(log_path(p, name)).ok().map(|m| m.len())
}

fn read(p: &Project, name: &str) -> String {
    fs::read_to_string(log_path(p, name)).unwrap_or_default()
}

/// Wait until `w` is done writing (it touches `done`; its own last line could be lost in
/// a rotation window) and the supervisor has brought `w.log` back under `max`, checking on
/// every look that no third copy ever shows up.
fn wait_for_the_burst_to_be_rotated(p: &Project, max: u64) {
    wait_until("the burst to end and w.log to be rotated", WAIT, || {
        assert!(size(p, "w.log.3").is_none(), "keep: 2 means no w.log.3");
        // Between the truncate (or collapse) and the rename of a rotation, `w.log` is small
        // but `w.log.1` is not there yet: wait for the rotation to be finished too.
        p.path().join("done").exists()
            && size(p, "w.log").is_some_and(|s| s <= max)
            && size(p, "w.log.rotating").is_none()
            && size(p, "w.log.1").is_some()
    });
}

/// Every line of the logs `files` (oldest first) is a fixture line or a `[procs]` event:
/// nothing was garbled.
///
/// A lossless rotation (collapse, the only kind in `procs.log`) cuts the log at a block
/// boundary, not a line boundary: the files are whole lines only once put together, except
/// that the oldest file kept may start mid-line and the last may end mid-line. After a
/// copytruncate, each file is whole lines, except that the last line of a copy may be cut
/// short: a write that was in progress when the copy reached the end of the file (its rest
/// is the copytruncate loss).
fn assert_whole_lines(p: &Project, files: &[&str]) {
    let whole = |name: &str, text: &str, first_may_be_cut: bool| {
        let mut lines: Vec<&str> = text.split('\n').collect();
        let last = lines.pop().unwrap_or_default();
        assert!(X_LINE.starts_with(last), "{name}: unexpected end {last:?}");
        for (i, line) in lines.into_iter().enumerate() {
            if i == 0 && first_may_be_cut {
                continue;
            }
            assert!(
                line == X_LINE || line == "ready" || line.starts_with("[procs] "),
                "{name}: unexpected line {line:?}"
            );
        }
    };
    if read(p, "procs.log").contains("(copytruncate)") {
        for file in files {
            whole(file, &read(p, file), false);
        }
    } else {
        let text: String = files.iter().map(|f| read(p, f)).collect();
        whole(&files.join(" + "), &text, true);
    }
}

#[test]
fn rotation_keeps_at_most_keep_copies_of_about_max_size() {
    // 768 KiB in 4 KiB writes, 5 ms apart: about 12 rotations at 64 KiB.
    let mut p = Project::new().config(
        r#"
processes:
  w:
    command: ["{testd}", "--write-bytes", "786432", "--write-chunk", "4096", "--write-pause", "5",
              "--touch", "done"]
    logs: { max_size: 64KiB, keep: 2 }
"#,
    );
    p.procs(["up"]).success();
    let max = 64 * KIB;
    wait_for_the_burst_to_be_rotated(&p, max);
    // A copy is taken once the supervisor sees the log past `max_size`, so it holds more
    // than `max_size`; by then the writer may have added more. The bound allows three more
    // `max_size` plus one write — about 240 ms at this pace for the supervisor to react, so
    // that a loaded machine (tests run in parallel on 2 cores) does not turn this into a
    // timing assertion — and still proves the 768 KiB burst was split into copies of about
    // `max_size`. A collapse moves whole blocks and leaves the last partial one: up to a
    // block less.
    let block = fs::metadata(log_path(&p, "w.log")).map_or(4 * KIB, |m| {
        use std::os::unix::fs::MetadataExt as _;
        m.blksize()
    });
    for file in ["w.log.1", "w.log.2"] {
        let len = size(&p, file).unwrap_or_else(|| panic!("{file} exists"));
        assert!(
            len > max.saturating_sub(block) && len <= 4 * max + 4 * KIB,
            "{file} is {len} bytes, expected about {max}"
        );
    }
    assert_whole_lines(&p, &["w.log.2", "w.log.1"]);
    assert!(size(&p, "w.log.3").is_none());
    assert!(
        size(&p, "w.log.rotating").is_none(),
        "no rotation left half done"
    );
    let rotations = read(&p, "procs.log").matches("rotated w.log").count();
    assert!(rotations >= 3, "{rotations} rotations");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_burst_faster_than_the_supervisor_is_rotated_without_duplicates() {
    // 4 MiB at full speed: the writer is never throttled, so the supervisor sees the log
    // past its limit only now and then; every invariant except the size of a copy holds.
    let written: u64 = 4 * 1024 * KIB;
    let mut p = Project::new().config(&format!(
        r#"
processes:
  w:
    command: ["{{testd}}", "--write-bytes", "{written}", "--touch", "done"]
    logs: {{ max_size: 64KiB, keep: 2 }}
"#
    ));
    p.procs(["up"]).success();
    wait_for_the_burst_to_be_rotated(&p, 64 * KIB);
    assert!(size(&p, "w.log.1").is_some(), "rotated at least once");
    assert!(size(&p, "w.log.3").is_none());
    assert!(size(&p, "w.log.rotating").is_none());
    let on_disk: u64 = ["w.log", "w.log.1", "w.log.2"]
        .iter()
        .filter_map(|f| size(&p, f))
        .sum();
    let events: u64 = 4 * KIB;
    assert!(
        on_disk <= written + events,
        "{on_disk} bytes on disk for {written} written: something was copied twice"
    );
    assert_whole_lines(&p, &["w.log.2", "w.log.1", "w.log"]);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// `procs logs -f NAME` with its output in a file of the project dir.
fn follow(p: &Project, name: &str) -> (Child, PathBuf) {
    let out = p.path().join(format!("follow-{name}.out"));
    let file = fs::File::create(&out).expect("create the follower's output");
    let child = p
        .command(procs_bin())
        .args(["logs", "-f", "-n", "0", name])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn procs logs -f");
    (child, out)
}

fn ticks(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.rsplit_once("tick ")?.1.parse().ok())
        .collect()
}

#[test]
fn logs_follow_goes_on_across_a_rotation_and_a_restart() {
    let mut p = Project::new().config(
        r#"
processes:
  w:
    command: ["{testd}", "--print-every", "20"]
    logs: { max_size: 16KiB, keep: 2 }
"#,
    );
    p.procs(["up"]).success();
    let (mut child, out) = follow(&p, "w");
    let followed = || fs::read_to_string(&out).unwrap_or_default();
    wait_until("the follower to print a tick", WAIT, || {
        !ticks(&followed()).is_empty()
    });

    // Another writer of the same log (as a grandchild would be) pushes it past 16 KiB in
    // one write; the supervisor rotates it.
    let filler: String = (0..2000).fold(String::new(), |mut acc, i| {
        acc.push_str(&format!("filler {i:05}\n"));
        acc
    });
    fs::OpenOptions::new()
        .append(true)
        .open(log_path(&p, "w.log"))
        .and_then(|mut f| f.write_all(filler.as_bytes()))
        .expect("append filler to w.log");
    wait_until("w.log to be rotated", WAIT, || {
        read(&p, "w.log.1").contains("filler 00000")
    });
    let rotated = read(&p, "w.log.1");
    let last_before = ticks(&rotated).into_iter().max().unwrap_or(0);
    let after = format!("tick {}", last_before + 3);
    wait_until(&format!("the follower to print `{after}`"), WAIT, || {
        followed().contains(&after)
    });
    let text = followed();
    // Every whole line of the copy was printed once (the copy's last line may be cut
    // short if the copy overtook the filler write: see `assert_whole_lines`).
    let (whole, _) = rotated.rsplit_once('\n').unwrap_or_default();
    for line in whole.lines().filter(|l| l.starts_with("filler")) {
        let line = format!("{line}\n");
        assert_eq!(text.matches(&line).count(), 1, "`{line}` exactly once");
    }
    let seen = ticks(&text);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "no line twice, none out of order: {seen:?}"
    );

    let old = pid_of(&p, "w");
    p.procs(["restart", "w"]).success();
    let new = pid_of(&p, "w");
    assert_ne!(old, new);
    wait_until("the follower to show the restart", WAIT, || {
        let text = followed();
        text.contains(&format!("started pid {new}"))
            && text
                .rsplit_once(&format!("started pid {new}"))
                .is_some_and(|(_, rest)| rest.contains("tick 2"))
    });

    child.kill().expect("stop the follower");
    child.wait().expect("reap the follower");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// The numbers of the `n 00000000` lines of `text` (printed by `logs -f` after a prefix).
fn numbered(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| {
            let digits = l.rsplit_once("n ")?.1;
            (digits.len() == 8).then(|| digits.parse().ok())?
        })
        .collect()
}

#[test]
fn a_full_speed_writer_loses_nothing_on_disk_or_in_logs_follow() {
    // 3.3 MB of numbered lines at full speed, in 64 KiB writes, against a 64 KiB limit.
    const LINES: u64 = 300_000;
    let mut p = Project::new().config(&format!(
        r#"
processes:
  w:
    command: ["{{testd}}", "--write-when", "go", "--write-numbered", "{LINES}",
              "--touch", "done"]
    logs: {{ max_size: 64KiB, keep: 100 }}
"#
    ));
    p.procs(["up"]).success();
    let (mut child, out) = follow(&p, "w");
    let followed = || fs::read_to_string(&out).unwrap_or_default();
    // Know that the follower follows before the writer starts: it starts at the end of
    // the log, so a marker appended before it looked would never show; append until one
    // does.
    wait_until("the follower to print a marker", WAIT, || {
        fs::OpenOptions::new()
            .append(true)
            .open(log_path(&p, "w.log"))
            .and_then(|mut f| f.write_all(b"follower, are you there?\n"))
            .expect("append to w.log");
        followed().contains("follower, are you there?")
    });
    fs::write(p.path().join("go"), "").expect("create go");
    wait_until("the burst to end and be rotated", WAIT, || {
        p.path().join("done").exists()
            && size(&p, "w.log").is_some_and(|s| s <= 64 * KIB)
            && size(&p, "w.log.rotating").is_none()
    });
    let all: Vec<u64> = (0..LINES).collect();
    let rotations = read(&p, "procs.log");
    let collapsed = rotations.matches("rotated w.log (collapse)").count();
    let copytruncated = rotations.matches("rotated w.log (copytruncate)").count();
    assert!(collapsed + copytruncated >= 1, "rotated at least once");
    assert!(
        size(&p, "w.log.100").is_none(),
        "nothing dropped: keep is large enough"
    );
    let mut on_disk = String::new();
    for n in (1..=100).rev() {
        on_disk.push_str(&read(&p, &format!("w.log.{n}")));
    }
    on_disk.push_str(&read(&p, "w.log"));
    let on_disk = numbered(&on_disk);
    // The last line on disk (the last one written, unless a copytruncate lost it).
    let last = format!("n {:08}", on_disk.last().copied().unwrap_or_default());
    wait_until("the follower to print the last line on disk", WAIT, || {
        followed().contains(&last)
    });
    let seen = numbered(&followed());
    if copytruncated == 0 {
        assert!(
            on_disk == all,
            "collapse: every line on disk once, in order ({} lines)",
            on_disk.len()
        );
        assert!(
            seen == all,
            "collapse: every line followed once, in order ({} lines)",
            seen.len()
        );
    } else {
        // This temp dir's filesystem has no collapse (or a rotation found less than a
        // block): copytruncate may lose lines, never repeat them.
        assert!(
            on_disk.windows(2).all(|w| w[0] < w[1]),
            "copytruncate ({copytruncated} of {} rotations) repeated lines on disk",
            collapsed + copytruncated
        );
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "copytruncate ({copytruncated} of {} rotations) repeated followed lines",
            collapsed + copytruncated
        );
    }
    child.kill().expect("stop the follower");
    child.wait().expect("reap the follower");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
