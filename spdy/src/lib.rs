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
pub mod server;
mod stream;

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
/// returned [`Connection`]; use the [`Handle`].
pub fn handshake<T>(io: T, role: Role, version: Version, config: Config) -> (Handle, Connection<T>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    start(io, Session::new(role, version, config))
}

/// Starts a server session that takes its version (2, 3 or 3.1) from the
/// client's first frame, as a plain-TCP server offering every version does.
pub fn handshake_detect<T>(io: T, config: Config) -> (Handle, Connection<T>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    start(io, Session::detecting(config))
}

fn start<T: AsyncRead + AsyncWrite + Unpin>(io: T, session: Session) -> (Handle, Connection<T>) {
    let (conn, shared) = Connection::new(io, session);
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

/// A stream the peer opened, from [`Handle::accept`].
#[derive(Debug)]
pub struct IncomingStream {
    shared: Arc<Shared>,
    id: StreamId,
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
    pub fn reply(self, headers: HeaderBlock, fin: bool) -> Result<(SendStream, RecvStream), Error> {
        let mut state = self.shared.lock();
        state.session.reply(self.id, headers, fin)?;
        state.wake_driver();
        Ok(stream::pair(&mut state, &self.shared, self.id))
    }

    /// The receiving half of a unidirectional stream (nothing to reply).
    pub fn into_recv(self) -> RecvStream {
        stream::recv_only(&self.shared, self.id)
    }

    /// Splits the stream into its receiving half and a [`Responder`] that
    /// replies later: a server reads the request body before it answers.
    pub fn into_parts(self) -> (Responder, RecvStream) {
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
    pub fn refuse(self, status: RstStatus) -> Result<(), Error> {
        let mut state = self.shared.lock();
        state.session.reset(self.id, status)?;
        state.slots.remove(&self.id);
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
                    headers: incoming.headers,
                    associated_to: incoming.associated_to,
                    priority: incoming.priority,
                    unidirectional: incoming.unidirectional,
                }));
            }
            if state.terminal.is_some() || state.goaway.is_some() {
                return Poll::Ready(None);
            }
            state.accept_waker = Some(cx.waker().clone());
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

    /// The session's version (for a detecting server, once known).
    pub fn version(&self) -> Option<Version> {
        self.shared.lock().session.version()
    }
}
