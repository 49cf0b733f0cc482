//! Time-driven rotation and retention, and the faults around them: `rotate_every` rotating
//! an idle log at the period boundary, `max_age` deleting the copies of an idle project, a
//! supervisor `SIGKILL`ed in the middle of a compression, and `procs logs` / `procs logs -f`
//! reading while the log rotates (and its copies are compressed) under them.
//!
//! The schedule tests shorten the period with `PROCS_TEST_ROTATE_PERIOD_MS` (for tests
//! only): the supervisor's timer, checks and rotations are the production ones, on real
//! time. The SIGKILL test pauses the compression with `PROCS_TEST_COMPRESS_PAUSE_MS` to
//! kill the supervisor inside it.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::harness::{Project, pid_alive, procs_bin, wait_until};

const WAIT: Duration = Duration::from_secs(30);
const PERIOD_VAR: &str = "PROCS_TEST_ROTATE_PERIOD_MS";
const PAUSE_VAR: &str = "PROCS_TEST_COMPRESS_PAUSE_MS";

fn log_path(p: &Project, name: &str) -> PathBuf {
    p.state_dir().join("logs").join(name)
}

fn read(p: &Project, name: &str) -> String {
    fs::read_to_string(log_path(p, name)).unwrap_or_default()
}

fn exists(p: &Project, name: &str) -> bool {
    log_path(p, name).exists()
}

/// A shell loop that waits for `file` in the project dir.
fn wait_for(file: &str) -> String {
    format!("while [ ! -e {file} ]; do sleep 0.01; done")
}

/// Every file of `w.log`'s copies `1..=max` that exists, with any of `suffixes`.
fn copies(p: &Project, max: u32, suffixes: &[&str]) -> Vec<PathBuf> {
    (1..=max)
        .flat_map(|n| suffixes.iter().map(move |s| format!("w.log.{n}{s}")))
        .map(|name| log_path(p, &name))
        .filter(|f| f.exists())
        .collect()
}

/// The numbers of the `n 00000123` lines of `text` (after any `NAME │ ` prefix).
fn numbered(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| {
            let digits = l.rsplit_once("n ")?.1;
            (digits.len() == 8).then(|| digits.parse().ok())?
        })
        .collect()
}

/// Did any rotation of `w.log` fall back to copytruncate (which may lose a line written
/// at that instant, never repeat one)?
fn copytruncated(p: &Project) -> bool {
    read(p, "procs.log").contains("rotated w.log (copytruncate)")
}

/// `numbers` is every number of `0..n` once, in order — or, after a copytruncate, a
/// strictly increasing selection of them.
fn assert_every_line_once(p: &Project, numbers: &[u64], n: u64, what: &str) {
    if copytruncated(p) && n > 0 {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]) && numbers.last() < Some(&n),
            "{what}: copytruncate repeated or reordered lines ({} lines)",
            numbers.len()
        );
    } else {
        assert!(
            numbers == (0..n).collect::<Vec<u64>>(),
            "{what}: expected every line of 0..{n} once, in order; got {} lines, first {:?}, last {:?}",
            numbers.len(),
            numbers.first(),
            numbers.last()
        );
    }
}

#[test]
fn rotate_every_rotates_an_idle_log_at_the_period_boundary() {
    // `w` writes one line and goes idle; once the test creates `go`, one more line.
    let mut p = Project::new().config(&format!(
        "processes:\n  w:\n    command: 'echo first line; {}; echo second line; exec sleep 600'\n    logs: {{ rotate_every: hourly, keep: 5 }}\n",
        wait_for("go")
    ));
    p.procs_env(["up"], &[(PERIOD_VAR, "1500")]).success();
    wait_until("w to write its first line", WAIT, || {
        read(&p, "w.log").contains("first line") || read(&p, "w.log.1").contains("first line")
    });
    // Nothing writes into the log any more: only the boundary's timer can rotate it.
    wait_until(
        "the idle log to be rotated at the next 1.5 s boundary",
        WAIT,
        || read(&p, "w.log.1").contains("first line"),
    );
    assert!(
        !read(&p, "w.log").contains("first line"),
        "the line moved to the copy, not copied"
    );
    fs::write(p.path().join("go"), "").expect("go");
    wait_until(
        "the second line to be rotated at a later boundary",
        WAIT,
        || read(&p, "w.log.1").contains("second line"),
    );
    // The first line's copy shifted behind the second's, and the boundaries in between,
    // with nothing new in the log, made no empty copies.
    let holding = |line: &str| (1..=5).find(|n| read(&p, &format!("w.log.{n}")).contains(line));
    assert!(
        holding("second line") < holding("first line"),
        "the older copy has the higher number"
    );
    for n in 1..=5 {
        let copy = log_path(&p, &format!("w.log.{n}"));
        assert!(
            fs::metadata(&copy).map_or(true, |m| m.len() > 0),
            "{} is empty: an empty log was rotated",
            copy.display()
        );
    }
    let out = p.procs(["logs", "--grep", "line$", "w"]).success();
    assert_eq!(
        out.stdout.matches("first line").count() + out.stdout.matches("second line").count(),
        2,
        "each line once across the copies: {}",
        out.stdout
    );
    assert!(
        out.stdout.find("first line") < out.stdout.find("second line"),
        "{}",
        out.stdout
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn max_age_deletes_the_copies_of_an_idle_project() {
    // One burst rotated into compressed copies, then nothing more is written: only the
    // retention timer can delete the copies once they are over two seconds old (the last
    // rotation's own retention runs while they are new).
    let mut p = Project::new().config(&format!(
        "processes:\n  w:\n    command: '{}; yes 0123456789012345678901234567890123456789 | head -n 5000; touch done; exec sleep 600'\n    logs: {{ max_size: 32KiB, keep: 40, max_age: 2s, compress: true }}\n",
        wait_for("go")
    ));
    p.procs(["up"]).success();
    fs::write(p.path().join("go"), "").expect("go");
    // The copies may come and go between two looks on a loaded machine: the supervisor's
    // log tells that they were made.
    wait_until("the burst to be written and rotated", WAIT, || {
        p.path().join("done").exists() && read(&p, "procs.log").contains("rotated w.log")
    });
    wait_until("every copy of the idle log to be deleted", WAIT, || {
        copies(&p, 40, &["", ".gz", ".idx", ".gz.tmp"]).is_empty()
    });
    assert!(exists(&p, "w.log"), "the live log stays");
    p.procs(["logs", "w"]).success();
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn lowering_keep_deletes_the_copies_above_it_at_the_next_up() {
    // Four chunks, each over max_size, each written once the previous one was rotated
    // (the test says when): four copies with `keep: 10`. The config then says `keep: 1`:
    // the next `up` (which changes nothing else, so no rotation happens) leaves one copy,
    // and `procs logs` shows no line of the others.
    let config = |keep: u32| {
        format!(
            "processes:\n  w:\n    command: 'for c in 1 2 3 4; do {}; yes 0123456789012345678901234567890123456789 | head -n 1000 | sed \"s/^/$$c /\"; done; exec sleep 600'\n    logs: {{ max_size: 32KiB, keep: {keep} }}\n",
            wait_for("go$$c")
        )
    };
    let mut p = Project::new().config(&config(10));
    p.procs(["up"]).success();
    for c in 1..=4 {
        fs::write(p.path().join(format!("go{c}")), "").expect("go");
        wait_until(
            &format!("chunk {c} to be rotated into copy 1"),
            WAIT,
            || {
                copies(&p, 10, &[""]).len() >= c
                    && fs::read_to_string(log_path(&p, "w.log.1")).is_ok_and(|t| {
                        t.lines()
                            .last()
                            .is_some_and(|l| l.starts_with(&format!("{c} ")))
                    })
            },
        );
    }
    p.write_config(&config(1));
    p.procs(["up"]).success();
    wait_until(
        "copies 2.. to be deleted after keep went 10 -> 1",
        WAIT,
        || {
            copies(&p, 10, &["", ".idx"])
                .iter()
                .all(|f| f.ends_with("w.log.1") || f.ends_with("w.log.1.idx"))
        },
    );
    assert!(exists(&p, "w.log.1"), "copy 1 is within keep: 1");
    let shown = p.procs(["logs", "w", "-n", "100000"]).success().stdout;
    let chunks: std::collections::BTreeSet<&str> = shown
        .lines()
        .filter_map(|l| {
            let (chunk, rest) = l.split_once("│ ")?.1.split_once(' ')?;
            (rest == "0123456789012345678901234567890123456789").then_some(chunk)
        })
        .collect();
    // A rotation takes what was written by then: copy 1 is chunk 4 and perhaps the end
    // of chunk 3. Chunks 1 and 2 were only in the deleted copies.
    assert!(
        chunks.contains("4") && chunks.iter().all(|c| ["3", "4"].contains(c)),
        "copy 1 holds chunk 4 (and perhaps the end of 3), never 1 or 2: {chunks:?}\n{shown}"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

fn supervisor_pid(p: &Project) -> i32 {
    let state = p.state_json();
    let pid = state["supervisor"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no supervisor recorded: {state}"));
    i32::try_from(pid).expect("a pid")
}

#[test]
fn a_supervisor_killed_during_a_compression_loses_and_repeats_nothing() {
    // 300 000 numbered lines (3.3 MB) against a 1 MiB limit: the first rotation's copy is
    // compressed on the blocking pool, paused (test hook) once its first bytes are in
    // `w.log.1.gz.tmp`; the supervisor is SIGKILLed there.
    const LINES: u64 = 300_000;
    let mut p = Project::new().config(&format!(
        r#"
processes:
  w:
    command: ["{{testd}}", "--write-numbered", "{LINES}", "--touch", "done"]
    logs: {{ max_size: 1MiB, keep: 10, compress: true }}
"#
    ));
    p.procs_env(["up"], &[(PAUSE_VAR, "600000")]).success();
    wait_until(
        "a compression to be under way (its temp file)",
        WAIT,
        || fs::metadata(log_path(&p, "w.log.1.gz.tmp")).is_ok_and(|m| m.len() > 0),
    );
    let supervisor = supervisor_pid(&p);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the supervisor");
    wait_until("the supervisor to die", WAIT, || !pid_alive(supervisor));
    assert!(
        exists(&p, "w.log.1") && exists(&p, "w.log.1.gz.tmp") && !exists(&p, "w.log.1.gz"),
        "killed mid-compression: the plain copy and a partial temp"
    );
    wait_until("w to finish writing", WAIT, || {
        p.path().join("done").exists()
    });
    // A new supervisor (no pause) adopts w, finishes the retention and rotates the rest.
    p.procs(["up"]).success();
    wait_until(
        "the copies to be compressed, no temp, no plain copy left",
        WAIT,
        || {
            copies(&p, 10, &["", ".gz.tmp"]).is_empty()
                && exists(&p, "w.log.1.gz")
                && fs::metadata(log_path(&p, "w.log")).is_ok_and(|m| m.len() <= 1024 * 1024)
                && !exists(&p, "w.log.rotating")
        },
    );
    assert!(
        !exists(&p, "w.log.10.gz"),
        "keep was enough: nothing dropped"
    );
    let all = p.procs(["logs", "-n", "1000000", "w"]).success();
    assert_every_line_once(&p, &numbered(&all.stdout), LINES, "procs logs");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// `procs logs -f -n 0 w` with its output in a file of the project dir.
fn follow(p: &Project) -> (Child, PathBuf) {
    let out = p.path().join("follow.out");
    let file = fs::File::create(&out).expect("create the follower's output");
    let child = p
        .command(procs_bin())
        .args(["logs", "-f", "-n", "0", "w"])
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn procs logs -f");
    (child, out)
}

#[test]
fn logs_and_logs_follow_read_every_line_once_while_the_log_rotates_and_compresses() {
    // 40 000 numbered lines in 400 writes 10 ms apart, against a 16 KiB limit with
    // compression: about 27 rotations over a few seconds, while `procs logs` runs again
    // and again and `procs logs -f` follows.
    const LINES: u64 = 40_000;
    let mut p = Project::new().config(&format!(
        r#"
processes:
  w:
    command: '{}; i=0; while [ $$i -lt 400 ]; do seq -f "n %08g" $$((i*100)) $$((i*100+99)); i=$$((i+1)); sleep 0.01; done; touch done; exec sleep 600'
    logs: {{ max_size: 16KiB, keep: 60, compress: true }}
"#,
        wait_for("go")
    ));
    p.procs(["up"]).success();
    let (mut follower, out) = follow(&p);
    let printed = || fs::read_to_string(&out).unwrap_or_default();
    // Know that the follower follows before the writer starts (it starts at the end of
    // the log): append a marker until it shows one.
    wait_until("the follower to print a marker", WAIT, || {
        fs::OpenOptions::new()
            .append(true)
            .open(log_path(&p, "w.log"))
            .and_then(|mut f| f.write_all(b"follower, are you there?\n"))
            .expect("append to w.log");
        printed().contains("follower, are you there?")
    });
    fs::write(p.path().join("go"), "").expect("go");
    // Tails while the writer writes and the supervisor rotates: each one is every line
    // from the first up to where it looked, once, in order.
    let rotations = || read(&p, "procs.log").matches("rotated w.log").count();
    let mut tails = 0;
    let mut overlapped = 0;
    wait_until("the burst to end", Duration::from_mins(1), || {
        if p.path().join("done").exists() {
            return true;
        }
        let before = rotations();
        let tail = p.procs(["logs", "-n", "1000000", "w"]).success();
        let got = numbered(&tail.stdout);
        let n = got.last().map_or(0, |l| l + 1);
        assert_every_line_once(&p, &got, n, &format!("procs logs number {tails}"));
        tails += 1;
        if rotations() > before {
            overlapped += 1;
        }
        false
    });
    assert!(
        overlapped > 0,
        "no rotation happened while one of the {tails} tails ran"
    );
    wait_until("the last copies to be compressed", WAIT, || {
        copies(&p, 60, &["", ".gz.tmp"]).is_empty() && !exists(&p, "w.log.rotating")
    });
    assert!(
        !exists(&p, "w.log.60.gz"),
        "keep was enough: nothing dropped"
    );
    let all = p.procs(["logs", "-n", "1000000", "w"]).success();
    assert_every_line_once(&p, &numbered(&all.stdout), LINES, "the final procs logs");
    let last = format!("n {:08}", LINES - 1);
    if !copytruncated(&p) {
        wait_until("the follower to print the last line", WAIT, || {
            printed().contains(&last)
        });
    }
    follower.kill().expect("stop the follower");
    follower.wait().expect("reap the follower");
    let seen = numbered(&printed());
    assert_every_line_once(&p, &seen, LINES, "procs logs -f");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
