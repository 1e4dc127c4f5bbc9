//! SPDY/2, SPDY/3 and SPDY/3.1 over tokio.
//!
//! # Layout
//!
//! - [`Connection`] (module `conn`): the task that owns a socket and drives
//!   the sans-IO session of [`spdy_proto`].
//! - [`Handle`]: opens streams, accepts the peer's streams, pings, and
//!   shuts the session down gracefully. Cheap to clone.
//! - [`SendStream`] / [`RecvStream`]: the two halves of a stream, with
//!   flow-control backpressure both ways.
//!
//! Either end of a TCP connection may take either SPDY role: the role only
//! decides stream-id parity. An origin behind NAT can dial a proxy and then
//! serve the proxy's streams with [`Role::Server`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), spdy::Error> {
//! use spdy::{Config, Role, Version};
//! use spdy::proto::header_block::HeaderBlock;
//!
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:4040").await?;
//! let (handle, connection) = spdy::handshake(tcp, Role::Client, Version::V3_1, Config::default());
//! tokio::spawn(connection);
//! let headers: HeaderBlock = [(":method", "GET"), (":path", "/"), (":version", "HTTP/1.1"),
//!     (":host", "localhost"), (":scheme", "http")].into_iter().collect();
//! let (mut send, mut recv) = handle.open_stream(headers, Default::default())?;
//! send.finish()?;
//! let reply = recv.reply().await?;
//! let body = recv.read_to_end(1 << 20).await?;
//! # let _ = (reply, body);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod body;
pub mod client;
mod conn;
mod error;
pub mod headers;
pub mod io;
mod reset_budget;
pub mod server;
mod stream;
pub mod tls;
pub mod upgrade;

pub use body::RecvBody;
pub use conn::Connection;
pub use error::Error;
pub use spdy_proto as proto;
pub use spdy_proto::frame::{RstStatus, StreamId, Version};
pub use spdy_proto::session::{Config, OpenOptions, Role};
pub use stream::{RecvStream, SendStream};

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use spdy_proto::frame::GoAwayStatus;
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::Session;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::conn::Shared;

/// Starts a session of `version` in `role` on a connected socket. Spawn the
/// returned [`Connection`]; use the [`Handle`]. On TCP, set `TCP_NODELAY`
/// first: frames are written whole, and Nagle's algorithm would hold a
/// small one for the peer's delayed ACK.
pub fn handshake<T>(io: T, role: Role, version: Version, config: Config) -> (Handle, Connection<T>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let max_incoming = config.max_concurrent_streams() as usize;
    start(io, Session::new(role, version, config), max_incoming)
}

/// Starts a server session that takes its version (2, 3 or 3.1) from the
/// client's first frame, as a plain-TCP server offering every version does.
pub fn handshake_detect<T>(io: T, config: Config) -> (Handle, Connection<T>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let max_incoming = config.max_concurrent_streams() as usize;
    start(io, Session::detecting(config), max_incoming)
}

fn start<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    session: Session,
    max_incoming: usize,
) -> (Handle, Connection<T>) {
    let (conn, shared) = Connection::new(io, session, max_incoming.max(1));
    (Handle { shared }, conn)
}

/// Controls a session: open and accept streams, ping, go away.
///
/// When the last `Handle` is dropped the session goes away gracefully: no
/// new streams, and the connection closes once open streams finish.
#[derive(Debug)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Clone for Handle {
    fn clone(&self) -> Handle {
        self.shared.lock().handles += 1;
        Handle {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.handles = state.handles.saturating_sub(1);
        if state.handles == 0 {
            state.session.go_away(GoAwayStatus::Ok);
            state.dispatch_events();
            state.wake_driver();
        }
    }
}

/// Refuses a stream that was accepted but then dropped unanswered, so it
/// neither holds a concurrency slot nor stalls a graceful shutdown.
#[derive(Debug)]
struct Unanswered {
    shared: Arc<Shared>,
    id: StreamId,
    armed: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.shared.lock();
        state.slots.remove(&self.id);
        if state
            .session
            .reset(self.id, RstStatus::RefusedStream)
            .is_ok()
        {
            state.wake_driver();
        }
    }
}

/// A stream the peer opened, from [`Handle::accept`]. Dropping it without
/// replying (or taking its halves) refuses it with REFUSED_STREAM.
#[derive(Debug)]
pub struct IncomingStream {
    shared: Arc<Shared>,
    id: StreamId,
    guard: Unanswered,
    /// The stream's headers (SYN_STREAM).
    pub headers: HeaderBlock,
    /// For a pushed stream, the stream it belongs to.
    pub associated_to: Option<StreamId>,
    /// The peer's priority for it (0 highest).
    pub priority: u8,
    /// The peer will not let us send on it (a push, for instance).
    pub unidirectional: bool,
}

impl IncomingStream {
    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Accepts the stream with reply headers (SYN_REPLY); `fin` ends our
    /// side at once. Returns both halves (the sending half is already
    /// finished if `fin`).
    pub fn reply(
        mut self,
        headers: HeaderBlock,
        fin: bool,
    ) -> Result<(SendStream, RecvStream), Error> {
        let mut state = self.shared.lock();
        // On failure (the peer reset it meanwhile) the guard cleans up.
        state.session.reply(self.id, headers, fin)?;
        self.guard.armed = false;
        state.wake_driver();
        Ok(stream::pair(&mut state, &self.shared, self.id))
    }

    /// The receiving half of a unidirectional stream (nothing to reply).
    pub fn into_recv(mut self) -> RecvStream {
        self.guard.armed = false;
        stream::recv_only(&self.shared, self.id)
    }

    /// Splits the stream into its receiving half and a [`Responder`] that
    /// replies later: a server reads the request body before it answers.
    pub fn into_parts(mut self) -> (Responder, RecvStream) {
        self.guard.armed = false;
        let recv = stream::recv_only(&self.shared, self.id);
        let mut state = self.shared.lock();
        if let Some(slot) = state.slots.get_mut(&self.id) {
            slot.refs += 1;
        }
        drop(state);
        (
            Responder {
                shared: self.shared.clone(),
                id: self.id,
                replied: false,
            },
            recv,
        )
    }

    /// Refuses the stream (RST_STREAM with `status`, e.g. REFUSED_STREAM).
    pub fn refuse(mut self, status: RstStatus) -> Result<(), Error> {
        self.guard.armed = false;
        let mut state = self.shared.lock();
        state.slots.remove(&self.id);
        state.session.reset(self.id, status)?;
        state.wake_driver();
        Ok(())
    }
}

/// The right to reply to a stream the peer opened, apart from reading it.
#[derive(Debug)]
pub struct Responder {
    shared: Arc<Shared>,
    id: StreamId,
    replied: bool,
}

impl Responder {
    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Replies (SYN_REPLY) and returns the sending half.
    pub fn reply(mut self, headers: HeaderBlock, fin: bool) -> Result<SendStream, Error> {
        let mut state = self.shared.lock();
        state.session.reply(self.id, headers, fin)?;
        state.wake_driver();
        self.replied = true;
        // The reference this responder held passes to the sending half.
        Ok(stream::send_only(self.shared.clone(), self.id))
    }

    /// Ready with the reason once the stream ended abnormally before the
    /// reply (the peer reset it, or the connection ended): whoever is
    /// preparing the answer can stop. The server drops a request's
    /// service future then.
    pub fn poll_reset(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Error> {
        let mut state = self.shared.lock();
        // A reset of a stream whose request was complete stops only our
        // sending side: the answer is as unwanted.
        if let Some(error) = state.send_error(self.id) {
            return std::task::Poll::Ready(error);
        }
        match state.slots.get_mut(&self.id) {
            Some(slot) => {
                slot.reset_waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
            // Forgotten by the session: nothing will come for it.
            None => {
                std::task::Poll::Ready(Error::Stream(proto::session::StreamError::SessionClosed))
            }
        }
    }

    /// Resets the stream instead of replying.
    pub fn reset(self, status: RstStatus) -> Result<(), Error> {
        let mut state = self.shared.lock();
        state.session.reset(self.id, status)?;
        state.wake_driver();
        Ok(())
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.replied {
            self.shared.lock().release_stream_ref(self.id);
        }
    }
}

impl Handle {
    /// Opens a stream with `headers`. If the peer's concurrency limit is
    /// reached the stream waits (data written meanwhile is buffered).
    pub fn open_stream(
        &self,
        headers: HeaderBlock,
        options: OpenOptions,
    ) -> Result<(SendStream, RecvStream), Error> {
        let mut state = self.shared.lock();
        if let Some(e) = state.terminal.clone() {
            return Err(e);
        }
        let id = state.session.open_stream(headers, options)?;
        state.wake_driver();
        Ok(stream::pair(&mut state, &self.shared, id))
    }

    /// The next stream the peer opens; `None` once the session is over or the
    /// peer went away.
    pub async fn accept(&self) -> Option<IncomingStream> {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if let Some(incoming) = state.incoming.pop_front() {
                return Poll::Ready(Some(IncomingStream {
                    shared: self.shared.clone(),
                    id: incoming.id,
                    guard: Unanswered {
                        shared: self.shared.clone(),
                        id: incoming.id,
                        armed: true,
                    },
                    headers: incoming.headers,
                    associated_to: incoming.associated_to,
                    priority: incoming.priority,
                    unidirectional: incoming.unidirectional,
                }));
            }
            if state.terminal.is_some() || state.goaway.is_some() {
                return Poll::Ready(None);
            }
            state.wait_accept(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Sends a PING and waits for the answer; returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let id = {
            let mut state = self.shared.lock();
            if let Some(e) = state.terminal.clone() {
                return Err(e);
            }
            let now = tokio::time::Instant::now().into_std();
            let id = state.session.ping(now)?;
            state.pings.insert(id, Default::default());
            state.wake_driver();
            id
        };
        // If this future is dropped before the answer (a timeout, say), its
        // entry goes with it.
        struct Forget<'a>(&'a Shared, u32);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.lock().pings.remove(&self.1);
            }
        }
        let _forget = Forget(&self.shared, id);
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            let terminal = state.terminal.clone();
            let Some(ping) = state.pings.get_mut(&id) else {
                return Poll::Ready(Err(Error::ConnectionClosed));
            };
            if let Some(rtt) = ping.rtt {
                state.pings.remove(&id);
                return Poll::Ready(Ok(rtt));
            }
            if let Some(e) = terminal {
                state.pings.remove(&id);
                return Poll::Ready(Err(e));
            }
            ping.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Starts a graceful shutdown: GOAWAY, no new streams, and the
    /// connection closes when the open streams finish.
    pub fn go_away(&self) {
        let mut state = self.shared.lock();
        state.session.go_away(GoAwayStatus::Ok);
        state.dispatch_events();
        state.wake_driver();
    }

    /// Pushes a stream associated with `associated_to` (server only; see
    /// [`SendStream::push`]).
    pub fn push(
        &self,
        associated_to: StreamId,
        headers: HeaderBlock,
        priority: u8,
    ) -> Result<SendStream, Error> {
        let mut state = self.shared.lock();
        let id = state.session.push(associated_to, headers, priority)?;
        state.slots.entry(id).or_default().refs += 1;
        state.wake_driver();
        Ok(stream::send_only(self.shared.clone(), id))
    }

    /// Resets a stream by id (for instance one whose headers were invalid).
    pub fn reset(&self, id: StreamId, status: RstStatus) -> Result<(), Error> {
        let mut state = self.shared.lock();
        state.session.reset(id, status)?;
        state.wake_driver();
        Ok(())
    }

    /// Refuses every stream the peer opened that nobody accepted yet
    /// (REFUSED_STREAM: safe for the peer to retry).
    pub fn refuse_incoming(&self) {
        self.shared.lock().refuse_incoming();
    }

    /// The session's version (for a detecting server, once known).
    pub fn version(&self) -> Option<Version> {
        self.shared.lock().session.version()
    }
}
