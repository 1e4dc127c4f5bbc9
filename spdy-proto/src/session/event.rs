use std::time::Duration;

use super::error::{SessionError, StreamError};
use crate::frame::{GoAwayStatus, Settings, StreamId, Version};
use crate::header_block::HeaderBlock;

/// Something the application should know, from [`Session::poll_event`].
///
/// Stream data is not carried in events: `Readable` says there is some, and
/// [`Session::recv`] takes it, so that what sits in the session stays bounded
/// by the flow-control windows.
///
/// [`Session::poll_event`]: super::Session::poll_event
/// [`Session::recv`]: super::Session::recv
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The session's version became known (a server detecting it from the
    /// first frame), or changed from SPDY/3 to 3.1.
    Version(Version),
    /// The peer opened a stream (SYN_STREAM).
    StreamOpened {
        /// The new stream.
        id: StreamId,
        /// For a pushed stream, the stream it belongs to.
        associated_to: Option<StreamId>,
        /// Priority, 0 highest (SPDY/2's 0..=3 or SPDY/3's 0..=7).
        priority: u8,
        /// Its headers.
        headers: HeaderBlock,
        /// The peer sends nothing more (FLAG_FIN).
        fin: bool,
        /// We may not send on it (FLAG_UNIDIRECTIONAL, e.g. a push).
        unidirectional: bool,
    },
    /// The peer accepted a stream we opened (SYN_REPLY).
    Reply {
        /// The stream.
        id: StreamId,
        /// The reply headers.
        headers: HeaderBlock,
        /// The peer sends nothing more.
        fin: bool,
    },
    /// More headers on a stream (HEADERS), e.g. trailers.
    Headers {
        /// The stream.
        id: StreamId,
        /// The headers.
        headers: HeaderBlock,
        /// The peer sends nothing more.
        fin: bool,
    },
    /// Data, or the end of the peer's data, can be taken with `recv`.
    Readable {
        /// The stream.
        id: StreamId,
    },
    /// Room opened in the stream's send buffer (after `send_data` failed
    /// with `BufferFull`, or `poll_capacity` returned 0).
    Writable {
        /// The stream.
        id: StreamId,
    },
    /// A stream we opened was sent to the peer (it may have waited for the
    /// peer's concurrency limit).
    StreamStarted {
        /// The stream.
        id: StreamId,
    },
    /// A stream ended abnormally.
    StreamFailed {
        /// The stream.
        id: StreamId,
        /// How.
        error: StreamError,
    },
    /// The peer reset a stream after finishing its own side: our sending
    /// side is over (what was queued is dropped), while everything the peer
    /// sent stays readable to its end. This is how a server that answered
    /// without reading the whole request stops the upload. A `StreamClosed`
    /// follows.
    SendStopped {
        /// The stream.
        id: StreamId,
        /// The status of the peer's RST_STREAM.
        status: crate::frame::RstStatus,
    },
    /// Both sides finished a stream normally.
    StreamClosed {
        /// The stream.
        id: StreamId,
    },
    /// The peer sent SETTINGS (entries with PERSIST_VALUE are the ones a
    /// client should store and replay on the next session to this origin).
    Settings(Settings),
    /// The answer to one of our PINGs.
    Pong {
        /// The ping id.
        id: u32,
        /// Time between sending and receiving.
        rtt: Duration,
    },
    /// The peer sent GOAWAY: it opens no more streams and processed ours
    /// only up to `last_good_stream_id`.
    GoAway {
        /// Highest of our streams the peer accepted.
        last_good_stream_id: StreamId,
        /// Why (always `Ok` in SPDY/2).
        status: GoAwayStatus,
    },
    /// The session is over. `None` for a clean end (both GOAWAY-drained or
    /// closed by us); otherwise the error. Nothing follows this event; the
    /// caller flushes `poll_transmit` and closes the connection.
    Closed {
        /// Why, if it was an error.
        error: Option<SessionError>,
    },
}
