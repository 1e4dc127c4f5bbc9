//! Every knob of a session, with safe defaults.
//!
//! Each limit exists because a peer controls the quantity it bounds; the doc
//! of each setter says which attack or mistake it stops.

use std::time::Duration;

use crate::codec::DecodeLimits;
use crate::header_block::CompressConfig;

/// The default stream receive window of SPDY/3 and the default session
/// window of SPDY/3.1: 64 KiB.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;

/// The largest window the specs allow, 2^31 - 1.
pub const MAX_WINDOW: u32 = 0x7fff_ffff;

/// How long a server waits for a client's first frame, and anyone for the
/// rest of a frame left half-received, by default: 30 s, half of nginx's
/// `client_header_timeout`.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A rate limit: at most `max` events in any `per` period (measured in
/// fixed windows of that length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed per period.
    pub max: u32,
    /// The period.
    pub per: Duration,
}

impl RateLimit {
    /// `max` events per `per`.
    pub const fn new(max: u32, per: Duration) -> RateLimit {
        RateLimit { max, per }
    }
}

/// Configuration of a [`Session`](super::Session).
///
/// Build it with the `with_*` methods from [`Config::default()`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) decode: DecodeLimits,
    pub(crate) compression: CompressConfig,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) initial_window: u32,
    pub(crate) session_window: u32,
    pub(crate) max_send_buffer: usize,
    pub(crate) max_data_frame: usize,
    pub(crate) max_pending_opens: usize,
    pub(crate) accept_push: bool,
    pub(crate) max_pending_control: usize,
    pub(crate) peer_reset_rate: RateLimit,
    pub(crate) ping_rate: RateLimit,
    pub(crate) settings_rate: RateLimit,
    pub(crate) empty_frame_rate: RateLimit,
    pub(crate) small_frame_rate: RateLimit,
    pub(crate) small_frame_len: usize,
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) first_frame_timeout: Option<Duration>,
    pub(crate) frame_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_recently_reset: usize,
    pub(crate) upgrade_v3_to_v3_1: bool,
    pub(crate) peer_flow_control: bool,
    pub(crate) send_slack: usize,
    pub(crate) ignored_frame_rate: RateLimit,
    pub(crate) ignored_header_bytes: RateLimit,
    pub(crate) window_stall_timeout: Option<Duration>,
    pub(crate) tolerate_unordered_stream_ids: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            decode: DecodeLimits::default(),
            compression: CompressConfig::default(),
            max_concurrent_streams: 100,
            initial_window: DEFAULT_WINDOW,
            session_window: 1024 * 1024,
            max_send_buffer: 256 * 1024,
            max_data_frame: 16 * 1024,
            max_pending_opens: 1024,
            accept_push: true,
            max_pending_control: 1024,
            peer_reset_rate: RateLimit::new(1000, Duration::from_secs(10)),
            ping_rate: RateLimit::new(500, Duration::from_secs(10)),
            settings_rate: RateLimit::new(100, Duration::from_secs(10)),
            empty_frame_rate: RateLimit::new(500, Duration::from_secs(10)),
            small_frame_rate: RateLimit::new(20_000, Duration::from_secs(10)),
            small_frame_len: 256,
            keepalive: None,
            first_frame_timeout: Some(DEFAULT_STALL_TIMEOUT),
            frame_timeout: Some(DEFAULT_STALL_TIMEOUT),
            idle_timeout: None,
            max_recently_reset: 256,
            upgrade_v3_to_v3_1: true,
            peer_flow_control: true,
            send_slack: 16 * 1024,
            ignored_frame_rate: RateLimit::new(5000, Duration::from_secs(10)),
            ignored_header_bytes: RateLimit::new(4 * 1024 * 1024, Duration::from_secs(10)),
            window_stall_timeout: Some(Duration::from_secs(60)),
            tolerate_unordered_stream_ids: false,
        }
    }
}

impl Config {
    /// Limits of the frame decoder: largest control frame, largest
    /// decompressed header block, DATA piece size.
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Config {
        self.decode = limits;
        self
    }

    /// Settings of the header compressor.
    pub fn with_compression(mut self, compression: CompressConfig) -> Config {
        self.compression = compression;
        self
    }

    /// Streams the *peer* may have open at once (advertised as
    /// SETTINGS_MAX_CONCURRENT_STREAMS); more are refused with
    /// REFUSED_STREAM. Default 100, the spec's recommended minimum.
    pub fn with_max_concurrent_streams(mut self, n: u32) -> Config {
        self.max_concurrent_streams = n;
        self
    }

    /// See [`with_max_concurrent_streams`](Self::with_max_concurrent_streams).
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_concurrent_streams
    }

    /// See [`with_accept_push`](Self::with_accept_push).
    pub fn accept_push(&self) -> bool {
        self.accept_push
    }

    /// See [`with_decode_limits`](Self::with_decode_limits).
    pub fn decode_limits(&self) -> DecodeLimits {
        self.decode
    }

    /// Receive window of each stream (SPDY/3 and later): what a peer can
    /// make us buffer per stream. Above 64 KiB it is given to each stream
    /// by a WINDOW_UPDATE when the stream opens, since some peers ignore
    /// SETTINGS_INITIAL_WINDOW_SIZE; below, that setting advertises it.
    /// Clamped to 1 ..= 2^31 - 1. Default 64 KiB.
    pub fn with_initial_window(mut self, bytes: u32) -> Config {
        self.initial_window = bytes.clamp(1, MAX_WINDOW);
        self
    }

    /// Receive window of the whole session (SPDY/3.1): what a peer can make
    /// us buffer across all streams. Clamped to 64 KiB ..= 2^31 - 1 (the
    /// session window starts at 64 KiB and can only be raised). Default 1 MiB.
    pub fn with_session_window(mut self, bytes: u32) -> Config {
        self.session_window = bytes.clamp(DEFAULT_WINDOW, MAX_WINDOW);
        self
    }

    /// Outbound bytes buffered per stream at most, whatever the windows:
    /// the bound when the peer does no flow control (SPDY/2, see
    /// [`with_peer_flow_control`](Self::with_peer_flow_control)). With flow
    /// control the peer's window plus
    /// [`with_send_slack`](Self::with_send_slack) is usually the lower
    /// bound. Default 256 KiB.
    pub fn with_max_send_buffer(mut self, bytes: usize) -> Config {
        self.max_send_buffer = bytes.max(1);
        self
    }

    /// Largest DATA frame we send. Smaller frames let a new high-priority
    /// stream overtake a bulk transfer sooner. Clamped to 1 ..= 2^24 - 1.
    /// Default 16 KiB.
    pub fn with_max_data_frame(mut self, bytes: usize) -> Config {
        self.max_data_frame = bytes.clamp(1, 0x00ff_ffff);
        self
    }

    /// Streams we may queue while the peer's MAX_CONCURRENT_STREAMS is
    /// reached; opening more fails. Default 1024.
    pub fn with_max_pending_opens(mut self, n: usize) -> Config {
        self.max_pending_opens = n;
        self
    }

    /// Whether a client accepts server push (otherwise pushed streams are
    /// refused with REFUSED_STREAM). Default true.
    pub fn with_accept_push(mut self, accept: bool) -> Config {
        self.accept_push = accept;
        self
    }

    /// Control frames we may owe the peer (PING answers, resets, window
    /// updates) before concluding it does not read: beyond this the session
    /// ends (CVE-2019-9512, -9514, -9517 shapes). Default 1024.
    pub fn with_max_pending_control(mut self, n: usize) -> Config {
        self.max_pending_control = n.max(16);
        self
    }

    /// Streams the peer may cancel before our SYN_REPLY went out, or make
    /// us refuse or reset, per period (the rapid-reset attack,
    /// CVE-2023-44487). A cancel of a stream we were answering is not
    /// counted. Default 1000 per 10 s.
    pub fn with_peer_reset_rate(mut self, limit: RateLimit) -> Config {
        self.peer_reset_rate = limit;
        self
    }

    /// PINGs the peer may send per period (CVE-2019-9512). Default 500 per
    /// 10 s.
    pub fn with_ping_rate(mut self, limit: RateLimit) -> Config {
        self.ping_rate = limit;
        self
    }

    /// SETTINGS frames the peer may send per period (CVE-2019-9515). Default
    /// 100 per 10 s.
    pub fn with_settings_rate(mut self, limit: RateLimit) -> Config {
        self.settings_rate = limit;
        self
    }

    /// Empty DATA frames without FIN, and other frames that carry nothing,
    /// the peer may send per period (CVE-2019-9518). Default 500 per 10 s.
    pub fn with_empty_frame_rate(mut self, limit: RateLimit) -> Config {
        self.empty_frame_rate = limit;
        self
    }

    /// DATA frames shorter than `len` bytes (not ending their stream) and
    /// WINDOW_UPDATEs smaller than `len` the peer may send per period: the
    /// data-dribble guard (CVE-2019-9511), which stops a peer from making us
    /// do per-frame work for a trickle of bytes. Default 20 000 per 10 s
    /// below 256 bytes.
    pub fn with_small_frame_rate(mut self, limit: RateLimit, len: usize) -> Config {
        self.small_frame_rate = limit;
        self.small_frame_len = len;
        self
    }

    /// Keepalive: after `idle` without receiving anything, send a PING; if
    /// nothing arrives within `timeout` after it, end the session. Off by
    /// default.
    pub fn with_keepalive(mut self, idle: Duration, timeout: Duration) -> Config {
        self.keepalive = Some((idle, timeout));
        self
    }

    /// Keepalive settings: `Some((idle, timeout))` when on.
    pub fn keepalive(&self) -> Option<(Duration, Duration)> {
        self.keepalive
    }

    /// Turns keepalive off (see [`with_keepalive`](Self::with_keepalive)).
    pub fn without_keepalive(mut self) -> Config {
        self.keepalive = None;
        self
    }

    /// How long a *server* waits for the client's first complete frame
    /// (`None`: forever). A socket that connects and sends nothing, or
    /// half a frame, costs a connection slot for free; clients speak first
    /// in SPDY, so only the server role applies it. Default 30 s.
    pub fn with_first_frame_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.first_frame_timeout = timeout;
        self
    }

    /// How long a frame may stay half-received without progress (`None`:
    /// forever): a control frame must arrive whole within it, a DATA frame
    /// must keep delivering bytes. The session then ends with
    /// [`SessionError::Stalled`](super::SessionError::Stalled). Default 30 s.
    pub fn with_frame_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.frame_timeout = timeout;
        self
    }

    /// How long a session may hold no stream at all before it goes away
    /// gracefully (GOAWAY, then close), as nginx's `keepalive_timeout` (75 s
    /// there). `None`, the default here, keeps idle sessions: clients and
    /// tunnels want that; servers facing the internet want a limit
    /// (`spdy::server::Builder` sets 75 s).
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// See [`with_idle_timeout`](Self::with_idle_timeout).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// How many streams we reset are remembered, so that frames the peer
    /// sent before it saw our RST_STREAM are dropped quietly instead of
    /// answered with another reset. Default 256.
    pub fn with_max_recently_reset(mut self, n: usize) -> Config {
        self.max_recently_reset = n;
        self
    }

    /// Whether the peer does flow control (default true). Some SPDY/3
    /// peers do none at all: Kubernetes' spdystream (kubectl, kubelets)
    /// never sends WINDOW_UPDATE, ignores ours, and sends DATA frames of any
    /// size. With `false`, the session never waits for the peer's windows
    /// (they would never open), never resets a peer that sends past ours,
    /// and sends no WINDOW_UPDATE. Memory stays bounded another way: while
    /// one stream holds half the session window of unread data, the session
    /// stops taking input (`Session::wants_input`), so the connection is
    /// held back by TCP. The trade-off: one slow reader then stalls every
    /// stream of the connection, as with SPDY/2.
    pub fn with_peer_flow_control(mut self, enabled: bool) -> Config {
        self.peer_flow_control = enabled;
        self
    }

    /// For a server that detects the version from the first frame: SPDY/3
    /// and 3.1 look the same on the wire, so a version-3 session starts as
    /// SPDY/3 and becomes 3.1 when the peer sends a session WINDOW_UPDATE
    /// (stream 0), as node-spdy does. Until it does, what we send stays
    /// within the 64 KiB session window a 3.1 peer assumes; a peer that
    /// returns stream credit beyond it, or leaves it spent for a second,
    /// is taken for plain SPDY/3. Default true.
    pub fn with_upgrade_v3_to_v3_1(mut self, upgrade: bool) -> Config {
        self.upgrade_v3_to_v3_1 = upgrade;
        self
    }

    /// What a stream may hold queued beyond what the peer's windows let us
    /// send now (never more than `max_send_buffer` in all): data ready for
    /// the next WINDOW_UPDATE. A peer that stops reading costs at most its
    /// window plus this per stream. Default 16 KiB (one DATA frame).
    pub fn with_send_slack(mut self, bytes: usize) -> Config {
        self.send_slack = bytes;
        self
    }

    /// Frames the peer may send per period that we must process and then
    /// drop: HEADERS, SYN_REPLY and short DATA for streams we reset (sent
    /// before the peer saw our RST_STREAM), and SYN_STREAMs after our
    /// GOAWAY. Header blocks are inflated even then (the zlib context is
    /// shared), so a stream of them is work for nothing. Default 5000 per
    /// 10 s.
    pub fn with_ignored_frame_rate(mut self, limit: RateLimit) -> Config {
        self.ignored_frame_rate = limit;
        self
    }

    /// Decompressed header-block bytes the peer may make us inflate per
    /// period in frames that are then dropped (see
    /// [`with_ignored_frame_rate`](Self::with_ignored_frame_rate)): a few
    /// frames each inflating to 60 KiB cost more than thousands of small
    /// ones. Default 4 MiB per 10 s.
    pub fn with_ignored_header_bytes(mut self, limit: RateLimit) -> Config {
        self.ignored_header_bytes = limit;
        self
    }

    /// How long a stream with data to send may wait on a shut window (its
    /// own, or the SPDY/3.1 session window) with no WINDOW_UPDATE from the
    /// peer before it fails with
    /// [`StreamError::WindowStalled`](super::StreamError::WindowStalled)
    /// and is reset (`None`: forever). Without it, a peer that does no
    /// flow control, or speaks another version, makes a transfer stop at
    /// 64 KiB and wait silently. Default 60 s, nginx's `send_timeout` for a
    /// client that takes no data: long enough for a reader that pauses
    /// (a pager, a paused player) to resume, short enough to be an answer.
    pub fn with_window_stall_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.window_stall_timeout = timeout;
        self
    }

    /// Accept a SYN_STREAM whose id is below the highest the peer has
    /// opened, if that id was never used (default false). The spec wants
    /// ids to increase ("MUST issue a session error", 2.3.2), and so do
    /// we by default; but a Go client that opens streams from several
    /// goroutines may put its SYN_STREAMs on the wire out of order, and
    /// the session error then fails every stream of that client.
    ///
    /// Which ids were used is remembered for the last
    /// [`UNORDERED_ID_WINDOW`](super::UNORDERED_ID_WINDOW) ids of the
    /// peer's parity below its highest (a fixed 128-byte bitset): a
    /// second SYN_STREAM for one of them is still refused with RST_STREAM
    /// PROTOCOL_ERROR, and an id further below is a session error as in
    /// the default mode. The trade-off: a peer whose ids go backwards by
    /// mistake is no longer told so, and our GOAWAY's last-good id (the
    /// highest stream handed to the application) may then cover a lower
    /// stream that arrived after it and was not processed, which that
    /// peer would not retry.
    pub fn with_tolerate_unordered_stream_ids(mut self, tolerate: bool) -> Config {
        self.tolerate_unordered_stream_ids = tolerate;
        self
    }
}
