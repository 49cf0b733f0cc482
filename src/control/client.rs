//! The blocking client the CLI uses: connect, send one request, read frames.
//!
//! No async runtime on the CLI side: a command is one connect, one write and a few
//! reads, and the CLI's cold start stays small.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::MAX_FRAME;
use super::protocol::{PROTOCOL_VERSION, Request, RequestFrame, Response};
use crate::paths::Paths;

/// An open connection carrying one request.
pub struct Connection {
    reader: BufReader<UnixStream>,
}

impl Connection {
    /// Connect and send `request`.
    pub fn send(paths: &Paths, request: Request) -> io::Result<Self> {
        let mut stream = connect(paths)?;
        let frame = RequestFrame {
            v: PROTOCOL_VERSION,
            request,
        };
        let mut bytes = serde_json::to_vec(&frame).map_err(io::Error::other)?;
        bytes.push(b'\n');
        stream.write_all(&bytes)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// The socket itself, for a reader on another runtime (an async one): only before
    /// any frame was read, so no buffered bytes are lost.
    pub fn into_stream(self) -> UnixStream {
        self.reader.into_inner()
    }

    /// Bound how long one read may block (`None` = forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }

    /// Next frame; `Ok(None)` when the supervisor closed the connection.
    pub fn next_frame(&mut self) -> io::Result<Option<Response>> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_FRAME as u64)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&line)
            .map(Some)
            .map_err(io::Error::other)
    }

    /// Read until the final frame, handing every event to `on_event`.
    pub fn finish(
        mut self,
        mut on_event: impl FnMut(&super::protocol::Event),
    ) -> io::Result<Response> {
        loop {
            match self.next_frame()? {
                Some(Response::Event(event)) => on_event(&event),
                Some(other) => return Ok(other),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the supervisor closed the connection before answering",
                    ));
                }
            }
        }
    }
}

use std::io::Read as _;

/// Talk only to a supervisor run by us (or by root, who can read our files anyway): another
/// user who planted a socket in our place must not receive our environment with `up`, nor
/// answer `down` with a fake "stopped".
fn check_peer(stream: &UnixStream, socket: &str) -> io::Result<()> {
    let peer = crate::platform::peer_uid(stream)?;
    let me = crate::platform::current_uid();
    if peer == me || peer == 0 {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is served by {} (uid {peer}), not by you; refusing to talk to it",
            socket,
            crate::platform::user_name(peer)
        ),
    ))
}

/// Connect to the project's supervisor: its socket file, or — when that is gone, for example
/// because `.procs/` was deleted under a running stack — its abstract socket, which cannot be
/// deleted. Either way only a peer of our own uid (or root) is accepted.
fn connect(paths: &Paths) -> io::Result<UnixStream> {
    let (stream, shown) = match UnixStream::connect(&paths.socket) {
        Ok(stream) => (stream, paths.socket.display().to_string()),
        Err(file_err) => match crate::platform::connect_abstract(&paths.singleton) {
            Ok(stream) => (stream, format!("@{}", paths.singleton)),
            Err(_) => return Err(file_err),
        },
    };
    check_peer(&stream, &shown)?;
    Ok(stream)
}

/// Open a subscription ([`Request::Subscribe`]): read its frames with
/// [`Connection::next_frame`] (a snapshot first, then events); `Ok(None)` means the
/// supervisor exited.
pub fn subscribe(paths: &Paths) -> io::Result<Connection> {
    Connection::send(paths, Request::Subscribe)
}

/// `Ok(pid)` when a supervisor answers a ping (within 5 s).
pub fn ping(paths: &Paths) -> io::Result<i32> {
    ping_within(paths, Duration::from_secs(5))
}

/// `Ok(pid)` when a supervisor answers a ping within `patience`; a supervisor that
/// accepts the connection but does not answer in time is an error of kind `WouldBlock`
/// or `TimedOut`.
pub fn ping_within(paths: &Paths, patience: Duration) -> io::Result<i32> {
    let conn = Connection::send(paths, Request::Ping)?;
    conn.set_read_timeout(Some(patience.max(Duration::from_millis(1))))?;
    match conn.finish(|_| {})? {
        Response::Pong { pid, version } if version == PROTOCOL_VERSION => Ok(pid),
        Response::Pong { version, .. } => Err(io::Error::other(format!(
            "the running supervisor speaks protocol {version}, this procs speaks {PROTOCOL_VERSION}"
        ))),
        Response::Error(body) => Err(io::Error::other(body.message)),
        other => Err(io::Error::other(format!("unexpected answer {other:?}"))),
    }
}
