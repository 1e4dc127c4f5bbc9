//! The sans-IO SPDY session: every rule of the protocol above the wire
//! layer, with no socket, task or clock of its own.
//!
//! A [`Session`] is driven from outside, in the manner of quinn-proto:
//!
//! - **input**: [`handle_input`](Session::handle_input) with received bytes
//!   and the current time, [`handle_timeout`](Session::handle_timeout) when
//!   [`poll_timeout`](Session::poll_timeout)'s deadline passes, and
//!   [`handle_eof`](Session::handle_eof) when the connection ends;
//! - **application commands**: open, reply, send, receive, reset, push,
//!   ping, go away;
//! - **output**: after any input or command, call
//!   [`poll_transmit`](Session::poll_transmit) until `None` and write what it
//!   returns, then [`poll_event`](Session::poll_event) until `None`, then
//!   [`poll_timeout`](Session::poll_timeout). Time must never go backwards.
//!
//! Flow control is the memory bound: what a peer can make a session buffer
//! is its stream windows (for each stream) and, in SPDY/3.1, its session
//! window (for all streams together); a WINDOW_UPDATE is sent only when the
//! application [releases](Session::release_capacity) data it has consumed,
//! and once when a stream opens if its window is above the 64 KiB every
//! peer assumes (`Config::with_initial_window`).
//! What we buffer to send is bounded the same way: per stream, what the
//! peer's windows allow plus a slack (`Config::with_send_slack`). Every
//! other queue a peer can grow has a limit in [`Config`]. The zlib states
//! (some 250 KiB to send, 46 KiB to receive) are built at the first header
//! block each way, so an idle session holds well under 1 KiB.
//!
//! ```
//! use std::time::Instant;
//! use bytes::{Buf, BytesMut};
//! use spdy_proto::frame::Version;
//! use spdy_proto::header_block::HeaderBlock;
//! use spdy_proto::session::{Config, Event, OpenOptions, Recv, Role, Session};
//!
//! let now = Instant::now();
//! let mut client = Session::new(Role::Client, Version::V3_1, Config::default());
//! let mut server = Session::new(Role::Server, Version::V3_1, Config::default());
//! let headers: HeaderBlock = [(":method", "GET"), (":path", "/"), (":version", "HTTP/1.1"),
//!     (":host", "example.com"), (":scheme", "http")].into_iter().collect();
//! let id = client.open_stream(headers, OpenOptions { fin: true, ..Default::default() }).unwrap();
//!
//! // What one side transmits, the other receives (here without a socket).
//! let mut wire = BytesMut::new();
//! while let Some(mut t) = client.poll_transmit(now) {
//!     let n = t.remaining();
//!     wire.extend_from_slice(&t.copy_to_bytes(n));
//! }
//! server.handle_input(now, &mut wire);
//! // First the client's SETTINGS, then the new stream.
//! assert!(matches!(server.poll_event(), Some(Event::Settings(_))));
//! assert!(matches!(server.poll_event(), Some(Event::StreamOpened { id: got, fin: true, .. }) if got == id));
//! assert_eq!(server.recv(id, 1024), Ok(Recv::End));
//! ```

mod config;
mod error;
mod event;
mod flow;
mod limits;
mod ping;
mod recv;
mod scheduler;
mod seen_ids;
mod send;
mod stalls;
mod stream;

pub use config::{Config, RateLimit, DEFAULT_STALL_TIMEOUT, DEFAULT_WINDOW, MAX_WINDOW};
pub use error::{Flood, Initiator, ProtocolViolation, SessionError, StreamError, UserError};
pub use event::Event;
pub use seen_ids::UNORDERED_ID_WINDOW;
pub use send::Transmit;
pub use stalls::Stall;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use self::flow::Window;
use self::limits::RateCounter;
use self::ping::PingState;
use self::scheduler::Scheduler;
use self::seen_ids::SeenIds;
use self::stalls::{Expired, Stalls};
use self::stream::Stream;
use crate::codec::{FrameDecoder, FrameEncoder};
use crate::frame::{
    Frame, GoAway, GoAwayStatus, RstStatus, RstStream, Setting, SettingId, Settings, StreamId,
    SynReply, SynStream, Version, WindowUpdate,
};
use crate::header_block::{validate_block, HeaderBlock};

/// Which end of the session this is. It decides the parity of the stream
/// ids and ping ids we use (client odd, server even), and nothing about who
/// dialed the TCP connection: an origin behind NAT may dial out and then
/// play the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opens odd-numbered streams.
    Client,
    /// Opens even-numbered streams and may push.
    Server,
}

/// How long a detected SPDY/3 session that may be 3.1 waits, its tentative
/// 64 KiB session window spent, for the peer's first WINDOW_UPDATE(0)
/// before it takes the peer for plain SPDY/3 (see `Session::settle_v3`):
/// one second, several round trips on any path, and a delay a SPDY/3 peer
/// pays at most once per session.
const V3_DETECT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What [`Session::recv`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    /// Some of the stream's data, in order.
    Data(Bytes),
    /// The peer finished its side: no more data will come.
    End,
    /// Nothing buffered now; an [`Event::Readable`] will say when.
    Pending,
}

/// Options for [`Session::open_stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// Priority, 0 highest: 0..=7 (SPDY/3), 0..=3 (SPDY/2).
    pub priority: u8,
    /// Send nothing after the headers (FLAG_FIN).
    pub fin: bool,
    /// The peer may not send on this stream (FLAG_UNIDIRECTIONAL).
    pub unidirectional: bool,
}

/// A stream we opened that waits for the peer's concurrency limit.
#[derive(Debug)]
struct PendingOpen {
    frame: SynStream,
}

/// A SPDY session, either role, any version. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    role: Role,
    version: Option<Version>,
    /// The version was detected from the first frame (not configured).
    detected: bool,
    /// A detected SPDY/3 session was found to be plain SPDY/3 (see
    /// `settle_v3`): it will not become 3.1 any more.
    v3_settled: bool,
    /// Stream WINDOW_UPDATE credit a detected SPDY/3 peer has returned
    /// while it might yet be 3.1 (see `settle_v3`).
    v3_stream_credit: u64,
    /// When a detected SPDY/3 session that may be 3.1 first found its
    /// tentative session window spent with data to send (see `settle_v3`).
    v3_blocked_since: Option<Instant>,
    /// Some stream may have data waiting on a shut window (its
    /// `window_blocked_since` set): only then are the streams searched for
    /// the stall deadline, so sessions that never block pay nothing.
    window_blocks: bool,
    config: Config,
    decoder: Option<FrameDecoder>,
    encoder: Option<FrameEncoder>,

    streams: HashMap<StreamId, Stream>,
    scheduler: Scheduler,
    /// Frames to send before any DATA, in order.
    control: VecDeque<Frame>,
    /// Frames the peer made us owe it (PING answers, resets for its
    /// mistakes): sent before `control`, and bounded, so a peer that does
    /// not read cannot make them pile up.
    owed: VecDeque<Frame>,
    /// SPDY/2: streams holding at least `v2_stream_cap` unread bytes; while
    /// any does, input pauses.
    full_streams: usize,
    events: VecDeque<Event>,
    pending_opens: VecDeque<PendingOpen>,

    next_local_id: u32,
    /// Highest stream id the peer opened (SYN_STREAM seen).
    last_remote_id: StreamId,
    /// The peer's ids used within a bounded window below `last_remote_id`,
    /// for `Config::tolerate_unordered_stream_ids`.
    seen_remote_ids: SeenIds,
    /// Highest peer stream whose [`Event::StreamOpened`] the application
    /// has taken from `poll_event`: our GOAWAY's last-good id. Streams
    /// above it were never processed, so the peer may retry them (2.6.6).
    last_handed_remote: StreamId,
    local_active: usize,
    remote_active: usize,
    /// Streams we reset recently: late frames for them are dropped quietly.
    recently_reset: VecDeque<StreamId>,
    /// Streams that finished recently: late DATA is a PROTOCOL_ERROR (2.3.7)
    /// rather than an INVALID_STREAM.
    recently_closed: VecDeque<StreamId>,

    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until sent).
    peer_max_concurrent: u32,
    /// The peer's SETTINGS_INITIAL_WINDOW_SIZE: our new streams' send window.
    peer_initial_window: u32,
    /// Values a server asked us (a client) to persist.
    persisted: Vec<Setting>,

    conn_send_window: Window,
    conn_recv_window: Window,
    conn_pending_update: u32,

    ping: PingState,
    stalls: Stalls,
    /// Bytes `handle_input` left in the caller's buffer last time.
    input_left: usize,
    peer_resets: RateCounter,
    ping_rate: RateCounter,
    settings_rate: RateCounter,
    empty_frames: RateCounter,
    small_frames: RateCounter,

    goaway_sent: bool,
    goaway_received: Option<StreamId>,
    /// Whether the peer's first frame has been seen (its version checked).
    first_frame_seen: bool,
    /// A GOAWAY held until open streams finish (peer-compat mode).
    deferred_goaway: Option<GoAwayStatus>,
    /// Set once the session is over: `Some(None)` clean, `Some(Some(e))`
    /// error.
    closed: Option<Option<SessionError>>,
    /// Frames processed and dropped (streams we reset, after GOAWAY).
    ignored_frames: RateCounter,
    /// Header-block bytes inflated for such frames.
    ignored_header_bytes: RateCounter,
}

impl Session {
    /// A session of known version.
    pub fn new(role: Role, version: Version, config: Config) -> Session {
        let mut session = Session::with_version(role, None, config);
        session.set_version(version);
        session
    }

    /// A server session that takes its version (2, or 3 / 3.1) from the
    /// first control frame the client sends, as a plain-TCP server
    /// accepting every version must.
    pub fn detecting(config: Config) -> Session {
        let mut session = Session::with_version(Role::Server, None, config);
        session.detected = true;
        session
    }

    fn with_version(role: Role, version: Option<Version>, config: Config) -> Session {
        let now_limits = |limit| RateCounter::new(limit);
        Session {
            role,
            version,
            detected: false,
            v3_settled: false,
            v3_stream_credit: 0,
            v3_blocked_since: None,
            window_blocks: false,
            decoder: None,
            encoder: None,
            streams: HashMap::new(),
            scheduler: Scheduler::default(),
            control: VecDeque::new(),
            owed: VecDeque::new(),
            full_streams: 0,
            events: VecDeque::new(),
            pending_opens: VecDeque::new(),
            next_local_id: match role {
                Role::Client => 1,
                Role::Server => 2,
            },
            last_remote_id: StreamId::ZERO,
            seen_remote_ids: SeenIds::default(),
            last_handed_remote: StreamId::ZERO,
            local_active: 0,
            remote_active: 0,
            recently_reset: VecDeque::new(),
            recently_closed: VecDeque::new(),
            peer_max_concurrent: u32::MAX,
            peer_initial_window: DEFAULT_WINDOW,
            persisted: Vec::new(),
            conn_send_window: Window::new(DEFAULT_WINDOW),
            conn_recv_window: Window::new(DEFAULT_WINDOW),
            conn_pending_update: 0,
            ping: PingState::new(role, config.keepalive),
            input_left: 0,
            stalls: Stalls::new(
                config.first_frame_timeout,
                config.frame_timeout,
                config.idle_timeout,
            ),
            peer_resets: now_limits(config.peer_reset_rate),
            ping_rate: now_limits(config.ping_rate),
            settings_rate: now_limits(config.settings_rate),
            empty_frames: now_limits(config.empty_frame_rate),
            small_frames: now_limits(config.small_frame_rate),
            goaway_sent: false,
            goaway_received: None,
            first_frame_seen: false,
            deferred_goaway: None,
            closed: None,
            ignored_frames: now_limits(config.ignored_frame_rate),
            ignored_header_bytes: now_limits(config.ignored_header_bytes),
            config,
        }
    }

    /// Fixes the version and queues the frames that open a session: our
    /// SETTINGS and, in SPDY/3.1, the session window increase.
    fn set_version(&mut self, version: Version) {
        self.version = Some(version);
        self.decoder = Some(FrameDecoder::new(version, self.config.decode));
        self.encoder = Some(FrameEncoder::with_compression(
            version,
            self.config.compression,
        ));
        if !self.flow_controlled() {
            self.conn_send_window = Window::unlimited();
            self.conn_recv_window = Window::unlimited();
        }
        let mut entries = vec![Setting::new(
            SettingId::MaxConcurrentStreams,
            self.config.max_concurrent_streams,
        )];
        // A smaller stream window can only be had by SETTINGS; a larger
        // one is given stream by stream (`raise_stream_window`).
        if version != Version::V2 && self.config.initial_window < DEFAULT_WINDOW {
            entries.push(Setting::new(
                SettingId::InitialWindowSize,
                self.config.initial_window,
            ));
        }
        // A client returns what a server asked it to persist (2.6.4).
        if self.role == Role::Client {
            for setting in &self.persisted {
                if entries.iter().all(|e| e.id != setting.id) {
                    entries.push(Setting {
                        persist_value: false,
                        persisted: true,
                        ..*setting
                    });
                }
            }
        }
        self.control
            .push_back(Frame::Settings(Settings::new(entries)));
        if version == Version::V3_1 && self.config.peer_flow_control {
            self.enable_session_window();
        }
    }

    /// Starts SPDY/3.1 session flow control: raise the peer's view of our
    /// session window to the configured size (plus any credit released while
    /// a detected session still looked like SPDY/3).
    fn enable_session_window(&mut self) {
        let delta = (self.config.session_window - DEFAULT_WINDOW)
            .saturating_add(std::mem::take(&mut self.conn_pending_update));
        if delta > 0 {
            let _ = self.conn_recv_window.increase(delta, i64::MAX / 8);
            self.control
                .push_back(Frame::WindowUpdate(WindowUpdate::new(
                    StreamId::ZERO,
                    delta,
                )));
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The version, once known.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// Settings persisted by the server for this origin, for a client to
    /// replay on its next session ([`set_persisted_settings`]).
    ///
    /// [`set_persisted_settings`]: Session::set_persisted_settings
    pub fn persisted_settings(&self) -> &[Setting] {
        &self.persisted
    }

    /// Gives a client the settings a server asked it to persist on an
    /// earlier session; they are sent with FLAG_SETTINGS_PERSISTED. Call
    /// before the first `poll_transmit`. Only ids the spec defines are
    /// kept, the first value of each.
    pub fn set_persisted_settings(&mut self, settings: Vec<Setting>) {
        if self.role != Role::Client {
            return;
        }
        let mut seen = [false; 8];
        self.persisted = settings
            .into_iter()
            .filter(|s| {
                recv::known_setting_slot(s.id)
                    .is_some_and(|slot| !std::mem::replace(&mut seen[slot], true))
            })
            .collect();
        if let Some(Frame::Settings(first)) = self.control.front_mut() {
            for setting in &self.persisted {
                if first.entries.iter().all(|e| e.id != setting.id) {
                    first.entries.push(Setting {
                        persist_value: false,
                        persisted: true,
                        ..*setting
                    });
                }
            }
        }
    }

    /// Streams open now: (opened by us, opened by the peer).
    pub fn active_streams(&self) -> (usize, usize) {
        (self.local_active, self.remote_active)
    }

    /// Whether a stream opened now would go out at once: `Ok(false)` while
    /// the peer's MAX_CONCURRENT_STREAMS is reached (it would wait in the
    /// pending queue), the error [`open_stream`](Self::open_stream) would
    /// give once no stream can be opened (`Closing` after a GOAWAY either
    /// way). What a driver's `poll_ready` asks.
    pub fn can_open(&self) -> Result<bool, UserError> {
        self.check_open_allowed()?;
        Ok(self.pending_opens.is_empty() && self.local_active < self.peer_max_concurrent as usize)
    }

    /// Whether the session is over and everything it had to send has been
    /// handed out by `poll_transmit`.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some() && self.control.is_empty() && self.owed.is_empty()
    }

    /// Streams the peer has cancelled, or made us refuse or reset, so far:
    /// what counts against [`Config::with_peer_reset_rate`]. A driver adds
    /// these up across the sessions of one client to enforce a limit that
    /// no single session sees (rapid resets spread over many connections).
    pub fn peer_resets_counted(&self) -> u64 {
        self.peer_resets.total()
    }

    /// Ends the session as if the peer had exceeded `flood` (GOAWAY
    /// PROTOCOL_ERROR, every stream fails): for limits kept outside the
    /// session, such as one shared by all connections of a client address.
    pub fn close_flooded(&mut self, flood: Flood) {
        self.fail_session(SessionError::Flood(flood));
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::StreamOpened { id, .. } = &event {
            // Ids of peer streams only grow, and so do their events.
            self.last_handed_remote = self.last_handed_remote.max(*id);
        }
        Some(event)
    }

    /// Before our GOAWAY goes out: the peer's streams the application has
    /// not been handed yet (their `StreamOpened` still queued) were not
    /// processed, and the GOAWAY's last-good id will say so, so the peer
    /// may retry them on another session. They must then never reach the
    /// application: they are dropped with their events, and frames that
    /// follow for them are ignored like any new stream after GOAWAY.
    /// `graceful`: the session goes on, so their unread data goes back to
    /// the session window and the streams leave the counts.
    fn drop_unhanded_streams(&mut self, graceful: bool) {
        let last = self.last_handed_remote;
        let unhanded = |s: &Session, id: StreamId| id > last && !id.is_zero() && s.is_peer_id(id);
        let ids: Vec<StreamId> = self
            .streams
            .keys()
            .copied()
            .filter(|id| unhanded(self, *id))
            .collect();
        let events = std::mem::take(&mut self.events);
        self.events = events
            .into_iter()
            .filter(|e| !event_stream(e).is_some_and(|id| unhanded(self, id)))
            .collect();
        for id in ids {
            if graceful {
                self.end_stream_abruptly(id);
            } else {
                self.streams.remove(&id);
            }
        }
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) must be
    /// called (keepalive, and the waits on a stalled or idle peer).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let stalls = self
            .stalls
            .next_deadline(self.awaiting_first_frame(), self.going_away());
        let v3_detect = self.v3_blocked_since.map(|t| t + V3_DETECT_GRACE);
        [
            self.ping.next_deadline(),
            stalls,
            v3_detect,
            self.window_stall_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the first stream waiting on a shut window times out.
    fn window_stall_deadline(&self) -> Option<Instant> {
        let timeout = self.config.window_stall_timeout?;
        if !self.window_blocks {
            return None;
        }
        self.streams
            .values()
            .filter_map(|s| s.window_blocked_since)
            .min()
            .map(|since| since + timeout)
    }

    /// Fails the streams whose data has waited on a shut window, with no
    /// WINDOW_UPDATE, for `window_stall_timeout`: the peer is not going to
    /// open it (see [`StreamError::WindowStalled`]).
    fn fail_window_stalls(&mut self, now: Instant) {
        let Some(timeout) = self.config.window_stall_timeout else {
            return;
        };
        let session_shut = self.session_window_tracked() && self.conn_send_window.available() == 0;
        let mut stalled = Vec::new();
        for (id, stream) in self.streams.iter_mut() {
            let Some(since) = stream.window_blocked_since else {
                continue;
            };
            let shut = stream.send_window.available() == 0 || session_shut;
            if stream.send_queued == 0 || stream.local_closed || !shut {
                // It may send again: the clock waits for the next block.
                stream.window_blocked_since = None;
            } else if now >= since + timeout {
                stalled.push((*id, now - since));
            }
        }
        for (id, waited) in stalled {
            self.send_reset(id, RstStatus::Cancel);
            self.fail_stream(id, StreamError::WindowStalled { waited });
        }
        self.window_blocks = self
            .streams
            .values()
            .any(|s| s.window_blocked_since.is_some());
    }

    /// A server still waits for the client's first frame.
    fn awaiting_first_frame(&self) -> bool {
        self.role == Role::Server && !self.first_frame_seen
    }

    fn going_away(&self) -> bool {
        self.goaway_sent || self.goaway_received.is_some()
    }

    /// Keeps the idle clock: a session is idle while it holds no stream,
    /// not even one whose data waits for the application.
    fn note_idle(&mut self, now: Instant) {
        self.stalls.start(now);
        let idle = self.streams.is_empty() && self.pending_opens.is_empty();
        self.stalls.set_idle(now, idle);
    }

    /// Advances timers: sends the keepalive PING when the connection has been
    /// idle, and ends the session if it goes unanswered; ends a session
    /// whose peer stalled ([`SessionError::Stalled`]) and sends GOAWAY on
    /// one idle for too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.note_idle(now);
        if self
            .v3_blocked_since
            .is_some_and(|t| now >= t + V3_DETECT_GRACE)
        {
            self.v3_blocked_since = None;
            self.settle_v3(true);
            self.reschedule_all();
        }
        self.fail_window_stalls(now);
        match self
            .stalls
            .on_timeout(now, self.awaiting_first_frame(), self.going_away())
        {
            Some(Expired::Stalled(stall)) => {
                self.fail_session(SessionError::Stalled(stall));
                return;
            }
            Some(Expired::Idle) => self.go_away(GoAwayStatus::Ok),
            None => {}
        }
        match self.ping.on_timeout(now) {
            ping::Timeout::None => {}
            ping::Timeout::SendPing(id) => {
                self.control
                    .push_back(Frame::Ping(crate::frame::Ping::new(id)));
            }
            ping::Timeout::Dead => self.fail_session(SessionError::KeepaliveTimeout),
        }
    }

    /// The connection ended (EOF or IO error). Streams still open fail with
    /// [`StreamError::SessionClosed`]; the session closes cleanly if nothing
    /// was in progress.
    pub fn handle_eof(&mut self) {
        if self.closed.is_some() {
            return;
        }
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            let unfinished = self.streams.get(&id).is_some_and(|s| !s.is_closed());
            if unfinished {
                self.fail_stream(id, StreamError::SessionClosed);
            }
        }
        self.fail_pending_opens(StreamError::SessionClosed);
        self.control.clear();
        self.owed.clear();
        self.closed = Some(None);
        self.events.push_back(Event::Closed { error: None });
    }

    // ===== application commands =====

    fn check_open_allowed(&self) -> Result<Version, UserError> {
        if self.closed.is_some() || self.goaway_sent || self.goaway_received.is_some() {
            return Err(UserError::Closing);
        }
        self.version.ok_or(UserError::VersionUnknown)
    }

    fn check_headers(&self, version: Version, headers: &HeaderBlock) -> Result<(), UserError> {
        validate_block(headers, version).map_err(UserError::InvalidHeaders)
    }

    fn check_priority(version: Version, priority: u8) -> Result<(), UserError> {
        if priority > SynStream::lowest_priority(version) {
            return Err(UserError::BadPriority(priority));
        }
        Ok(())
    }

    fn allocate_id(&mut self) -> Result<StreamId, UserError> {
        let id = StreamId::new(self.next_local_id).ok_or(UserError::StreamIdsExhausted)?;
        self.next_local_id += 2;
        Ok(id)
    }

    /// Opens a stream with `headers` (SYN_STREAM). If the peer's
    /// MAX_CONCURRENT_STREAMS is reached the stream waits in a bounded queue
    /// and [`Event::StreamStarted`] says when it goes out; data sent
    /// meanwhile is buffered.
    pub fn open_stream(
        &mut self,
        headers: HeaderBlock,
        options: OpenOptions,
    ) -> Result<StreamId, UserError> {
        let version = self.check_open_allowed()?;
        self.open_local(version, headers, options, StreamId::ZERO)
    }

    /// Validates and opens (or queues, under the peer's concurrency limit)
    /// a stream of ours: a plain one or, with `associated_to`, a push.
    fn open_local(
        &mut self,
        version: Version,
        headers: HeaderBlock,
        options: OpenOptions,
        associated_to: StreamId,
    ) -> Result<StreamId, UserError> {
        self.check_headers(version, &headers)?;
        Self::check_priority(version, options.priority)?;
        let must_wait = !self.pending_opens.is_empty()
            || self.local_active >= self.peer_max_concurrent as usize;
        if must_wait && self.pending_opens.len() >= self.config.max_pending_opens {
            return Err(UserError::TooManyPending);
        }
        let id = self.allocate_id()?;
        let frame = SynStream {
            associated_to,
            priority: options.priority,
            fin: options.fin,
            unidirectional: options.unidirectional,
            ..SynStream::new(id, headers)
        };
        self.insert_local_stream(&frame);
        if must_wait {
            self.pending_opens.push_back(PendingOpen { frame });
        } else {
            self.start_local_stream(frame);
        }
        Ok(id)
    }

    fn insert_local_stream(&mut self, frame: &SynStream) {
        let mut stream = Stream::new(
            true,
            frame.priority,
            self.new_send_window(),
            self.new_recv_window(),
        );
        stream.local_closed = frame.fin;
        stream.fin_queued = false;
        stream.associated_to = frame.associated_to;
        if frame.unidirectional {
            // The peer may not send, and will not reply.
            stream.remote_closed = true;
            stream.replied = true;
            stream.fin_taken = true;
        }
        stream.counted = false;
        self.streams.insert(frame.stream_id, stream);
    }

    /// Puts a local stream's SYN_STREAM on the control queue and counts it.
    fn start_local_stream(&mut self, frame: SynStream) {
        let id = frame.stream_id;
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.counted = true;
            // Control frames go out before any DATA, so data queued from
            // now on follows the SYN_STREAM on the wire.
            stream.opened_on_wire = true;
            self.local_active += 1;
        }
        let peer_sends = !frame.unidirectional;
        self.control.push_back(Frame::SynStream(frame));
        if peer_sends {
            self.raise_stream_window(id);
        }
        self.events.push_back(Event::StreamStarted { id });
        // Data or trailers queued while it waited can go now; a stream
        // opened with FIN and unidirectional is already over.
        self.schedule(id);
        self.after_half_close(id);
    }

    /// Opens pending local streams while the peer's limit allows.
    fn start_pending_opens(&mut self) {
        while self.local_active < self.peer_max_concurrent as usize {
            let Some(pending) = self.pending_opens.pop_front() else {
                break;
            };
            if self.streams.contains_key(&pending.frame.stream_id) {
                self.start_local_stream(pending.frame);
            }
        }
    }

    fn fail_pending_opens(&mut self, error: StreamError) {
        while let Some(pending) = self.pending_opens.pop_front() {
            let id = pending.frame.stream_id;
            if self.streams.remove(&id).is_some() {
                self.events.push_back(Event::StreamFailed {
                    id,
                    error: error.clone(),
                });
            }
        }
    }

    fn new_send_window(&self) -> Window {
        if !self.flow_controlled() {
            Window::unlimited()
        } else {
            Window::new(self.peer_initial_window)
        }
    }

    /// Gives a new stream on which the peer may send the configured window
    /// when it exceeds 64 KiB: a WINDOW_UPDATE of the difference, right
    /// after our SYN_STREAM or as soon as the peer's SYN_STREAM is
    /// accepted (before our SYN_REPLY, so an upload need not wait for the
    /// answer).
    ///
    /// Such a window is *not* advertised with SETTINGS_INITIAL_WINDOW_SIZE:
    /// some peers (Go SPDY/3.1 libraries) ignore that setting and assume
    /// 64 KiB, and would stall waiting for credit we hold back until half
    /// of the large window is used. Sending both would not do either: a
    /// peer that honours SETTINGS would add the update to the advertised
    /// size and believe in twice what we can hold. With the update alone,
    /// every peer counts 64 KiB + delta, the window we enforce
    /// (`new_recv_window`), and the half-window threshold for returning
    /// credit is reached whatever the peer. A smaller window still goes by
    /// SETTINGS, as no WINDOW_UPDATE can shrink one.
    fn raise_stream_window(&mut self, id: StreamId) {
        if !self.flow_controlled() || self.config.initial_window <= DEFAULT_WINDOW {
            return;
        }
        let delta = self.config.initial_window - DEFAULT_WINDOW;
        self.control
            .push_back(Frame::WindowUpdate(WindowUpdate::new(id, delta)));
    }

    /// The receive window a new stream starts with. Until the peer has seen
    /// our SETTINGS it may use the 64 KiB default, so a smaller configured
    /// window is enforced from 64 KiB (it still limits what we release).
    fn new_recv_window(&self) -> Window {
        if !self.flow_controlled() {
            Window::unlimited()
        } else {
            Window::new(self.config.initial_window.max(DEFAULT_WINDOW))
        }
    }

    /// Accepts a stream the peer opened (SYN_REPLY).
    pub fn reply(
        &mut self,
        id: StreamId,
        headers: HeaderBlock,
        fin: bool,
    ) -> Result<(), UserError> {
        let version = self.version.ok_or(UserError::VersionUnknown)?;
        self.check_headers(version, &headers)?;
        let stream = self
            .streams
            .get_mut(&id)
            .ok_or(UserError::UnknownStream(id))?;
        if stream.local || stream.replied || stream.local_closed {
            return Err(UserError::CannotReply(id));
        }
        stream.replied = true;
        stream.opened_on_wire = true;
        if fin {
            stream.fin_queued = true;
        }
        self.control.push_back(Frame::SynReply(SynReply {
            fin,
            ..SynReply::new(id, headers)
        }));
        if fin {
            self.close_local(id);
        } else {
            self.schedule(id);
        }
        Ok(())
    }

    /// Sends more headers on a stream (HEADERS): after any data already
    /// queued, so they can serve as trailers.
    pub fn send_headers(
        &mut self,
        id: StreamId,
        headers: HeaderBlock,
        fin: bool,
    ) -> Result<(), UserError> {
        let version = self.version.ok_or(UserError::VersionUnknown)?;
        self.check_headers(version, &headers)?;
        let stream = self.sendable_stream(id)?;
        if stream.fin_queued {
            return Err(UserError::SendClosed(id));
        }
        match &mut stream.trailers {
            Some((pending, pending_fin)) => {
                for (name, value) in headers.into_pairs() {
                    pending.append(name, value);
                }
                *pending_fin |= fin;
            }
            None => stream.trailers = Some((headers, fin)),
        }
        self.schedule(id);
        Ok(())
    }

    fn sendable_stream(&mut self, id: StreamId) -> Result<&mut Stream, UserError> {
        let stream = self
            .streams
            .get_mut(&id)
            .ok_or(UserError::UnknownStream(id))?;
        let fin_pending = stream.trailers.as_ref().is_some_and(|(_, fin)| *fin);
        if stream.local_closed || fin_pending {
            return Err(UserError::SendClosed(id));
        }
        if !stream.local && !stream.replied {
            // A peer's stream gets our SYN_REPLY before anything else of
            // ours (some peers drop DATA that comes before it).
            return Err(UserError::CannotReply(id));
        }
        Ok(stream)
    }

    /// Bytes [`send_data`](Self::send_data) accepts now on `id`: what the
    /// stream may hold queued less what it holds. A stream may hold what
    /// the peer's windows let it send now plus a slack
    /// ([`Config::with_send_slack`]), and never more than
    /// [`Config::with_max_send_buffer`].
    pub fn send_capacity(&self, id: StreamId) -> Result<usize, UserError> {
        let stream = self.streams.get(&id).ok_or(UserError::UnknownStream(id))?;
        if stream.local_closed || stream.fin_queued {
            return Err(UserError::SendClosed(id));
        }
        Ok(self
            .send_allowance(stream)
            .saturating_sub(stream.send_queued))
    }

    /// What a stream may hold queued: what the peer's stream window lets
    /// it send now plus some slack (one DATA frame by default, so the next
    /// frame is ready when an update arrives), and never more than
    /// `max_send_buffer`. A peer that stops reading thus costs at most its
    /// window per stream, not our buffer size. Without flow control
    /// (SPDY/2, `peer_flow_control = false`) the windows are unlimited and
    /// `max_send_buffer` is the bound.
    ///
    /// The room this leaves only shrinks by the stream's own writes: data
    /// sent takes as much off the window as off the queue, and a lowered
    /// initial window is not counted (`send_granted`). The SPDY/3.1 session
    /// window is left out for the same reason: other streams' sends would
    /// shrink it between a writer's `poll_capacity` and its `send_data`.
    fn send_allowance(&self, stream: &Stream) -> usize {
        stream
            .send_granted
            .available()
            .saturating_add(self.config.send_slack)
            .min(self.config.max_send_buffer)
    }

    /// Sends the [`Event::Writable`] a writer asked for (`wants_writable`)
    /// once at least half of what the stream may hold is free: sending, a
    /// WINDOW_UPDATE (stream or session) or a larger initial window can
    /// each open room, and a writer that is never told would hang.
    pub(crate) fn notify_writable(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if !stream.wants_writable || stream.local_closed {
            return;
        }
        let allowance = self.send_allowance(stream);
        if stream.send_queued.saturating_mul(2) <= allowance {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.wants_writable = false;
            }
            self.events.push_back(Event::Writable { id });
        }
    }

    /// [`notify_writable`](Self::notify_writable) for every stream waiting
    /// for room (after every stream window grew).
    pub(crate) fn notify_all_writable(&mut self) {
        let waiting: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.wants_writable)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.notify_writable(id);
        }
    }

    /// Like [`send_capacity`](Self::send_capacity), but when there is no
    /// room it also asks for an [`Event::Writable`] once room opens, so an
    /// async caller can wait for it.
    pub fn poll_capacity(&mut self, id: StreamId) -> Result<usize, UserError> {
        let room = self.send_capacity(id)?;
        if room == 0 {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.wants_writable = true;
            }
        }
        Ok(room)
    }

    /// Queues data (and optionally the end of our side) on a stream. Fails
    /// with [`UserError::BufferFull`] if it exceeds
    /// [`send_capacity`](Self::send_capacity); nothing is queued then, and
    /// an [`Event::Writable`] follows when room opens.
    pub fn send_data(&mut self, id: StreamId, data: Bytes, fin: bool) -> Result<(), UserError> {
        let max = self
            .streams
            .get(&id)
            .map_or(0, |stream| self.send_allowance(stream));
        let stream = self.sendable_stream(id)?;
        if stream.fin_queued {
            return Err(UserError::SendClosed(id));
        }
        if !data.is_empty() && stream.send_queued + data.len() > max {
            stream.wants_writable = true;
            // A write larger than the room the windows allow may be refused
            // while little is queued, and then nothing may drain to wake
            // the writer: tell it at once that the room it has is all it
            // gets for now (it should write at most `send_capacity`).
            self.notify_writable(id);
            return Err(UserError::BufferFull(id));
        }
        if !data.is_empty() {
            stream.send_queued += data.len();
            stream.send_queue.push_back(data);
        }
        stream.fin_queued |= fin;
        self.schedule(id);
        Ok(())
    }

    /// Takes up to `max` bytes the peer sent on `id`. Taken bytes still count
    /// against the peer's window until [`release_capacity`] returns them.
    ///
    /// [`release_capacity`]: Self::release_capacity
    pub fn recv(&mut self, id: StreamId, max: usize) -> Result<Recv, UserError> {
        let cap = self.v2_stream_cap();
        let stream = self
            .streams
            .get_mut(&id)
            .ok_or(UserError::UnknownStream(id))?;
        let was_full = stream.recv_buffered >= cap;
        if let Some(chunk) = stream.pop_recv(max.max(1)) {
            stream.unreleased += chunk.len();
            if was_full && stream.recv_buffered < cap {
                self.full_streams -= 1;
            }
            return Ok(Recv::Data(chunk));
        }
        stream.readable_notified = false;
        if stream.remote_closed && !stream.fin_taken {
            stream.fin_taken = true;
            self.maybe_forget(id);
            return Ok(Recv::End);
        }
        if stream.fin_taken {
            return Ok(Recv::End);
        }
        Ok(Recv::Pending)
    }

    /// The application is done with `n` bytes it took from `id`: they leave
    /// the windows, and WINDOW_UPDATEs go out once enough has accumulated
    /// (half a window), so a slow reader slows the sender. Releasing more
    /// than was taken releases what was taken. A stream stays known until
    /// what was taken from it is released.
    pub fn release_capacity(&mut self, id: StreamId, n: usize) -> Result<(), UserError> {
        let half_window = (self.config.initial_window / 2).max(1);
        let flow_controlled = self.flow_controlled();
        let stream = self
            .streams
            .get_mut(&id)
            .ok_or(UserError::UnknownStream(id))?;
        let n = n.min(stream.unreleased);
        stream.unreleased -= n;
        // At most the taken bytes, which the window bounds: fits in u32.
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if flow_controlled {
            stream.pending_update = stream.pending_update.saturating_add(n);
            if !stream.remote_closed && stream.pending_update >= half_window {
                let delta = stream.pending_update;
                stream.pending_update = 0;
                // Cannot overflow: the window only returns what it lent.
                let _ = stream.recv_window.increase(delta, i64::MAX / 8);
                self.control
                    .push_back(Frame::WindowUpdate(WindowUpdate::new(id, delta)));
            }
        }
        self.release_session(n);
        self.maybe_forget(id);
        Ok(())
    }

    /// Whether the session windows are counted: in SPDY/3.1, and in a
    /// detected SPDY/3 session that may yet turn out to be 3.1 (its peer
    /// counts from the start, so we must too).
    fn session_window_tracked(&self) -> bool {
        if !self.config.peer_flow_control {
            return false;
        }
        match self.version {
            Some(Version::V3_1) => true,
            Some(Version::V3) => self.v3_undecided(),
            _ => false,
        }
    }

    /// A detected version-3 session whose peer may still turn out to speak
    /// 3.1 (it has sent no session WINDOW_UPDATE yet).
    pub(crate) fn v3_undecided(&self) -> bool {
        self.version == Some(Version::V3)
            && self.detected
            && self.config.upgrade_v3_to_v3_1
            && self.config.peer_flow_control
            && !self.v3_settled
    }

    /// While a detected session may be SPDY/3.1, what we send is limited by
    /// the 64 KiB session window a 3.1 peer assumes until its first
    /// WINDOW_UPDATE(0): sending past it would break a 3.1 peer's window
    /// (and it may never give the excess back). A plain SPDY/3 peer never
    /// opens that window, and we tell it apart by the credit it returns:
    /// once its stream WINDOW_UPDATEs have given back a whole initial
    /// session window (64 KiB) of what we sent (not counting raises of a
    /// window beyond that) while the session window is spent and no
    /// WINDOW_UPDATE(0) came, it has consumed everything a 3.1 peer could
    /// have let us send without crediting the session, which a 3.1 peer
    /// cannot do without stalling itself. The session is then SPDY/3 for
    /// good, and sending goes on by stream windows alone. Checked when
    /// sending, after the whole read was processed, so a 3.1 peer's stream
    /// and session updates written together are seen together.
    ///
    /// A SPDY/3 peer reading several streams may return no stream credit
    /// at all (each got less than its update threshold), and then looks
    /// exactly like a 3.1 peer whose application does not read: after
    /// [`V3_DETECT_GRACE`] blocked so, the session is taken for SPDY/3
    /// (`timed_out`), which at worst overruns a 3.1 peer that kept the
    /// 64 KiB default session window and stopped reading.
    pub(crate) fn settle_v3(&mut self, timed_out: bool) {
        if self.v3_undecided()
            && self.conn_send_window.available() == 0
            && (timed_out || self.v3_stream_credit >= u64::from(DEFAULT_WINDOW))
        {
            self.v3_settled = true;
            self.v3_blocked_since = None;
            self.conn_send_window = Window::unlimited();
            self.conn_recv_window = Window::unlimited();
            self.conn_pending_update = 0;
        }
    }

    /// Returns bytes to the session window: WINDOW_UPDATE(0) once half of it
    /// has accumulated (in SPDY/3.1; a detected SPDY/3 session keeps the
    /// credit until it learns the peer speaks 3.1).
    fn release_session(&mut self, n: u32) {
        if !self.session_window_tracked() {
            return;
        }
        self.conn_pending_update = self.conn_pending_update.saturating_add(n);
        self.send_session_credit();
    }

    /// Sends the session credit held back, once half the window has
    /// accumulated, or as soon as the peer's view of the window drops below
    /// half: credit must never be held while the peer waits on an empty
    /// window (other streams' unread data could then starve the rest).
    fn send_session_credit(&mut self) {
        if self.version != Some(Version::V3_1) || self.conn_pending_update == 0 {
            return;
        }
        let half = (self.config.session_window / 2).max(1);
        if self.conn_pending_update >= half || self.conn_recv_window.available() < half as usize {
            let delta = self.conn_pending_update;
            self.conn_pending_update = 0;
            let _ = self.conn_recv_window.increase(delta, i64::MAX / 8);
            self.control
                .push_back(Frame::WindowUpdate(WindowUpdate::new(
                    StreamId::ZERO,
                    delta,
                )));
        }
    }

    /// Resets a stream (RST_STREAM): both directions end at once and
    /// buffered data is dropped.
    pub fn reset(&mut self, id: StreamId, status: RstStatus) -> Result<(), UserError> {
        if !self.streams.contains_key(&id) {
            return Err(UserError::UnknownStream(id));
        }
        let on_wire = self.pending_opens.iter().all(|p| p.frame.stream_id != id);
        if on_wire {
            self.send_reset(id, status);
        } else {
            self.pending_opens.retain(|p| p.frame.stream_id != id);
        }
        self.end_stream_abruptly(id);
        Ok(())
    }

    /// The application is done with a stream. If our side has not ended
    /// (no FIN given) the stream is reset with CANCEL and forgotten.
    /// Otherwise unread data is dropped (and returned to the windows) and
    /// what is still queued, including our FIN, goes out as usual; if the
    /// peer has not finished its side, RST_STREAM CANCEL follows our FIN so
    /// that it stops sending. Data arriving meanwhile is discarded.
    pub fn cancel(&mut self, id: StreamId) -> Result<(), UserError> {
        let stream = self
            .streams
            .get_mut(&id)
            .ok_or(UserError::UnknownStream(id))?;
        let fin_given = stream.local_closed
            || stream.fin_queued
            || stream.trailers.as_ref().is_some_and(|(_, fin)| *fin);
        if !fin_given || (stream.local_closed && !stream.remote_closed) {
            return self.reset(id, RstStatus::Cancel);
        }
        // Our side is queued to finish: what is queued goes out first (a
        // server may answer before reading the request), and if the peer is
        // still sending, RST_STREAM CANCEL follows our FIN.
        stream.cancel_after_fin = !stream.remote_closed;
        stream.fin_taken = true;
        self.drop_unread(id);
        self.maybe_forget(id);
        Ok(())
    }

    /// Pushes a stream (server only) associated with `associated_to`, which
    /// must be a stream the client opened that we have not finished. The
    /// headers must name the resource (`:scheme`, `:host`, `:path` in
    /// SPDY/3; `url` in SPDY/2).
    pub fn push(
        &mut self,
        associated_to: StreamId,
        headers: HeaderBlock,
        priority: u8,
    ) -> Result<StreamId, UserError> {
        let version = self.check_open_allowed()?;
        if self.role != Role::Server {
            return Err(UserError::CannotPush("only a server pushes"));
        }
        let assoc = self
            .streams
            .get(&associated_to)
            .ok_or(UserError::CannotPush("associated stream is not open"))?;
        // 3.3.1: "once the originating stream is closed no further push
        // streams may be associated with it."
        if assoc.local || assoc.local_closed {
            return Err(UserError::CannotPush(
                "associated stream must be an open stream the client opened",
            ));
        }
        let required: &[&str] = if version == Version::V2 {
            &["url"]
        } else {
            &[":scheme", ":host", ":path"]
        };
        if required.iter().any(|name| headers.get(name).is_none()) {
            return Err(UserError::CannotPush(
                "pushed headers must name the resource (:scheme, :host, :path; url in SPDY/2)",
            ));
        }
        let options = OpenOptions {
            priority,
            fin: false,
            unidirectional: true,
        };
        self.open_local(version, headers, options, associated_to)
    }

    /// Sends a PING and returns its id; [`Event::Pong`] reports the round
    /// trip.
    pub fn ping(&mut self, now: Instant) -> Result<u32, UserError> {
        if self.closed.is_some() {
            return Err(UserError::Closing);
        }
        self.version.ok_or(UserError::VersionUnknown)?;
        let id = self.ping.start(now).ok_or(UserError::TooManyPings)?;
        self.control
            .push_back(Frame::Ping(crate::frame::Ping::new(id)));
        Ok(id)
    }

    /// Starts a graceful shutdown: GOAWAY with `status`, no new streams
    /// either way, and the session closes once the streams it accepted have
    /// finished. The GOAWAY names the last peer stream this application
    /// took from `poll_event`; peer streams still queued as events are
    /// dropped unseen, the peer being free to retry them elsewhere.
    pub fn go_away(&mut self, status: GoAwayStatus) {
        if self.closed.is_some() || self.goaway_sent {
            return;
        }
        if self.version.is_none() {
            self.close_now(None);
            return;
        }
        self.goaway_sent = true;
        if self.config.peer_flow_control {
            self.control
                .push_back(Frame::GoAway(GoAway::new(self.last_handed_remote, status)));
        } else {
            // Peers without flow control (spdystream) stop reading at a
            // GOAWAY, so data still queued for open streams would never be
            // read: the GOAWAY waits until those streams are done.
            self.deferred_goaway = Some(status);
        }
        // "After sending a GOAWAY, an endpoint MUST NOT create new streams."
        self.fail_pending_opens(StreamError::Refused);
        self.drop_unhanded_streams(true);
        self.check_drained();
    }

    // ===== shared machinery =====

    fn schedule(&mut self, id: StreamId) {
        if let Some(stream) = self.streams.get_mut(&id) {
            if !stream.scheduled && stream.has_send_work() {
                stream.scheduled = true;
                self.scheduler.push_back(id, stream.priority);
            }
        }
    }

    /// Remembers a finished stream, so that a late frame for it is told
    /// apart from one for a stream that never existed.
    fn remember_closed(&mut self, id: StreamId) {
        if self.config.max_recently_reset == 0 {
            return;
        }
        if self.recently_closed.len() >= self.config.max_recently_reset {
            self.recently_closed.pop_front();
        }
        self.recently_closed.push_back(id);
    }

    /// Queues a RST_STREAM and remembers the stream as recently reset.
    fn send_reset(&mut self, id: StreamId, status: RstStatus) {
        let status = match self.version {
            Some(version) => status.for_version(version),
            None => status,
        };
        self.control
            .push_back(Frame::RstStream(RstStream::new(id, status)));
        self.remember_reset(id);
    }

    fn remember_reset(&mut self, id: StreamId) {
        if self.config.max_recently_reset > 0 {
            if self.recently_reset.len() >= self.config.max_recently_reset {
                self.recently_reset.pop_front();
            }
            self.recently_reset.push_back(id);
        }
    }

    /// Closes both sides of a stream without ceremony and forgets it,
    /// returning its unread and unreleased bytes to the session window.
    fn end_stream_abruptly(&mut self, id: StreamId) {
        let Some(mut stream) = self.streams.remove(&id) else {
            return;
        };
        if stream.recv_buffered >= self.v2_stream_cap() {
            self.full_streams -= 1;
        }
        // What the peer sent that the application will never release.
        let returned =
            u32::try_from(stream.clear_buffers() + stream.unreleased).unwrap_or(u32::MAX);
        if stream.counted {
            self.uncount(&stream);
        }
        self.release_session(returned);
        self.check_drained();
        self.start_pending_opens();
    }

    fn uncount(&mut self, stream: &Stream) {
        if stream.local {
            self.local_active = self.local_active.saturating_sub(1);
        } else {
            self.remote_active = self.remote_active.saturating_sub(1);
        }
    }

    /// Ends a stream with an error the application sees.
    fn fail_stream(&mut self, id: StreamId, error: StreamError) {
        if self.streams.contains_key(&id) {
            self.events.push_back(Event::StreamFailed { id, error });
            self.end_stream_abruptly(id);
        }
    }

    /// Our side of `id` is finished (FIN queued or sent).
    fn close_local(&mut self, id: StreamId) {
        let mut cancel = false;
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.local_closed = true;
            cancel = stream.cancel_after_fin && !stream.remote_closed;
        }
        if cancel {
            // Our side is complete; now stop the peer's (see `cancel`).
            self.send_reset(id, RstStatus::Cancel);
            self.end_stream_abruptly(id);
            return;
        }
        self.after_half_close(id);
    }

    /// Counts a stream out once both sides are closed, and forgets it when
    /// the application has read everything.
    fn after_half_close(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.is_closed() && stream.counted {
            stream.counted = false;
            let local = stream.local;
            if local {
                self.local_active = self.local_active.saturating_sub(1);
            } else {
                self.remote_active = self.remote_active.saturating_sub(1);
            }
            self.events.push_back(Event::StreamClosed { id });
            self.start_pending_opens();
            self.check_drained();
        }
        self.maybe_forget(id);
    }

    fn maybe_forget(&mut self, id: StreamId) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.is_done() && !s.counted)
        {
            self.streams.remove(&id);
            self.remember_closed(id);
        }
    }

    /// After GOAWAY (either way), the session ends once no stream is left.
    fn check_drained(&mut self) {
        let going_away = self.goaway_sent || self.goaway_received.is_some();
        if going_away
            && self.closed.is_none()
            && self.local_active == 0
            && self.remote_active == 0
            && self.pending_opens.is_empty()
        {
            if let Some(status) = self.deferred_goaway.take() {
                self.control
                    .push_back(Frame::GoAway(GoAway::new(self.last_handed_remote, status)));
            }
            self.closed = Some(None);
            self.events.push_back(Event::Closed { error: None });
        }
    }

    /// A session error: GOAWAY with the error's status, every stream fails,
    /// and the session is over.
    fn fail_session(&mut self, error: SessionError) {
        if self.closed.is_some() {
            return;
        }
        tracing::debug!(%error, status = %error.goaway_status(), "session error: GOAWAY");
        self.control.clear();
        self.owed.clear();
        self.drop_unhanded_streams(false);
        if self.version.is_some() {
            self.control.push_back(Frame::GoAway(GoAway::new(
                self.last_handed_remote,
                error.goaway_status(),
            )));
        }
        self.close_now(Some(error));
    }

    fn close_now(&mut self, error: Option<SessionError>) {
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            if self.streams.get(&id).is_some_and(|s| !s.is_closed()) {
                self.events.push_back(Event::StreamFailed {
                    id,
                    error: StreamError::SessionClosed,
                });
            }
        }
        self.streams.clear();
        self.full_streams = 0;
        self.pending_opens.clear();
        self.local_active = 0;
        self.remote_active = 0;
        self.closed = Some(error.clone());
        self.events.push_back(Event::Closed { error });
    }

    /// Queues a frame we owe the peer, ending the session if the peer lets
    /// too many pile up.
    fn owe(&mut self, frame: Frame) {
        if self.owed.len() >= self.config.max_pending_control {
            self.fail_session(SessionError::Flood(Flood::PendingControl));
            return;
        }
        self.owed.push_back(frame);
    }

    /// Whether the session takes more input now. SPDY/2 has no flow
    /// control: a session stops reading while one of its streams holds half
    /// a session window of unread data, so the peer is held back by TCP
    /// (all its streams alike: the only bound SPDY/2 allows). Other
    /// versions always take input; their windows bound what arrives.
    pub fn wants_input(&self) -> bool {
        self.flow_controlled() || self.full_streams == 0
    }

    /// Whether windows bound what the peer sends: SPDY/3 and 3.1 with a
    /// peer that does flow control (see `Config::with_peer_flow_control`).
    pub(crate) fn flow_controlled(&self) -> bool {
        self.version != Some(Version::V2) && self.config.peer_flow_control
    }

    /// What one stream may hold unread before input pauses when windows do
    /// not bound it (`usize::MAX` when they do).
    fn v2_stream_cap(&self) -> usize {
        if !self.flow_controlled() {
            (self.config.session_window / 2) as usize
        } else {
            usize::MAX
        }
    }

    /// Drops the unread data of a stream, returning it to the session window
    /// (the caller decides about the stream's own window).
    fn drop_unread(&mut self, id: StreamId) -> usize {
        let cap = self.v2_stream_cap();
        let Some(stream) = self.streams.get_mut(&id) else {
            return 0;
        };
        let dropped = stream.recv_buffered + stream.unreleased;
        if stream.recv_buffered >= cap {
            self.full_streams -= 1;
        }
        stream.recv_queue.clear();
        stream.recv_tail.clear();
        stream.recv_buffered = 0;
        stream.unreleased = 0;
        self.release_session(u32::try_from(dropped).unwrap_or(u32::MAX));
        dropped
    }

    /// The application will not read `id` any more but may still send on
    /// it: what is buffered is dropped, and what arrives is discarded with
    /// its window credit returned at once, so the peer can finish and the
    /// stream pins no window.
    pub fn stop_reading(&mut self, id: StreamId) -> Result<(), UserError> {
        let stream = self
            .streams
            .get_mut(&id)
            .ok_or(UserError::UnknownStream(id))?;
        stream.discard_recv = true;
        stream.fin_taken = true;
        let dropped = self.drop_unread(id);
        self.credit_stream(id, dropped);
        self.maybe_forget(id);
        Ok(())
    }

    /// Returns `n` discarded bytes to a stream's window.
    fn credit_stream(&mut self, id: StreamId, n: usize) {
        let half_window = (self.config.initial_window / 2).max(1);
        let flow_controlled = self.flow_controlled();
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if !flow_controlled || stream.remote_closed {
            return;
        }
        stream.pending_update = stream
            .pending_update
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        if stream.pending_update >= half_window {
            let delta = stream.pending_update;
            stream.pending_update = 0;
            let _ = stream.recv_window.increase(delta, i64::MAX / 8);
            self.control
                .push_back(Frame::WindowUpdate(WindowUpdate::new(id, delta)));
        }
    }

    /// Resets the pushes associated with `id` (3.3.2: cancelling a request
    /// means its pushes "MUST immediately stop").
    fn cancel_pushes_of(&mut self, id: StreamId) {
        let pushes: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.local && s.associated_to == id)
            .map(|(p, _)| *p)
            .collect();
        let error = StreamError::Reset {
            status: RstStatus::Cancel,
            initiator: Initiator::Remote,
        };
        for push in pushes {
            let on_wire = self.pending_opens.iter().all(|p| p.frame.stream_id != push);
            if on_wire {
                self.send_reset(push, RstStatus::Cancel);
            } else {
                self.pending_opens.retain(|p| p.frame.stream_id != push);
            }
            self.fail_stream(push, error.clone());
        }
    }
}

/// The stream an event is about, if any.
fn event_stream(event: &Event) -> Option<StreamId> {
    match event {
        Event::StreamOpened { id, .. }
        | Event::Reply { id, .. }
        | Event::Headers { id, .. }
        | Event::Readable { id }
        | Event::Writable { id }
        | Event::StreamStarted { id }
        | Event::StreamFailed { id, .. }
        | Event::SendStopped { id, .. }
        | Event::StreamClosed { id } => Some(*id),
        Event::Version(_)
        | Event::Settings(_)
        | Event::Pong { .. }
        | Event::GoAway { .. }
        | Event::Closed { .. } => None,
    }
}
