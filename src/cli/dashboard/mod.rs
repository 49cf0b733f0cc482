//! `procs dashboard`: a foreground web server on loopback serving the page and the
//! `/api/v1` HTTP API for every project `procs ls` knows.
//!
//! Owns: the listening socket, the run's token and the runtime the server runs on (built
//! only for this command, so other commands start as fast as before). Supervisors open
//! no port: this process talks to each over its control socket.
//! Invariant: without `--allow-remote` it listens only on a loopback address.

mod api;
mod auth;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::args::DashboardArgs;
use super::out::Out;
use crate::error::{Error, exit};

pub fn dashboard(out: &Out, args: &DashboardArgs) -> anyhow::Result<i32> {
    let ip: IpAddr = args.listen;
    if !ip.is_loopback() && !args.allow_remote {
        return Err(Error::ListenNotLoopback {
            addr: ip.to_string(),
        }
        .into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(out, args, SocketAddr::new(ip, args.port)))
}

async fn serve(out: &Out, args: &DashboardArgs, addr: SocketAddr) -> anyhow::Result<i32> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::DashboardBind {
            addr: addr.to_string(),
            error: e.to_string(),
        })?;
    let local = listener.local_addr()?;
    let token = auth::new_token()?;
    let url = format!("http://{local}/?token={token}");
    if out.json {
        println!(
            "{}",
            serde_json::json!({ "url": url, "address": local.to_string(), "token": token })
        );
    } else {
        println!("dashboard: {url}");
        if !local.ip().is_loopback() {
            eprintln!(
                "warning: serving on {local}, beyond this machine: the token travels in clear over plain HTTP"
            );
        }
        println!("(Ctrl-C stops it; the token is valid for this run only)");
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    if args.open {
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    let guard = Arc::new(auth::Guard::new(token, local, args.allow_remote));
    let app = api::router(guard);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(exit::OK)
}
