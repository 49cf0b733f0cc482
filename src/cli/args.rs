//! The command line, declared once with clap; completions and the man page are generated
//! from these definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Bring a whole stack of local processes up and down from procs.yaml.
#[derive(Debug, Parser)]
#[command(name = "procs", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Use this config file instead of searching for procs.yaml upwards from here.
    /// (Give it before the command: `procs -f x.yaml up`; `procs logs -f` means follow.)
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Machine-readable JSON output where it applies.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less (only errors and final results).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// No colours (also when `NO_COLOR` is set or output is not a terminal).
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile and start the stack (or the named processes and their dependencies);
    /// return once each is ready.
    Up(UpArgs),
    /// Stop processes in reverse dependency order, whole trees, verified; without names
    /// the supervisor exits too.
    Down(DownArgs),
    /// Full-screen terminal dashboard: live process table, logs, one-key actions.
    Ui,
    /// One row per process: state, pid, uptime, restarts, CPU, memory, ports.
    #[command(visible_alias = "ps")]
    Status(NamesArgs),
    /// Show process logs, prefixed with the process name.
    Logs(LogsArgs),
    /// Start stopped processes (dependencies are started first when needed).
    Start(StartArgs),
    /// Stop processes (their trees, verified) without stopping the supervisor.
    Stop(StopArgs),
    /// Restart processes one at a time in dependency order, each ready again before the
    /// next is stopped: the named ones (and their `restart: true` dependents), or without
    /// names the whole stack (a rolling restart).
    Restart(RestartArgs),
    /// Validate the config and print it resolved (defaults filled, variables expanded).
    Config,
    /// Print the dependency graph.
    Graph(GraphArgs),
    /// Find stale records and pid files, escaped or leftover processes, zombies, held
    /// ports and a dead supervisor's leftovers; `--fix` cleans them.
    Doctor(DoctorArgs),
    /// Every project on this machine with a registry, and what runs there.
    Ls(LsArgs),
    /// Declared ports: listening or not, and who holds them (pid, user, command, ours or
    /// foreign). Works without a supervisor.
    Ports,
    /// Serve a local web page and an HTTP API (`/api/v1`) for every project `procs ls`
    /// knows; prints the URL (with this run's token) to open.
    Dashboard(DashboardArgs),
    /// Serve the Model Context Protocol over stdio for this project (tools: status, logs,
    /// start, stop, restart, up, down; resources: the config and each log), for AI agents.
    Mcp,
    /// Print the JSON Schema of procs.yaml.
    Schema,
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    #[command(name = "man")]
    Man,
    /// Run the supervisor (internal: started by `procs up`).
    #[command(name = "__supervise", hide = true)]
    Supervise(SuperviseArgs),
}

impl Command {
    /// Commands that only read and print, and so may simply end when their reader goes away
    /// (`procs logs -f | grep -m1 ready`). Commands that change state finish their work.
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Self::Status(_)
                | Self::Logs(_)
                | Self::Config
                | Self::Graph(_)
                | Self::Ls(_)
                | Self::Ports
                | Self::Schema
                | Self::Completions(_)
                | Self::Man
        )
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Processes to start (with their dependencies); default: every process not disabled.
    pub names: Vec<String>,
    /// Stay in the foreground streaming logs; Ctrl-C brings the stack down.
    #[arg(long, conflicts_with = "ui")]
    pub attach: bool,
    /// Open the terminal dashboard (`procs ui`) and bring the stack up from there.
    #[arg(long)]
    pub ui: bool,
    /// Return once the supervisor accepted the request, without waiting for readiness.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for readiness.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Start only the named processes, not their dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// Stop foreign processes holding declared ports (SIGTERM, grace, SIGKILL).
    #[arg(long)]
    pub kill_port_owners: bool,
    /// Print what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Processes to stop; default: all, and the supervisor.
    pub names: Vec<String>,
    /// Override every `stop_timeout`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Processes to stop.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Override their `stop_timeout`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Processes to start.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// How long to wait for readiness.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Processes to restart (default: the whole stack, rolling).
    pub names: Vec<String>,
    /// How long to wait for readiness (for the whole restart).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Only these processes.
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Processes whose logs to show; default: those of the current config.
    pub names: Vec<String>,
    /// Keep printing new output (across restarts and rotations).
    #[arg(short, long)]
    pub follow: bool,
    /// Lines to show from the end of each log (of those that pass --since, --until, --grep).
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
    /// Print the time each line was written (UTC, to within 100 ms).
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only output written since then: a duration ago (`10m`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub since: Option<std::time::SystemTime>,
    /// Only output written until then: a duration ago (`10m`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub until: Option<std::time::SystemTime>,
    /// Only lines matching this regular expression.
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub grep: Option<String>,
    /// With --grep: ignore case.
    #[arg(short = 'i', long, requires = "grep")]
    pub ignore_case: bool,
    /// Print each log as its own block instead of one timeline.
    #[arg(long)]
    pub no_merge: bool,
    /// Also the logs of processes no longer in the config.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Also list projects whose directory is gone and where nothing runs.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Port to listen on (default: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on; anything but loopback needs `--allow-remote`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub listen: std::net::IpAddr,
    /// Allow `--listen` on a non-loopback address. Dangerous: whoever reaches it and
    /// learns the token (plain HTTP) controls your processes as you.
    #[arg(long)]
    pub allow_remote: bool,
    /// Open the page in a browser (`xdg-open`).
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Clean up what was found, and say what was done.
    #[arg(long)]
    pub fix: bool,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    #[arg(long)]
    pub project_dir: PathBuf,
    #[arg(long)]
    pub state_dir: PathBuf,
    #[arg(long)]
    pub project: String,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); try 30s, 500ms, 2m"))
}

/// `10m` (that long ago), `30` (seconds ago) or an RFC 3339 time (`2026-12-02T16:49:22Z`,
/// also without the zone, read as UTC).
fn parse_when(s: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let ago = parse_duration(s).map_err(|_| {
        format!("`{s}` is neither a duration (30s, 10m, 2h) nor a time (2026-12-02T16:49:22Z)")
    })?;
    Ok(crate::logs::cutoff(ago))
}

fn parse_regex(s: &str) -> Result<String, String> {
    regex::Regex::new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("`{s}` is not a regular expression: {e}"))
}
