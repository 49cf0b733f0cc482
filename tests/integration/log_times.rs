//! The time index of logs and what it gives `procs logs`: `-t`, exact `--since`/`--until`,
//! one timeline across processes (tail and `-f`), `--no-merge`, `--grep`/`-i`, `--json`,
//! and the faults of the index (corrupt, cut, deleted, a clock stepped back).

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::{Project, procs_bin, wait_until};

const WAIT: Duration = Duration::from_secs(30);
/// The precision the index promises.
const PRECISION_MS: i64 = 100;
/// The kernel's file times come from a coarse clock: up to a tick behind `date`.
const COARSE_MS: i64 = 10;

fn log_path(p: &Project, name: &str) -> PathBuf {
    p.state_dir().join("logs").join(name)
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).expect("after 1970"));
    humantime::format_rfc3339_millis(t).to_string()
}

fn parse_ms(stamp: &str) -> i64 {
    let t = humantime::parse_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp:?}: {e}"));
    i64::try_from(
        t.duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

/// A shell loop that waits for `file` in the project dir.
fn wait_for(file: &str) -> String {
    format!("while [ ! -e {file} ]; do sleep 0.01; done")
}

/// `w` prints `line N MS` six times, 300 ms apart, MS being the time just before the write.
const SIX_LINES: &str = r#"
processes:
  w:
    command: 'for i in 1 2 3 4 5 6; do echo "line $$i $$(date +%s%3N)"; sleep 0.3; done; touch done; exec sleep 600'
"#;

/// The body lines of `procs logs` output (`NAME │ REST`).
fn bodies(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| l.split_once(" │ ").map_or(l, |(_, rest)| rest).to_owned())
        .collect()
}

#[test]
fn timestamps_since_and_until_are_exact_to_100_ms() {
    let mut p = Project::new().config(SIX_LINES);
    p.procs(["up"]).success();
    wait_until("w to write its six lines", WAIT, || {
        p.path().join("done").exists()
    });
    let out = p.procs(["logs", "-t", "--grep", "^line", "w"]).success();
    let mut written = Vec::new();
    for body in bodies(&out.stdout) {
        // `STAMP line N MS`
        let parts: Vec<&str> = body.split(' ').collect();
        assert_eq!(parts.len(), 4, "{body:?}");
        let (shown, wrote) = (parse_ms(parts[0]), parts[3].parse::<i64>().expect("ms"));
        assert!(
            shown >= wrote - COARSE_MS && shown <= wrote + PRECISION_MS,
            "line {} written at {wrote} shown at {shown} ({} ms off)\n{}",
            parts[2],
            shown - wrote,
            out.stdout
        );
        written.push(wrote);
    }
    assert_eq!(written.len(), 6, "{}", out.stdout);
    // Halfway between writes 300 ms apart: exact to the index's precision.
    let mid = |a: usize, b: usize| rfc3339(i64::midpoint(written[a], written[b]));
    let window = p
        .procs([
            "logs",
            "--grep",
            "^line",
            "--since",
            &mid(1, 2),
            "--until",
            &mid(3, 4),
            "w",
        ])
        .success();
    let lines: Vec<String> = bodies(&window.stdout)
        .iter()
        .map(|b| b.rsplit_once(' ').map_or(b.as_str(), |(l, _)| l).to_owned())
        .collect();
    assert_eq!(lines, ["line 3", "line 4"], "{}", window.stdout);
    // A duration counts back from now: nothing of w was written in the last 0 s … but the
    // whole run is within the last 10 minutes.
    let recent = p
        .procs(["logs", "--since", "10m", "--grep", "^line", "w"])
        .success();
    assert_eq!(bodies(&recent.stdout).len(), 6, "{}", recent.stdout);
    p.procs(["logs", "--until", "yesterday-ish"])
        .code(2)
        .stderr_contains("neither a duration");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// `a` and `b` take turns, each write at least 200 ms after the previous one (whoever
/// wrote it): `a1 b1 a2 b2 a3 b3`, once `go` exists.
fn turns() -> String {
    let step = |who: &str, n: u32, after: &str, done: &str| {
        format!(
            "{}; sleep 0.2; echo {who}{n}; touch {done}",
            wait_for(after)
        )
    };
    let a = [
        step("a", 1, "go", "a1"),
        step("a", 2, "b1", "a2"),
        step("a", 3, "b2", "a3"),
    ]
    .join("; ");
    let b = [
        step("b", 1, "a1", "b1"),
        step("b", 2, "a2", "b2"),
        step("b", 3, "a3", "b3"),
    ]
    .join("; ");
    format!(
        "processes:\n  a:\n    command: '{a}; exec sleep 600'\n  b:\n    command: '{b}; exec sleep 600'\n"
    )
}

#[test]
fn several_logs_make_one_timeline_in_the_tail_and_when_following() {
    let mut p = Project::new().config(&turns());
    p.procs(["up"]).success();
    // A follower with --json: its tail (one event line of each process) tells it is
    // following — it starts following where its tail ends, before printing it.
    let mut follower = p
        .command(procs_bin())
        .args([
            "logs",
            "-f",
            "--json",
            "-n",
            "1",
            "--grep",
            "^([ab][0-9]|\\[procs\\] .*)$",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn procs logs -f");
    let stdout = follower.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    let next = || {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for procs logs -f"));
        let obj: serde_json::Value = serde_json::from_str(&line).expect("one JSON object a line");
        parse_ms(obj["time"].as_str().expect("time"));
        obj
    };
    for _ in 0..2 {
        let tail = next();
        assert!(
            tail["event"].is_string(),
            "the tail is procs' events: {tail}"
        );
    }
    fs::write(p.path().join("go"), "").expect("go");
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let obj = next();
        if obj.get("event").is_some() {
            continue;
        }
        let text = obj["line"].as_str().expect("line").to_owned();
        assert_eq!(obj["process"].as_str(), Some(&text[..1]), "{obj}");
        seen.push(text);
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let _ = reader.join();
    assert_eq!(seen, ["a1", "b1", "a2", "b2", "a3", "b3"], "-f merges");
    let merged = p.procs(["logs", "--grep", "^[ab][0-9]$"]).success();
    assert_eq!(
        bodies(&merged.stdout),
        ["a1", "b1", "a2", "b2", "a3", "b3"],
        "{}",
        merged.stdout
    );
    let blocks = p
        .procs(["logs", "--no-merge", "--grep", "^[ab][0-9]$"])
        .success();
    assert_eq!(
        bodies(&blocks.stdout),
        ["a1", "a2", "a3", "b1", "b2", "b3"],
        "{}",
        blocks.stdout
    );
    // The events of procs itself carry `event` in JSON.
    let events = p
        .procs(["logs", "--json", "--grep", "^\\[procs\\]", "a"])
        .success();
    let first: serde_json::Value =
        serde_json::from_str(events.stdout.lines().next().expect("an event line")).expect("json");
    assert!(
        first["event"]
            .as_str()
            .is_some_and(|e| e.starts_with("start")),
        "{first}"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn grep_selects_lines_and_i_ignores_case() {
    let mut p = Project::new().config(
        "
processes:
  w:
    command: 'echo Hello World; echo goodbye; echo HELLO again; touch done; exec sleep 600'
",
    );
    p.procs(["up"]).success();
    wait_until("w to write", WAIT, || p.path().join("done").exists());
    let exact = p.procs(["logs", "--grep", "Hello", "w"]).success();
    assert_eq!(bodies(&exact.stdout), ["Hello World"]);
    let any_case = p.procs(["logs", "--grep", "hello", "-i", "w"]).success();
    assert_eq!(bodies(&any_case.stdout), ["Hello World", "HELLO again"]);
    let last = p
        .procs(["logs", "--grep", "hello", "-i", "-n", "1", "w"])
        .success();
    assert_eq!(
        bodies(&last.stdout),
        ["HELLO again"],
        "-n counts matching lines"
    );
    p.procs(["logs", "--grep", "(unclosed"])
        .code(2)
        .stderr_contains("is not a regular expression");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// The index file of `w.log`.
fn index_of(p: &Project) -> PathBuf {
    log_path(p, "w.log.idx")
}

#[test]
fn a_corrupt_cut_or_deleted_index_costs_precision_never_a_line() {
    let mut p = Project::new().config(&format!(
        r#"
processes:
  w:
    command: 'for i in 1 2 3; do {}; echo "line $$i"; touch wrote$$i; done; exec sleep 600'
"#,
        wait_for("go$$i")
    ));
    p.procs(["up"]).success();
    let step = |i: u32| {
        fs::write(p.path().join(format!("go{i}")), "").expect("go");
        wait_until(&format!("line {i}"), WAIT, || {
            p.path().join(format!("wrote{i}")).exists()
        });
    };
    let shows_lines = |n: u32| {
        let out = p.procs(["logs", "-t", "--grep", "^line", "w"]).success();
        let bodies: Vec<String> = bodies(&out.stdout)
            .iter()
            .map(|b| b.split_once(' ').map_or("", |(_, l)| l).to_owned())
            .collect();
        let want: Vec<String> = (1..=n).map(|i| format!("line {i}")).collect();
        assert_eq!(bodies, want, "{}", out.stdout);
    };
    step(1);
    wait_until("the index to be written", WAIT, || index_of(&p).exists());
    // Garbage: ignored by readers; the supervisor notices and rebuilds it.
    fs::write(index_of(&p), b"not an index at all").expect("corrupt");
    shows_lines(1);
    step(2);
    shows_lines(2);
    wait_until("the index to be rebuilt", WAIT, || {
        fs::read(index_of(&p)).is_ok_and(|b| b.starts_with(b"PRCSIDX1"))
    });
    // Cut mid-record, then deleted: the same.
    let len = fs::metadata(index_of(&p)).expect("index").len();
    fs::OpenOptions::new()
        .write(true)
        .open(index_of(&p))
        .and_then(|f| f.set_len(len - 3))
        .expect("cut");
    shows_lines(2);
    fs::remove_file(index_of(&p)).expect("delete");
    shows_lines(2);
    step(3);
    wait_until("the index to be rebuilt", WAIT, || index_of(&p).exists());
    shows_lines(3);
    let before = now_ms();
    let t = p.procs(["logs", "-t", "-n", "1", "w"]).success();
    let stamp = bodies(&t.stdout)[0].split(' ').next().map(parse_ms);
    assert!(stamp.is_some_and(|s| s <= before), "{}", t.stdout);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_clock_stepped_back_never_reorders_lines() {
    // No supervisor: a log and an index whose times go back (as after a clock step).
    let mut p = Project::new().config("processes:\n  w:\n    command: 'exec sleep 600'\n");
    let logs = p.state_dir().join("logs");
    fs::create_dir_all(&logs).expect("logs dir");
    fs::write(logs.join("w.log"), "first\nsecond\nthird\n").expect("log");
    let mut idx = b"PRCSIDX1".to_vec();
    for (offset, time) in [
        (6u64, 2_000_000_000_000i64),
        (13, 1_000_000_000_000),
        (19, 1_500_000_000_000),
    ] {
        idx.extend_from_slice(&offset.to_le_bytes());
        idx.extend_from_slice(&time.to_le_bytes());
    }
    fs::write(logs.join("w.log.idx"), idx).expect("index");
    let out = p.procs(["logs", "-t", "w"]).success();
    let bodies = bodies(&out.stdout);
    let texts: Vec<&str> = bodies
        .iter()
        .map(|b| b.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(texts, ["first", "second", "third"], "{}", out.stdout);
    let times: Vec<i64> = bodies
        .iter()
        .map(|b| parse_ms(b.split(' ').next().unwrap_or("")))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{}", out.stdout);
    p.assert_no_survivors();
}

/// The numbers of the whole `n 00000123` lines of `procs logs` output (a fragment of one,
/// `n 0001`, is none).
fn numbered(stdout: &str) -> Vec<u64> {
    bodies(stdout)
        .iter()
        .filter_map(|b| {
            let digits = b.strip_prefix("n ")?;
            (digits.len() == 8).then(|| digits.parse().ok()).flatten()
        })
        .collect()
}

fn copies(p: &Project, suffix: &str) -> Vec<PathBuf> {
    (1..=40)
        .map(|n| log_path(p, &format!("w.log.{n}{suffix}")))
        .filter(|f| f.exists())
        .collect()
}

#[test]
fn rotated_copies_are_gzipped_and_read_back_transparently() {
    let mut p = Project::new().config(
        r#"
processes:
  w:
    command: 'i=0; while [ $$i -lt 300 ]; do seq -f "n %08g" $$((i*100)) $$((i*100+99)); i=$$((i+1)); sleep 0.005; done; touch done; exec sleep 600'
    logs: { max_size: 64KiB, keep: 40, compress: true }
"#,
    );
    p.procs(["up"]).success();
    wait_until("w to write, rotate and compress", WAIT, || {
        p.path().join("done").exists()
            && fs::metadata(log_path(&p, "w.log")).is_ok_and(|m| m.len() <= 64 * 1024)
            && copies(&p, ".gz").len() >= 2
            && copies(&p, "").is_empty()
            && copies(&p, ".gz.tmp").is_empty()
    });
    for gz in copies(&p, ".gz") {
        let bytes = fs::read(&gz).expect("read");
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{} is gzip", gz.display());
    }
    let lossless = !fs::read_to_string(log_path(&p, "procs.log"))
        .unwrap_or_default()
        .contains("(copytruncate)");
    let all = p.procs(["logs", "-n", "100000", "w"]).success();
    let got = numbered(&all.stdout);
    if lossless {
        assert!(
            got == (0..30_000).collect::<Vec<u64>>(),
            "every line once, in order ({} lines)",
            got.len()
        );
    } else {
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "copytruncate: never repeated"
        );
    }
    // A copy gone missing costs its lines, nothing else: the copies past it are still read.
    let second = log_path(&p, "w.log.2.gz");
    assert!(
        log_path(&p, "w.log.3.gz").exists(),
        "a copy past the one removed"
    );
    let mut in_second = String::new();
    flate2::read::GzDecoder::new(fs::File::open(&second).expect("open .2.gz"))
        .read_to_string(&mut in_second)
        .expect("gunzip .2.gz");
    let lost = in_second.lines().count();
    fs::remove_file(&second).expect("remove .2.gz");
    let partial = numbered(&p.procs(["logs", "-n", "100000", "w"]).success().stdout);
    assert!(
        partial.windows(2).all(|w| w[0] < w[1]),
        "never repeated or reordered"
    );
    assert_eq!(partial.last(), Some(&29_999));
    assert_eq!(
        partial.first(),
        got.first(),
        "the copies older than the missing one are read"
    );
    // Its lines, and at most the two cut at its ends.
    assert!(
        partial.len() < got.len() && partial.len() + lost + 2 >= got.len(),
        "{} lines of {} left, {lost} in the copy removed",
        partial.len(),
        got.len()
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn copies_older_than_max_age_are_deleted() {
    let burst = |gate: &str, done: &str| {
        format!(
            "{}; yes 0123456789012345678901234567890123456789 | head -n 5000; touch {done}",
            wait_for(gate)
        )
    };
    let mut p = Project::new().config(&format!(
        "processes:\n  w:\n    command: '{}; {}; exec sleep 600'\n    logs: {{ max_size: 32KiB, keep: 40, max_age: 1s }}\n",
        burst("go1", "b1"),
        burst("go2", "b2")
    ));
    p.procs(["up"]).success();
    fs::write(p.path().join("go1"), "").expect("go1");
    wait_until("the first burst to be rotated", WAIT, || {
        p.path().join("b1").exists() && !copies(&p, "").is_empty()
    });
    // The retention timer deletes them once over a second old, index files too, though
    // nothing is written meanwhile (`logs_retention.rs` has the idle case alone).
    wait_until("the first copies to be deleted", WAIT, || {
        copies(&p, "").is_empty() && copies(&p, ".idx").is_empty()
    });
    let go2 = SystemTime::now();
    fs::write(p.path().join("go2"), "").expect("go2");
    // The next burst makes new copies; none of the old ones comes back.
    wait_until("the new copies, each with its index", WAIT, || {
        p.path().join("b2").exists()
            && copies(&p, "").iter().all(|c| {
                fs::metadata(c)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= go2)
            })
            && !copies(&p, "").is_empty()
            && copies(&p, ".idx").len() == copies(&p, "").len()
    });
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn logs_shows_the_processes_of_the_current_config_unless_all() {
    let mut p = Project::new().config(
        "processes:\n  a:\n    command: 'echo from a; touch a-done; exec sleep 600'\n  gone:\n    command: 'echo from gone; touch gone-done; exec sleep 600'\n",
    );
    p.procs(["up"]).success();
    wait_until("a and gone to write", WAIT, || {
        p.path().join("a-done").exists() && p.path().join("gone-done").exists()
    });
    p.procs(["down"]).success();
    // `gone` leaves the config; its log stays.
    p.write_config("processes:\n  a:\n    command: 'echo from a; exec sleep 600'\n");
    let grep = ["--grep", "^from "];
    let current = p.procs([&["logs"][..], &grep].concat()).success();
    assert_eq!(bodies(&current.stdout), ["from a"], "{}", current.stdout);
    let all = p
        .procs([&["logs", "--all", "--no-merge"][..], &grep].concat())
        .success();
    assert_eq!(
        bodies(&all.stdout),
        ["from a", "from gone"],
        "{}",
        all.stdout
    );
    let named = p.procs([&["logs", "gone"][..], &grep].concat()).success();
    assert_eq!(
        bodies(&named.stdout),
        ["from gone"],
        "named: {}",
        named.stdout
    );
    // A config that does not load never hides output.
    p.write_config("processes: [not, a, map]\n");
    let broken = p.procs([&["logs"][..], &grep].concat()).success();
    assert_eq!(bodies(&broken.stdout).len(), 2, "{}", broken.stdout);
    p.assert_no_survivors();
}
