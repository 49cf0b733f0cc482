//! Health probes: `exec`, `tcp`, `http`, `log`, and the implicit check of declared ports.
//!
//! Owns: running one probe and saying pass or fail (with a reason a person can read).
//! A probe task per running process sleeps between probes, so an idle stack costs no
//! CPU; probes of different processes never wait on one another.
//! Readiness cadence: until the first pass, probes run at most every 100 ms (exec: 250
//! ms) so `up` notices readiness quickly; after that, every `interval`. A `log` check does
//! not poll: it waits on inotify for writes to the log and reads every new line as soon as
//! it is written (a verdict goes out on each change, and every `interval` meanwhile so the
//! last check stays current); once its line was seen it passes for the rest of the run.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::reaper::Reaper;
use super::spawn::{self, Context};
use crate::config::{HttpTarget, Probe, Process};
use crate::logs::Followed;
use crate::platform::{self, ExitInfo};

/// Outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
}

/// Everything a probe task needs.
pub struct ProbeTask {
    pub spec: Arc<Process>,
    pub ctx: Arc<Context>,
    pub reaper: Arc<Reaper>,
    pub log: PathBuf,
    /// Log size when the process started: a `log` probe only reads what came after.
    pub log_offset: u64,
    /// The process's own pid (its tree must own the listener of a port check).
    pub pid: i32,
    /// Who the process's members are (a daemon's listener is its own too).
    pub scanner: Arc<crate::stop::Scanner>,
    /// The check already passed for this run (an adopted healthy process): a `log` check
    /// is not looked for again, and probes run at `interval`.
    pub passed: bool,
}

/// What a process is checked with, if anything.
pub fn describe(spec: &Process) -> Option<String> {
    if let Some(check) = &spec.healthcheck {
        return Some(match &check.probe {
            Probe::Exec(cmd) => format!("exec `{cmd}`"),
            Probe::Tcp { host, port } => format!("tcp {host}:{port}"),
            Probe::Http { url, .. } => format!("http {url}"),
            Probe::Log(re) => format!("log /{re}/"),
        });
    }
    if spec.ports.is_empty() {
        None
    } else {
        let ports: Vec<String> = spec.ports.iter().map(|p| p.port.to_string()).collect();
        Some(format!("port {}", ports.join(", ")))
    }
}

/// Run probes forever, sending each verdict; ends when the receiver is dropped.
pub async fn run(task: ProbeTask, tx: mpsc::Sender<Verdict>) {
    let (interval, probe_timeout) = match &task.spec.healthcheck {
        Some(check) => (check.interval, check.timeout),
        None => (Duration::from_secs(1), Duration::from_secs(1)),
    };
    let exec = matches!(
        task.spec.healthcheck.as_ref().map(|c| &c.probe),
        Some(Probe::Exec(_))
    );
    let fast = if exec {
        Duration::from_millis(250)
    } else {
        Duration::from_millis(100)
    };
    let mut log_state = LogState {
        follow: Followed::at_offset("", task.log.clone(), task.log_offset),
        regex: None,
        matched: task.passed,
    };
    if let Some(Probe::Log(pattern)) = task.spec.healthcheck.as_ref().map(|c| &c.probe) {
        let pattern = pattern.clone();
        return run_log(&task, &pattern, interval, &mut log_state, &tx).await;
    }
    let mut passed = task.passed;
    loop {
        let verdict = probe_once(&task, probe_timeout, &mut log_state).await;
        passed |= verdict == Verdict::Pass;
        if tx.send(verdict).await.is_err() {
            return;
        }
        let pause = if passed { interval } else { interval.min(fast) };
        tokio::time::sleep(pause).await;
    }
}

/// The `log` check, event-driven: a verdict now, then one after each write to the log (and
/// every `interval` meanwhile); after the first pass it has nothing more to say.
async fn run_log(
    task: &ProbeTask,
    pattern: &str,
    interval: Duration,
    state: &mut LogState,
    tx: &mpsc::Sender<Verdict>,
) {
    // One inotify instance for the whole run (rotations re-aim it: `rewatch`); a new one
    // only while the log cannot be watched at all (it does not exist).
    let mut watch = platform::FileChanges::new(&task.log).ok();
    loop {
        let verdict = log_probe(task, pattern, state);
        let passed = verdict == Verdict::Pass;
        if tx.send(verdict).await.is_err() {
            return;
        }
        if passed {
            // A pass is for the whole run; the actor still holds the receiver, so the
            // task stays (a dropped sender would read as "no more verdicts" in a loop).
            tx.closed().await;
            return;
        }
        let changed = async {
            match &watch {
                Some(w) => w.changed().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = changed => {
                // Moved or deleted (or the watch failed): watch whatever the path is now,
                // on the same inotify instance (one per run of the process).
                if change != Some(platform::Change::Written)
                    && watch.as_mut().is_none_or(|w| w.rewatch(&task.log).is_err())
                {
                    watch = None;
                }
            }
            () = tokio::time::sleep(interval) => {
                if watch.is_none() {
                    watch = platform::FileChanges::new(&task.log).ok();
                }
            }
        }
    }
}

/// A `log` probe reads the log like `procs logs -f` (across rotations, under the rotation
/// lock: see `logs.rs`), from where it was when the process started.
struct LogState {
    follow: Followed,
    /// The probe's pattern, compiled on first use (config loading has checked it).
    regex: Option<regex::Regex>,
    matched: bool,
}

async fn probe_once(task: &ProbeTask, limit: Duration, log: &mut LogState) -> Verdict {
    let Some(check) = &task.spec.healthcheck else {
        return ports_probe(task, limit).await;
    };
    match &check.probe {
        Probe::Exec(script) => exec_probe(task, script, limit).await,
        Probe::Tcp { host, port } => {
            match timeout(limit, TcpStream::connect((host.as_str(), *port))).await {
                Ok(Ok(stream)) => own_listener(task, *port, stream.peer_addr().ok()),
                Ok(Err(err)) => Verdict::Fail(format!("tcp {host}:{port}: {err}")),
                Err(_) => Verdict::Fail(format!("tcp {host}:{port}: no answer within {limit:?}")),
            }
        }
        Probe::Http { url, status } => match timeout(limit, http_get(url)).await {
            Ok(Ok((code, peer))) => {
                let ok = match status {
                    Some(want) => code == *want,
                    None => (200..400).contains(&code),
                };
                if ok {
                    own_listener(task, url.port(), peer)
                } else {
                    Verdict::Fail(format!("GET {url}: status {code}"))
                }
            }
            Ok(Err(err)) => Verdict::Fail(format!("GET {url}: {err}")),
            Err(_) => Verdict::Fail(format!("GET {url}: no answer within {limit:?}")),
        },
        Probe::Log(pattern) => log_probe(task, pattern, log),
    }
}

/// Do the process's members (its cgroup, lineage, tags) hold a listener on `port`?
fn members_hold(task: &ProbeTask, port: u16) -> bool {
    let members = task.scanner.members_of(
        &task.ctx.project_id,
        &task.spec.name,
        Some(task.pid),
        tokio::time::Instant::now(),
    );
    let pids: Vec<i32> = members.into_iter().collect();
    platform::pid_set_holds_port(&pids, port)
}

/// A check on a declared port, or on a port of this machine (the probe connected to a
/// local address: loopback, unspecified or one of the machine's own), passes only if the
/// listener belongs to the process's members: a stranger holding the port never makes the
/// process healthy (SPEC §8). A check on another machine's port is not judged.
fn own_listener(task: &ProbeTask, port: u16, peer: Option<SocketAddr>) -> Verdict {
    let declared = task.spec.ports.iter().any(|p| p.port == port);
    let local = peer.is_some_and(|addr| is_local(addr.ip()));
    if !(declared || local) || platform::tree_holds_port(task.pid, port) || members_hold(task, port)
    {
        Verdict::Pass
    } else {
        Verdict::Fail(format!(
            "port {port} accepts connections, but not from this process's tree"
        ))
    }
}

/// Is `ip` an address of this machine? Loopback and unspecified addresses are; any other
/// is exactly when a socket can be bound to it.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

async fn ports_probe(task: &ProbeTask, limit: Duration) -> Verdict {
    for port in &task.spec.ports {
        let host = port.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
        let host = if host == "0.0.0.0" || host == "::" {
            "127.0.0.1".to_owned()
        } else {
            host
        };
        match timeout(limit, TcpStream::connect((host.as_str(), port.port))).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Verdict::Fail(format!("port {}: {err}", port.port)),
            Err(_) => {
                return Verdict::Fail(format!("port {}: no answer within {limit:?}", port.port));
            }
        }
        if let Verdict::Fail(why) = own_listener(task, port.port, None) {
            return Verdict::Fail(why);
        }
    }
    Verdict::Pass
}

async fn exec_probe(task: &ProbeTask, script: &str, limit: Duration) -> Verdict {
    let command = crate::config::Command::Shell(script.to_owned());
    let child = match spawn::spawn_helper(&task.spec, &command, &task.ctx, None, &task.reaper) {
        Ok(child) => child,
        Err(err) => return Verdict::Fail(format!("cannot run `{script}`: {err}")),
    };
    let pid = child.pid;
    match timeout(limit, child.exit).await {
        Ok(Ok(ExitInfo::Code(0))) => Verdict::Pass,
        Ok(Ok(ExitInfo::Code(code))) => {
            Verdict::Fail(format!("`{script}` exited with code {code}"))
        }
        Ok(Ok(ExitInfo::Signal(sig))) => {
            Verdict::Fail(format!("`{script}` killed by signal {sig}"))
        }
        Ok(Err(_)) => Verdict::Fail(format!("`{script}` vanished")),
        Err(_) => {
            let _ = platform::kill_group(pid, platform::Signal::KILL);
            Verdict::Fail(format!("`{script}` did not finish within {limit:?}"))
        }
    }
}

fn log_probe(task: &ProbeTask, pattern: &str, state: &mut LogState) -> Verdict {
    if state.matched {
        return Verdict::Pass;
    }
    let re = match &mut state.regex {
        Some(re) => re,
        empty => match regex::Regex::new(pattern) {
            Ok(re) => empty.insert(re),
            Err(_) => return Verdict::Fail(format!("invalid regular expression /{pattern}/")),
        },
    };
    if !task.log.exists() {
        return Verdict::Fail("no output yet".to_owned());
    }
    // Blocking, like the read it replaces: at most one read of the log, and a wait for the
    // rotation lock that a rotation holds only for a shift, a collapse and a rename.
    if state
        .follow
        .read_new()
        .iter()
        .any(|line| !line.starts_with("[procs] ") && re.is_match(line))
    {
        state.matched = true;
        return Verdict::Pass;
    }
    Verdict::Fail(format!("no output line matched /{pattern}/ yet"))
}

/// A minimal HTTP/1.1 GET: the status code, and the address that answered. Only
/// `http://` URLs (local daemons); the URL was parsed when the config was loaded.
async fn http_get(url: &HttpTarget) -> Result<(u16, Option<SocketAddr>), String> {
    let mut stream = TcpStream::connect((url.host(), url.port()))
        .await
        .map_err(|e| e.to_string())?;
    let peer = stream.peer_addr().ok();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: procs\r\nConnection: close\r\n\r\n",
        url.target(),
        url.authority()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| "not an HTTP response".to_owned())?;
    Ok((code, peer))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::is_local;

    #[test]
    fn loopback_and_unspecified_addresses_are_local_and_documentation_ones_are_not() {
        for ip in ["127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "::"] {
            assert!(is_local(ip.parse::<IpAddr>().unwrap()), "{ip}");
        }
        // TEST-NET-3 and the IPv6 documentation prefix are never assigned to a machine.
        for ip in ["203.0.113.7", "2001:db8::7"] {
            assert!(!is_local(ip.parse::<IpAddr>().unwrap()), "{ip}");
        }
    }
}
