//! The supervisor: the same binary, re-executed detached as `procs __supervise`.
//!
//! Owns: the singleton lock (held for the whole life of the process), the control
//! socket, the reaper, the actors (through the orchestrator) and the registry writes.
//! Startup order matters: lock → subreaper → socket → registry → "ready" to the
//! launcher → serve. Shutdown (full `down`, SIGTERM or SIGINT): stop every process,
//! write the registry without a supervisor, remove the socket, exit. SIGHUP is ignored
//! (logged): a changed config is applied by `procs up`.
//! The CLI never imports this module; both sides share `config`, `control`,
//! `registry`, `paths`, `stop` and `platform`.

mod adopt;
mod backoff;
mod health;
mod lineage;
mod machine;
mod orchestrator;
mod ports;
mod reaper;
mod rotate;
mod server;
mod service;
mod spawn;
mod waiter;

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, broadcast};

use crate::control::{BUSY_LINE, READY_LINE};
use crate::membership::{Mechanism, Membership};
use crate::paths::Paths;
use crate::platform;
use crate::registry::{self, SupervisorRecord};
use crate::stop::Scanner;

pub use spawn::{ENV_PROCESS, ENV_PROJECT, ENV_PROJECT_ID};
pub use waiter::{ROLE as ONESHOT_ROLE, run as wait_oneshot};

/// What the launcher passes on the hidden command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub project_dir: PathBuf,
    pub state_dir: PathBuf,
    pub project: String,
}

/// Run the supervisor until it is told to exit.
pub fn run(opts: &Options) -> anyhow::Result<()> {
    let paths = Paths::with_state_dir(&opts.project_dir, opts.state_dir.clone());
    paths
        .ensure_dirs()
        .context("cannot create the state directory")?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.supervisor_lock)
        .context("cannot open the supervisor lock")?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            println!("{BUSY_LINE}");
            return Ok(());
        }
        Err(fs::TryLockError::Error(err)) => {
            return Err(err).context("cannot lock the supervisor lock");
        }
    }
    let singleton = match claim_singleton(&paths) {
        Singleton::Held(listener) => Some(listener),
        Singleton::Squatted => None,
        Singleton::OtherSupervisor => {
            println!("{BUSY_LINE}");
            return Ok(());
        }
    };
    platform::set_child_subreaper().context("cannot become a child subreaper")?;
    // Holding the lock, we are the only writer of pid files: any temp file there is a
    // leftover of a writer that died mid-write.
    registry::atomic::clean_stale(&paths.pids_dir, ".tmp-");
    // We hold the lock, so no supervisor serves this socket: whatever is there is stale.
    let _ = fs::remove_file(&paths.socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(paths, opts.project.clone(), singleton));
    drop(lock);
    result
}

/// What claiming the project's abstract socket ([`Paths::singleton`]) found.
enum Singleton {
    /// Ours for as long as we live.
    Held(std::os::unix::net::UnixListener),
    /// A live supervisor of ours holds it: this project already has one, even if its
    /// `.procs/` was deleted (the flock we hold is then on a new file).
    OtherSupervisor,
    /// Another user squats the name (or it cannot be bound): we go on with the file lock
    /// alone — a denial of service, never a takeover, since clients check the peer.
    Squatted,
}

fn claim_singleton(paths: &Paths) -> Singleton {
    match platform::bind_abstract(&paths.singleton) {
        Ok(listener) => Singleton::Held(listener),
        Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
            let holder = platform::connect_abstract(&paths.singleton)
                .and_then(|stream| platform::peer_uid(&stream));
            match holder {
                Ok(uid) if uid == platform::current_uid() || uid == 0 => Singleton::OtherSupervisor,
                // The holder went away between bind and connect: try once more.
                Err(_) => platform::bind_abstract(&paths.singleton)
                    .map_or(Singleton::Squatted, Singleton::Held),
                Ok(uid) => {
                    eprintln!(
                        "warning: the supervisor name @{} is held by uid {uid}; going on with the \
                         lock file only",
                        paths.singleton
                    );
                    Singleton::Squatted
                }
            }
        }
        Err(err) => {
            eprintln!("warning: cannot bind @{}: {err}", paths.singleton);
            Singleton::Squatted
        }
    }
}

/// Serve `listener` (the abstract socket, or a socket file bound again) until aborted.
fn serve_also(
    listener: std::os::unix::net::UnixListener,
    orch: &Arc<orchestrator::Orchestrator>,
) -> io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener)?;
    Ok(tokio::spawn(server::accept_loop(
        listener,
        Arc::clone(orch),
    )))
}

/// Bind the socket file (mode 0600).
fn bind_socket_file(paths: &Paths) -> anyhow::Result<std::os::unix::net::UnixListener> {
    let _ = fs::remove_file(&paths.socket);
    let listener = std::os::unix::net::UnixListener::bind(&paths.socket)
        .with_context(|| format!("cannot listen on {}", paths.socket.display()))?;
    fs::set_permissions(&paths.socket, fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// `.procs/` deleted or moved away under a running stack (`rm -rf .procs`, `git clean
/// -fdx`): recreate it — directories, the lock (held again), the socket file — and rewrite
/// the registry, so every later command finds this supervisor and what it runs. The
/// processes' own output keeps going to the deleted log files until they restart (their
/// descriptors point there); new event lines go to new files.
async fn heal_state_dir(paths: Arc<Paths>, orch: Arc<orchestrator::Orchestrator>) {
    let mut held = Vec::new();
    loop {
        let removal = match platform::Removal::new(&paths.state_dir) {
            Ok(removal) => removal,
            Err(err) => {
                tracing::warn!("cannot watch {}: {err}", paths.state_dir.display());
                return;
            }
        };
        if let Err(err) = removal.wait().await {
            tracing::warn!("cannot watch {}: {err}", paths.state_dir.display());
            return;
        }
        let recreated = recreate_state_dir(&paths, &orch).await;
        match recreated {
            Ok(kept) => {
                held.push(kept);
                if let Ok(log) = spawn::open_log(&paths.supervisor_log) {
                    let _ = platform::redirect_stdio(&log);
                }
                tracing::warn!(
                    "{} was removed under the running stack; recreated it",
                    paths.state_dir.display()
                );
                orch.save_now().await;
            }
            Err(err) => {
                tracing::error!(
                    "{} was removed and cannot be recreated: {err:#}",
                    paths.state_dir.display()
                );
                return;
            }
        }
    }
}

/// The directories, the lock (held again) and the socket file, after `.procs/` was removed.
async fn recreate_state_dir(
    paths: &Paths,
    orch: &Arc<orchestrator::Orchestrator>,
) -> anyhow::Result<(File, tokio::task::JoinHandle<()>)> {
    paths.ensure_dirs()?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.supervisor_lock)?;
    // A supervisor launched meanwhile by an `up` may hold it for a moment: it finds our
    // abstract socket, answers "busy" and exits.
    let mut tries = 0;
    while let Err(err) = lock.try_lock() {
        tries += 1;
        if tries > 100 {
            anyhow::bail!("cannot lock {}: {err}", paths.supervisor_lock.display());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let listener = bind_socket_file(paths)?;
    Ok((lock, serve_also(listener, orch)?))
}

async fn serve(
    paths: Paths,
    project: String,
    singleton: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
    let listener = bind_socket_file(&paths)?;
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener)?;
    let reaper = reaper::Reaper::start()?;
    let (events, _) = broadcast::channel(4096);
    let boot_id = platform::boot_id().to_owned();
    let paths = Arc::new(paths);
    let lineage = match registry::load(&paths.state_file, false) {
        Ok(registry::Loaded::Ok(reg)) => reg.current_lineage(),
        _ => crate::membership::Lineage::new(),
    };
    let membership = Arc::new(Membership::for_supervisor(&paths.project_id, lineage));
    let shared = Arc::new(service::Shared {
        paths: Arc::clone(&paths),
        reaper,
        scanner: Arc::new(Scanner::new(Arc::clone(&membership))),
        events,
        dirty: Arc::new(Notify::new()),
        boot_id: boot_id.clone(),
        spawn_slots: tokio::sync::Semaphore::new(
            std::thread::available_parallelism()
                .map_or(2, std::num::NonZero::get)
                .clamp(2, 8),
        ),
    });
    let found = adopt::find(&paths);
    let project = found
        .project
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or(project);
    let orch = orchestrator::Orchestrator::new(shared, project, paths.project_id.clone());
    let adopt_notes = found.notes;
    let adopt_count = found.adoptable.values().filter(|a| a.pid.is_some()).count();
    orch.set_adoptable(found.adoptable);
    let pid = std::process::id() as i32;
    orch.set_supervisor(Some(SupervisorRecord {
        pid,
        start_time: platform::start_time(pid).unwrap_or(0),
        boot_id,
        socket: paths.socket.clone(),
        started_at: registry::now_rfc3339(),
    }));
    orch.save_now().await;
    if let Err(err) =
        crate::index::register(&orch.project_name(), &paths.project_dir, &paths.state_dir)
    {
        tracing::warn!("cannot update the user-level project index: {err}");
    }

    // Tell the launcher we serve, then send our own output to logs/procs.log.
    let mut stdout = io::stdout();
    let _ = writeln!(stdout, "{READY_LINE}");
    let _ = stdout.flush();
    let log = spawn::open_log(&paths.supervisor_log)?;
    platform::redirect_stdio(&log)?;
    let mut extra_lineage = None;
    init_tracing();
    tracing::info!(pid, "supervisor started");
    tracing::info!("{}", membership.mechanism().describe());
    if matches!(membership.mechanism(), Mechanism::Lineage { .. }) {
        extra_lineage = Some(tokio::spawn(record_lineage(
            Arc::clone(&orch),
            Arc::clone(&membership),
            Arc::clone(&orch.shared.reaper),
            orch.shared.events.subscribe(),
        )));
    }
    for note in adopt_notes {
        tracing::warn!("{note}");
    }
    if adopt_count > 0 {
        tracing::info!(
            adopt_count,
            "processes still running from the previous supervisor will be adopted"
        );
    }
    if let Err(err) = rotate::start(&paths, orch.log_policies.subscribe()) {
        tracing::error!("logs will not be rotated: {err}");
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let signals = {
        let orch = Arc::clone(&orch);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    // Detached in its own session, the supervisor has no terminal whose
                    // hangup could concern it; reloading is `procs up`'s job (it shows
                    // what changes). So SIGHUP is logged and otherwise ignored.
                    _ = hup.recv() => tracing::info!(
                        "SIGHUP received: ignored (run `procs up` to apply a changed procs.yaml)"
                    ),
                }
            }
            tracing::info!("signal received: stopping every process");
            // Nobody follows this stop's progress: with the receiver dropped, each progress
            // message is discarded at once (a kept, unread receiver filled up and blocked
            // the stop forever).
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            drop(rx);
            let _ = orch.stop(&[], None, true, &tx).await;
            orch.shutdown.notify_one();
        })
    };
    let mut extra = Vec::new();
    extra.extend(extra_lineage);
    if let Some(singleton) = singleton {
        extra.push(serve_also(singleton, &orch)?);
    }
    extra.push(tokio::spawn(heal_state_dir(
        Arc::clone(&paths),
        Arc::clone(&orch),
    )));
    server::serve(listener, Arc::clone(&orch)).await;
    for task in extra {
        task.abort();
    }
    signals.abort();
    // Orphans of the stack that exited during the last stop are our children (subreaper):
    // reap them now, or they would linger as zombies under whatever inherits them (and
    // keep the cgroup populated).
    let _ = platform::reap_any();
    for err in membership.remove_cgroups() {
        tracing::warn!("{}", err.one_line());
    }
    orch.set_supervisor(None);
    // Written after the removal: the registry names the cgroup only if it is still there.
    orch.save_now().await;
    // The stack is down: the next `up` runs its oneshots again.
    registry::runs::clear(&paths.runs_dir);
    let _ = fs::remove_file(&paths.socket);
    tracing::info!("supervisor stopped");
    Ok(())
}

/// Without a cgroup: record the descendants of every process (and the orphans re-parented to
/// the supervisor, the subreaper) on every event that may change them, and on the slow scan
/// (see `lineage`), so that a command run after a supervisor SIGKILL still finds them.
async fn record_lineage(
    orch: Arc<orchestrator::Orchestrator>,
    membership: Arc<Membership>,
    reaper: Arc<reaper::Reaper>,
    mut events: broadcast::Receiver<crate::control::protocol::Event>,
) {
    let slow = lineage::slow_scan();
    let mut pace = lineage::Pace::new(lineage::MIN_INTERVAL);
    loop {
        tokio::select! {
            event = events.recv() => {
                if matches!(event, Err(broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
            () = reaper.reaped() => {}
            () = tokio::time::sleep(slow) => {}
        }
        // At most one record per interval: the events that arrive meanwhile are covered by
        // this (trailing) record.
        tokio::time::sleep_until(pace.next_at(tokio::time::Instant::now())).await;
        pace.started(tokio::time::Instant::now());
        // A burst of events is one record.
        while !matches!(
            events.try_recv(),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
        ) {}
        if lineage::record(&membership, orch.mains()).await {
            orch.mark_dirty();
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let targets: tracing_subscriber::filter::Targets = std::env::var(crate::env_vars::ENV_LOG)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(io::stderr),
        )
        .with(targets)
        .try_init();
}
