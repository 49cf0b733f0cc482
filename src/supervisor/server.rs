//! The control socket server: one task per connection, one handler per request.
//!
//! Owns: peer checks (only the socket owner's uid is served), frame decoding with the
//! size cap, protocol-version checks, and writing responses back as they come.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::orchestrator::Orchestrator;
use crate::control::MAX_FRAME;
use crate::control::protocol::{ErrorBody, PROTOCOL_VERSION, Request, RequestFrame, Response};
use crate::error::exit;

/// Accept connections until a full `down` (or a signal) asks the supervisor to exit.
pub async fn serve(listener: UnixListener, orch: Arc<Orchestrator>) {
    let shutdown = Arc::clone(&orch);
    tokio::select! {
        () = accept_loop(listener, orch) => {}
        () = shutdown.shutdown.notified() => {}
    }
}

/// Accept connections on `listener` for as long as the task runs.
pub async fn accept_loop(listener: UnixListener, orch: Arc<Orchestrator>) {
    let uid = crate::platform::current_uid();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let orch = Arc::clone(&orch);
                tokio::spawn(async move { handle(stream, orch, uid).await });
            }
            Err(err) => tracing::warn!("accept failed: {err}"),
        }
    }
}

fn error(code: i32, message: impl Into<String>) -> Response {
    Response::Error(ErrorBody {
        message: message.into(),
        code,
        hint: None,
    })
}

async fn handle(stream: UnixStream, orch: Arc<Orchestrator>, uid: u32) {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == uid || cred.uid() == 0 => {}
        _ => return,
    }
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_FRAME as u64));
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await.is_err() || line.is_empty() {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Response>(256);
    // A subscription has no final frame: it lasts until the client hangs up, which only a
    // read of the connection notices when nothing changes for a while.
    let mut watch_hangup = false;
    match serde_json::from_slice::<RequestFrame>(&line) {
        Err(err) => {
            let _ = tx
                .send(error(exit::USAGE, format!("malformed request: {err}")))
                .await;
        }
        Ok(frame) if frame.v != PROTOCOL_VERSION => {
            let msg = format!(
                "this supervisor speaks protocol {PROTOCOL_VERSION}, the client speaks {}",
                frame.v
            );
            let _ = tx.send(error(exit::FAILED, msg)).await;
        }
        Ok(frame) => {
            watch_hangup = matches!(frame.request, Request::Subscribe);
            let orch = Arc::clone(&orch);
            tokio::spawn(dispatch(frame.request, orch, tx));
        }
    }
    let mut full_down = false;
    loop {
        let response = tokio::select! {
            response = rx.recv() => match response {
                Some(response) => response,
                None => break,
            },
            () = hangup(&mut reader), if watch_hangup => break,
        };
        if let Response::Done(outcome) = &response {
            full_down = outcome.notes.iter().any(|n| n == SHUTDOWN_NOTE);
        }
        let Ok(mut bytes) = serde_json::to_vec(&response) else {
            continue;
        };
        bytes.push(b'\n');
        if write.write_all(&bytes).await.is_err() {
            break;
        }
        if response.is_final() {
            break;
        }
    }
    // Dropping `rx` ends a subscription's task (it waits on `closed()`).
    drop(rx);
    let _ = write.shutdown().await;
    if full_down {
        orch.shutdown.notify_one();
    }
}

/// Resolves when the client closed its end (or the connection broke); whatever else it
/// sends after its request is ignored.
async fn hangup<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) {
    let mut buf = [0_u8; 256];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Marker note on the outcome of a full `down`: the supervisor exits after answering.
pub const SHUTDOWN_NOTE: &str = "supervisor stopped";

async fn dispatch(request: Request, orch: Arc<Orchestrator>, tx: mpsc::Sender<Response>) {
    match request {
        Request::Ping => {
            let _ = tx
                .send(Response::Pong {
                    pid: std::process::id() as i32,
                    version: PROTOCOL_VERSION,
                })
                .await;
        }
        Request::Up(req) => orch.up(req, tx).await,
        Request::Subscribe => orch.subscribe(tx).await,
        Request::Down { names, timeout_ms } => {
            let full = names.is_empty();
            let timeout = timeout_ms.map(Duration::from_millis);
            match orch.stop(&names, timeout, full, &tx).await {
                Ok(mut outcome) => {
                    if full {
                        outcome.notes.push(SHUTDOWN_NOTE.to_owned());
                    }
                    let _ = tx.send(Response::Done(outcome)).await;
                }
                Err(response) => {
                    let _ = tx.send(response).await;
                }
            }
        }
        Request::Stop { names, timeout_ms } => {
            let timeout = timeout_ms.map(Duration::from_millis);
            let response = match orch.stop(&names, timeout, false, &tx).await {
                Ok(outcome) => Response::Done(outcome),
                Err(response) => response,
            };
            let _ = tx.send(response).await;
        }
        Request::Start { names, timeout_ms } => orch.start(names, timeout_ms, tx).await,
        Request::Restart { names, timeout_ms } => orch.restart(names, timeout_ms, tx).await,
    }
}
