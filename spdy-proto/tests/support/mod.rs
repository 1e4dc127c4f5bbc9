//! Test harness for the sans-IO session: two sessions wired back to back in
//! memory ([`Pair`]), and a scripted peer that speaks raw frames to one
//! session ([`Peer`]). No sockets, no real clock: time is a field the test
//! moves forward.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use spdy_proto::frame::{
    Data, Frame, RstStatus, RstStream, StreamId, SynStream, Version, WindowUpdate,
};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::{Config, Event, Role, Session, Transmit};
use spdy_proto::{DecodeLimits, FrameDecoder, FrameEncoder};

/// Rounds of [`Pair::run`] before it gives up: a livelock is a failure, not
/// a hang.
const MAX_ROUNDS: usize = 1_000_000;

pub fn sid(n: u32) -> StreamId {
    StreamId::new(n).unwrap()
}

pub fn block(pairs: &[(&str, &str)]) -> HeaderBlock {
    pairs
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// A request header block for `version`.
pub fn request(version: Version, path: &str) -> HeaderBlock {
    if version == Version::V2 {
        block(&[("method", "GET"), ("url", path), ("version", "HTTP/1.1")])
    } else {
        block(&[
            (":method", "GET"),
            (":path", path),
            (":version", "HTTP/1.1"),
            (":host", "example.com"),
            (":scheme", "https"),
        ])
    }
}

/// A response header block for `version`.
pub fn response(version: Version, status: &str) -> HeaderBlock {
    if version == Version::V2 {
        block(&[("status", status), ("version", "HTTP/1.1")])
    } else {
        block(&[(":status", status), (":version", "HTTP/1.1")])
    }
}

/// Moves everything `from` wants to send into `to`'s input buffer. Returns
/// the number of bytes moved.
fn pump(now: Instant, from: &mut Session, wire: &mut BytesMut) -> usize {
    let mut moved = 0;
    while let Some(mut t) = from.poll_transmit(now) {
        moved += t.remaining();
        while t.has_remaining() {
            let chunk = t.chunk();
            wire.extend_from_slice(chunk);
            let n = chunk.len();
            t.advance(n);
        }
    }
    moved
}

/// Two sessions connected back to back.
pub struct Pair {
    pub client: Session,
    pub server: Session,
    pub now: Instant,
    to_server: BytesMut,
    to_client: BytesMut,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
}

impl Pair {
    pub fn new(version: Version) -> Pair {
        Pair::with_configs(version, Config::default(), Config::default())
    }

    pub fn with_configs(version: Version, client: Config, server: Config) -> Pair {
        Pair {
            client: Session::new(Role::Client, version, client),
            server: Session::new(Role::Server, version, server),
            now: Instant::now(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// One exchange in each direction. Returns whether anything moved.
    pub fn step(&mut self) -> bool {
        let a = pump(self.now, &mut self.client, &mut self.to_server);
        self.server.handle_input(self.now, &mut self.to_server);
        let b = pump(self.now, &mut self.server, &mut self.to_client);
        self.client.handle_input(self.now, &mut self.to_client);
        self.collect();
        a + b > 0
    }

    /// Exchanges until neither side has anything to send.
    pub fn run(&mut self) {
        for _ in 0..MAX_ROUNDS {
            if !self.step() {
                return;
            }
        }
        panic!("sessions still talking after {MAX_ROUNDS} rounds");
    }

    fn collect(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    pub fn take_client_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.client_events)
    }

    pub fn take_server_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.server_events)
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.collect();
    }
}

/// A scripted peer: the test writes raw frames into `session` and reads the
/// frames it answers with.
pub struct Peer {
    pub session: Session,
    pub encoder: FrameEncoder,
    decoder: FrameDecoder,
    pub now: Instant,
    from_session: BytesMut,
}

impl Peer {
    /// A session of `role` facing a scripted peer of the other role.
    pub fn new(role: Role, version: Version, config: Config) -> Peer {
        Peer::with_session(Session::new(role, version, config), version)
    }

    pub fn with_session(session: Session, version: Version) -> Peer {
        let mut encoder = FrameEncoder::new(version);
        encoder.set_validate_headers(false);
        let limits = DecodeLimits::default()
            .with_max_control_frame_len(u32::MAX)
            .with_data_piece_len(usize::MAX);
        Peer {
            session,
            encoder,
            decoder: FrameDecoder::new(version, limits),
            now: Instant::now(),
            from_session: BytesMut::new(),
        }
    }

    /// A peer whose session's initial frames (SETTINGS, session window)
    /// have already been read.
    pub fn started(role: Role, version: Version, config: Config) -> Peer {
        let mut peer = Peer::new(role, version, config);
        peer.frames();
        peer
    }

    /// Sends frames to the session.
    pub fn send(&mut self, frames: &[Frame]) {
        let mut wire = BytesMut::new();
        for frame in frames {
            self.encoder.encode(frame, &mut wire).unwrap();
        }
        self.send_raw(&wire);
    }

    /// Sends raw bytes to the session.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut buf = BytesMut::from(bytes);
        self.session.handle_input(self.now, &mut buf);
    }

    /// Everything the session sends now, decoded. DATA pieces are whole
    /// frames here.
    pub fn frames(&mut self) -> Vec<Frame> {
        while let Some(mut t) = self.session.poll_transmit(self.now) {
            let bytes = t.copy_to_bytes(t.remaining());
            self.from_session.extend_from_slice(&bytes);
        }
        let mut frames = Vec::new();
        while let Some(frame) = self
            .decoder
            .decode(&mut self.from_session)
            .expect("the session sent a malformed frame")
        {
            frames.push(frame);
        }
        frames
    }

    /// Everything the session has to tell its application now.
    pub fn events(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.session.poll_event() {
            events.push(e);
        }
        events
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.session.handle_timeout(self.now);
    }
}

/// A peer's request on `id` (any id, even an invalid one, for the rules).
pub fn syn(version: Version, id: u32, fin: bool) -> Frame {
    Frame::SynStream(SynStream {
        fin,
        ..SynStream::new(StreamId::from_wire(id), request(version, "/"))
    })
}

pub fn rst(id: u32, status: RstStatus) -> Frame {
    Frame::RstStream(RstStream::new(StreamId::from_wire(id), status))
}

/// `len` bytes of DATA on `id`.
pub fn data(id: u32, len: usize, fin: bool) -> Frame {
    Frame::Data(Data::new(StreamId::from_wire(id), vec![b'x'; len], fin))
}

pub fn window_update(id: u32, delta: u32) -> Frame {
    Frame::WindowUpdate(WindowUpdate::new(StreamId::from_wire(id), delta))
}

/// Whether `t` is a DATA transmit (used by tests that look at scheduling).
pub fn is_data(t: &Transmit) -> bool {
    matches!(t, Transmit::Data(_))
}
