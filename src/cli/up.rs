//! `procs up`, `procs start`, `procs restart`: ask the supervisor (starting one if
//! needed) and report readiness truthfully.

use std::collections::BTreeSet;
use std::time::Duration;

use super::args::{Global, UpArgs};
use super::out::Out;
use super::{down, launch, logs, project, render};
use crate::config::Config;
use crate::config::graph::Graph;
use crate::control::protocol::{Request, UpRequest};
use crate::error::exit;
use crate::paths::Paths;
use crate::platform;
use crate::registry::{self, Loaded};

fn check_names(config: &crate::config::Config, names: &[String]) -> anyhow::Result<()> {
    project::check_names(
        &config.file,
        names,
        &project::defined(config),
        BTreeSet::new,
    )?;
    Ok(())
}

pub fn up(global: &Global, out: &Out, args: &UpArgs) -> anyhow::Result<i32> {
    let config = project::load(global)?;
    check_names(&config, &args.names)?;
    let paths = Paths::new(&config.project_dir);
    if args.dry_run {
        return dry_run(&config, &paths, args, out);
    }
    let deadline = render::deadline_after(args.timeout);
    launch::ensure_within(
        &paths,
        &config.name,
        args.timeout.saturating_add(render::VERDICT_GRACE),
    )?;
    // `--attach` shows every line from the first: each log is followed from where it ends
    // now, before anything starts (a rotation or a new file meanwhile is followed too).
    let followed = args.attach.then(|| attach_from_now(&paths, &config));
    let request = Request::Up(UpRequest {
        config: config.clone(),
        env: project::invoking_env(),
        names: args.names.clone(),
        no_deps: args.no_deps,
        wait: !args.no_wait,
        timeout_ms: args.timeout.as_millis() as u64,
        kill_port_owners: args.kill_port_owners,
    });
    let response = render::request_until(&paths, request, out, deadline)?;
    let code = render::report(&response, out, "up", args.timeout)?;
    if let Some(files) = followed
        && code == exit::OK
    {
        return attach(&paths, &config, files, out);
    }
    Ok(code)
}

pub fn start(
    global: &Global,
    out: &Out,
    names: &[String],
    timeout: Duration,
    restart: bool,
) -> anyhow::Result<i32> {
    let config = project::load(global)?;
    check_names(&config, names)?;
    let paths = Paths::new(&config.project_dir);
    // `procs up NAMES`, waiting for readiness as `start` does.
    let up_names = |names: Vec<String>| {
        let args = UpArgs {
            names,
            attach: false,
            ui: false,
            no_wait: false,
            timeout,
            no_deps: false,
            kill_port_owners: false,
            dry_run: false,
        };
        up(global, out, &args)
    };
    if !launch::running(&paths) {
        return up_names(names.to_vec());
    }
    // Names added to procs.yaml since the last `up` are unknown to the running stack:
    // they are brought up with the current procs.yaml, as `procs up NAMES` would.
    let (names, added) =
        project::split_by_running_stack(project::recorded_names(&paths).as_ref(), names);
    let mut code = exit::OK;
    if !added.is_empty() {
        code = up_names(added)?;
        if names.is_empty() {
            return Ok(code);
        }
    }
    let timeout_ms = timeout.as_millis() as u64;
    let request = if restart {
        Request::Restart {
            names: names.clone(),
            timeout_ms,
        }
    } else {
        Request::Start {
            names: names.clone(),
            timeout_ms,
        }
    };
    let response = render::request_until(&paths, request, out, render::deadline_after(timeout))?;
    let verdict = render::report(
        &response,
        out,
        if restart { "restart" } else { "start" },
        timeout,
    )?;
    Ok(verdict.max(code))
}

fn dry_run(
    config: &crate::config::Config,
    paths: &Paths,
    args: &UpArgs,
    out: &Out,
) -> anyhow::Result<i32> {
    let graph = Graph::new(config)?;
    let selection = crate::plan::selection(config, &graph, &args.names, args.no_deps);
    let registry = match registry::load(&paths.state_file, false)? {
        Loaded::Ok(reg) => Some(reg),
        _ => None,
    };
    let supervised = registry
        .as_ref()
        .and_then(|r| r.supervisor.as_ref())
        .is_some_and(|s| crate::platform::is_alive_same(s.pid, s.start_time, &s.boot_id));
    let registry = registry.map(|mut r| {
        if !supervised {
            r.supervisor = None;
        }
        r
    });
    let live = |name: &str| {
        registry
            .as_ref()
            .and_then(|r| r.processes.get(name))
            .is_some_and(|rec| rec.verified().is_some())
    };
    let actions = crate::plan::plan(
        config,
        registry.as_ref(),
        &selection,
        &graph.start_order(),
        &live,
    );
    if out.json {
        println!("{}", serde_json::json!({ "actions": actions }));
    } else {
        for a in &actions {
            if a.reasons.is_empty() {
                println!("{:<8} {}", a.action, a.name);
            } else {
                println!("{:<8} {} ({})", a.action, a.name, a.reasons.join(", "));
            }
        }
    }
    Ok(exit::OK)
}

/// Every process's log, followed from its end as it is now.
fn attach_from_now(paths: &Paths, config: &Config) -> Vec<crate::logs::Followed> {
    config
        .processes
        .keys()
        .map(|n| crate::logs::Followed::at_end(n, paths.log_file(n)))
        .collect()
}

/// `up --attach`: stream prefixed logs (`files`, positioned before the stack was started)
/// until Ctrl-C or SIGTERM, then bring the stack down.
fn attach(
    paths: &Paths,
    config: &Config,
    files: Vec<crate::logs::Followed>,
    out: &Out,
) -> anyhow::Result<i32> {
    let stop = platform::stop_flag()?;
    let names: Vec<String> = config.processes.keys().cloned().collect();
    let printer = logs::Printer::plain(&names, out);
    logs::follow(paths, files, &printer, true, &|| {
        stop.load(std::sync::atomic::Ordering::SeqCst)
    })?;
    if !out.quiet {
        eprintln!("stopping the stack…");
    }
    let global = Global {
        file: Some(config.file.clone()),
        json: false,
        quiet: out.quiet,
        verbose: out.verbose,
        no_color: !out.color,
    };
    down::down(&global, out, &[], None, true)
}
