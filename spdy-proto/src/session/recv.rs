//! Frames from the peer: what each one does to the session, and every rule
//! that rejects one.

use std::time::Instant;

use bytes::BytesMut;

use super::error::{Flood, ProtocolViolation, SessionError, StreamError};
use super::seen_ids::Lookup;
use super::{Event, Role, Session};
use crate::codec::DecodeError;
use crate::frame::head::peek_version;
use crate::frame::{
    Data, Frame, GoAway, Headers, Ping, RstStatus, RstStream, SettingId, Settings, StreamId,
    SynReply, SynStream, Version, WindowUpdate,
};
use crate::header_block::{block_len, HeaderBlock};
use crate::session::stream::Stream;

impl Session {
    /// Feeds bytes received from the peer. Complete frames are taken off the
    /// front of `buf` and processed; a partial frame stays for the next call.
    pub fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) {
        let before = buf.len();
        let mid_frame = |s: &Session| s.decoder.as_ref().is_some_and(|d| d.is_mid_frame());
        // Bytes of a DATA payload that arrived since the last call show
        // progress even while too few to be delivered as a piece.
        let data_arrived = mid_frame(self) && before > self.input_left;
        self.note_idle(now);
        self.decode_input(now, buf);
        self.input_left = buf.len();
        if self.closed.is_some() {
            return;
        }
        // A frame is half-received when bytes wait in `buf` or the decoder
        // is inside a payload, unless it is we who stopped reading.
        let partial = self.wants_input() && (!buf.is_empty() || mid_frame(self));
        let progress = data_arrived || buf.len() < before;
        self.stalls.on_input(now, partial, progress);
        self.note_idle(now);
    }

    fn decode_input(&mut self, now: Instant, buf: &mut BytesMut) {
        if self.closed.is_some() {
            buf.clear();
            return;
        }
        self.ping.touch(now);
        if self.version.is_none() && !self.detect_version(buf) {
            return;
        }
        if !self.first_frame_seen && !self.check_first_version(buf) {
            return;
        }
        while self.closed.is_none() {
            if !self.wants_input() {
                // SPDY/2 back-pressure: leave the rest in `buf`.
                return;
            }
            let Some(decoder) = self.decoder.as_mut() else {
                return;
            };
            match decoder.decode(buf) {
                Ok(Some(frame)) => {
                    self.ping.on_activity(now);
                    self.handle_frame(now, frame);
                }
                Ok(None) if self.skip_unwanted_data(now) => {}
                Ok(None) => return,
                Err(DecodeError::Stream {
                    stream_id,
                    status,
                    kind,
                    ..
                }) => {
                    self.ping.on_activity(now);
                    // A malformed SYN_STREAM still uses up its id.
                    if kind == crate::frame::ControlType::SynStream
                        && self.is_peer_id(stream_id)
                        && !stream_id.is_zero()
                    {
                        self.seen_remote_ids.mark(stream_id);
                        if stream_id > self.last_remote_id {
                            self.last_remote_id = stream_id;
                        }
                    }
                    self.stream_error(now, stream_id, status);
                }
                Err(err @ DecodeError::Session { .. }) => {
                    self.fail_session(SessionError::from_decode(err));
                }
            }
        }
        if self.closed.is_some() {
            buf.clear();
        }
    }

    /// Takes the version from the first control frame. Returns whether the
    /// version is now known.
    fn detect_version(&mut self, buf: &BytesMut) -> bool {
        match peek_version(buf) {
            None => false,
            Some(None) => {
                self.close_now(Some(ProtocolViolation::NoVersion.into()));
                false
            }
            Some(Some(2)) => {
                self.set_version(Version::V2);
                self.events.push_back(Event::Version(Version::V2));
                true
            }
            Some(Some(3)) => {
                self.set_version(Version::V3);
                self.events.push_back(Event::Version(Version::V3));
                true
            }
            Some(Some(other)) => {
                self.close_now(Some(ProtocolViolation::UnsupportedVersion(other).into()));
                false
            }
        }
    }

    /// A session of fixed version whose peer starts in another version
    /// would otherwise wait forever: each side ignores the other's control
    /// frames (SPDY/2's lazy version checking). The first frame decides:
    /// another version there ends the session. Returns whether to go on.
    fn check_first_version(&mut self, buf: &BytesMut) -> bool {
        let ours = self.version.map(Version::wire_number);
        match peek_version(buf) {
            None => false,
            Some(Some(theirs)) if Some(theirs) != ours => {
                self.fail_session(ProtocolViolation::UnsupportedVersion(theirs).into());
                false
            }
            Some(_) => {
                self.first_frame_seen = true;
                true
            }
        }
    }

    pub(super) fn is_peer_id(&self, id: StreamId) -> bool {
        match self.role {
            Role::Client => id.is_server_initiated(),
            Role::Server => id.is_client_initiated(),
        }
    }

    fn handle_frame(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::Data(f) => self.on_data(now, f),
            Frame::SynStream(f) => self.on_syn_stream(now, f),
            Frame::SynReply(f) => self.on_syn_reply(now, f),
            Frame::Headers(f) => self.on_headers(now, f),
            Frame::RstStream(f) => self.on_rst_stream(now, f),
            Frame::Settings(f) => self.on_settings(now, f),
            Frame::Ping(f) => self.on_ping(now, f),
            Frame::GoAway(f) => self.on_goaway(now, f),
            Frame::WindowUpdate(f) => self.on_window_update(now, f),
            // NOOP: "Receivers of a NO-OP frame should simply ignore it."
            // CREDENTIAL: we hold no certificate vector; 3.1 deprecates it.
            // Unknown types: ignored per SPDY/2's rule.
            Frame::Noop(_) | Frame::Credential(_) | Frame::Unknown(_) => {
                let _ = self.count_empty(now);
            }
        }
    }

    /// A stream error found by us: RST_STREAM, and the stream (if we knew
    /// it) fails. Resets the peer makes us send count as peer resets.
    fn stream_error(&mut self, now: Instant, id: StreamId, status: RstStatus) {
        tracing::debug!(%id, %status, "stream error: RST_STREAM");
        // Report the status that goes on the wire.
        let status = match self.version {
            Some(version) => status.for_version(version),
            None => status,
        };
        if !self.peer_resets.allow(now) {
            self.fail_session(SessionError::Flood(Flood::Resets));
            return;
        }
        if self.owed.len() >= self.config.max_pending_control {
            self.fail_session(SessionError::Flood(Flood::PendingControl));
            return;
        }
        self.owed
            .push_back(Frame::RstStream(RstStream::new(id, status)));
        self.remember_reset(id);
        if self.streams.contains_key(&id) {
            self.events.push_back(Event::StreamFailed {
                id,
                error: StreamError::Reset {
                    status,
                    initiator: super::Initiator::Local,
                },
            });
            self.end_stream_abruptly(id);
        }
    }

    /// Counts a frame that carries nothing; false if that ended the session.
    fn count_empty(&mut self, now: Instant) -> bool {
        if !self.empty_frames.allow(now) {
            self.fail_session(SessionError::Flood(Flood::EmptyFrames));
            return false;
        }
        true
    }

    /// Counts a frame processed only to be dropped (its stream is one we
    /// reset, or new after our GOAWAY), with the header block it made us
    /// inflate, if any; false if that ended the session.
    fn count_ignored(&mut self, now: Instant, headers: Option<&HeaderBlock>) -> bool {
        if !self.ignored_frames.allow(now) {
            self.fail_session(SessionError::Flood(Flood::IgnoredFrames));
            return false;
        }
        if let (Some(headers), Some(version)) = (headers, self.version) {
            let inflated = u32::try_from(block_len(headers, version)).unwrap_or(u32::MAX);
            if !self.ignored_header_bytes.allow_n(now, inflated) {
                self.fail_session(SessionError::Flood(Flood::IgnoredHeaderBytes));
                return false;
            }
        }
        true
    }

    /// Whether `id` belongs to a stream that finished recently, as opposed
    /// to one never opened (or long forgotten).
    fn was_closed(&self, id: StreamId) -> bool {
        self.recently_closed.contains(&id)
    }

    fn was_recently_reset(&self, id: StreamId) -> bool {
        self.recently_reset.contains(&id)
    }

    /// Whether a frame for a stream we do not know should be ignored rather
    /// than answered: we reset it recently (the peer had not seen our
    /// RST_STREAM yet), or we sent GOAWAY and ignore everything new.
    fn ignore_unknown(&self, id: StreamId) -> bool {
        self.was_recently_reset(id) || (self.goaway_sent && id > self.last_handed_remote)
    }

    /// A DATA frame whose header arrived for a stream we do not have is
    /// answered now, and the rest of its payload discarded as it arrives:
    /// waiting for it would hold the answer (and the read buffer) for as
    /// long as the peer likes, up to 16 MiB. Returns whether the decoder
    /// has bytes left to skip.
    fn skip_unwanted_data(&mut self, now: Instant) -> bool {
        let Some((id, remaining, fin)) = self.decoder.as_ref().and_then(|d| d.data_in_progress())
        else {
            return false;
        };
        if self.streams.contains_key(&id) {
            return false;
        }
        if let Some(decoder) = self.decoder.as_mut() {
            decoder.skip_data();
        }
        if self.account_data(now, remaining, fin) {
            self.data_for_unknown(now, id, remaining);
        }
        self.closed.is_none()
    }

    /// The checks every DATA frame (or the rest of one) passes whatever
    /// its stream: the cheap-frame guards and the SPDY/3.1 session window.
    /// False if the session ended.
    fn account_data(&mut self, now: Instant, len: usize, fin: bool) -> bool {
        if len == 0 && !fin {
            if !self.count_empty(now) {
                return false;
            }
        } else if len < self.config.small_frame_len && !fin && !self.small_frames.allow(now) {
            self.fail_session(SessionError::Flood(Flood::SmallFrames));
            return false;
        }
        // SPDY/3.1: DATA counts against the session window whatever its
        // stream, and the sender must not exceed it.
        if self.session_window_tracked() {
            if self.version == Some(Version::V3_1) && len > self.conn_recv_window.available() {
                self.fail_session(ProtocolViolation::SessionWindowExceeded.into());
                return false;
            }
            self.conn_recv_window.consume(len);
            self.send_session_credit();
        }
        true
    }

    /// DATA (`len` bytes) for a stream we do not have.
    fn data_for_unknown(&mut self, now: Instant, id: StreamId, len: usize) {
        self.release_session(u32::try_from(len).unwrap_or(u32::MAX));
        if self.ignore_unknown(id) {
            // Long DATA costs the peer as much as us; short frames (empty
            // ones with FIN included) are per-frame work.
            if len < self.config.small_frame_len {
                let _ = self.count_ignored(now, None);
            }
        } else {
            // 2.3.7: "If an endpoint receives a data frame after the stream
            // is closed, it must send a RST_STREAM to the sender with the
            // status PROTOCOL_ERROR." 2.2.2: for a stream-id "which is not
            // open and the endpoint has not sent a GOAWAY frame, it MUST
            // issue a stream error ... INVALID_STREAM".
            let status = if self.was_closed(id) {
                RstStatus::ProtocolError
            } else {
                RstStatus::InvalidStream
            };
            self.stream_error(now, id, status);
        }
    }

    fn on_data(&mut self, now: Instant, data: Data) {
        let cap = self.v2_stream_cap();
        let len = data.data.len();
        let id = data.stream_id;
        if !self.account_data(now, len, data.fin) {
            return;
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            self.data_for_unknown(now, id, len);
            return;
        };
        let status = if stream.local && !stream.replied {
            // 2.2.2: DATA "before receiving a SYN_REPLY on that stream, it
            // is a protocol error".
            Some(RstStatus::ProtocolError)
        } else if stream.remote_closed {
            // 2.3.6: data after the sender's FIN: STREAM_ALREADY_CLOSED.
            Some(RstStatus::StreamAlreadyClosed)
        } else if len > stream.recv_window.available() {
            // 2.6.8: the sender must not exceed the window.
            Some(RstStatus::FlowControlError)
        } else {
            None
        };
        if let Some(status) = status {
            self.release_session(len as u32);
            self.stream_error(now, id, status);
            return;
        }
        stream.recv_window.consume(len);
        if stream.discard_recv {
            // Nobody reads it: the credit goes straight back.
            let fin = data.fin;
            self.release_session(len as u32);
            self.credit_stream(id, len);
            if fin {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.remote_closed = true;
                }
                self.after_half_close(id);
            }
            return;
        }
        if stream.cancel_after_fin {
            // Nobody will read it: back to the session window at once (the
            // stream's own window stays spent; a reset follows our FIN).
            let fin = data.fin;
            self.release_session(len as u32);
            if fin {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.remote_closed = true;
                    stream.cancel_after_fin = false;
                }
                self.after_half_close(id);
            }
            return;
        }
        let was_full = stream.recv_buffered >= cap;
        stream.push_recv(data.data);
        if !was_full && stream.recv_buffered >= cap {
            self.full_streams += 1;
        }
        if data.fin {
            stream.remote_closed = true;
        }
        if !stream.readable_notified && (len > 0 || data.fin) {
            stream.readable_notified = true;
            self.events.push_back(Event::Readable { id });
        }
        if data.fin {
            self.after_half_close(id);
        }
    }

    fn on_syn_stream(&mut self, now: Instant, frame: SynStream) {
        let id = frame.stream_id;
        // 2.3.2: "0 is not a valid Stream-ID."
        if id.is_zero() {
            self.fail_session(ProtocolViolation::StreamIdZero.into());
            return;
        }
        if !self.is_peer_id(id) {
            self.fail_session(ProtocolViolation::WrongParity(id).into());
            return;
        }
        // In the tolerant mode an id below the highest that was never used
        // (and is recent enough to know) opens a stream like a new one.
        let tolerated = self.config.tolerate_unordered_stream_ids
            && id < self.last_remote_id
            && self.seen_remote_ids.lookup(id) == Lookup::Unused;
        if id < self.last_remote_id && !tolerated {
            if self.config.tolerate_unordered_stream_ids
                && self.seen_remote_ids.lookup(id) == Lookup::Used
            {
                // A reused id: as for a second SYN_STREAM below.
                self.stream_error(now, id, RstStatus::ProtocolError);
                return;
            }
            // 2.3.2: "If an endpoint receives a SYN_STREAM with a stream id
            // which is less than any previously received SYN_STREAM, it
            // MUST issue a session error".
            self.fail_session(
                ProtocolViolation::StreamIdNotIncreasing {
                    id,
                    last: self.last_remote_id,
                }
                .into(),
            );
            return;
        }
        if id == self.last_remote_id {
            // 2.3.2: "If a recipient receives a second SYN_STREAM for the
            // same stream, it MUST issue a stream error ... PROTOCOL_ERROR."
            self.stream_error(now, id, RstStatus::ProtocolError);
            return;
        }
        self.seen_remote_ids.mark(id);
        if !tolerated {
            self.last_remote_id = id;
        }
        // "After sending a GOAWAY message, the sender must ignore all
        // SYN_STREAM frames for new streams." Their blocks were inflated
        // all the same: counted, so a stream of them is bounded.
        if self.goaway_sent {
            let _ = self.count_ignored(now, Some(&frame.headers));
            return;
        }
        let push = !frame.associated_to.is_zero();
        if push {
            match self.check_push(&frame) {
                Ok(()) => {}
                Err(PushRefusal::Session(violation)) => {
                    self.fail_session(violation.into());
                    return;
                }
                Err(PushRefusal::Stream(status)) => {
                    self.stream_error(now, id, status);
                    return;
                }
            }
        }
        // SETTINGS_MAX_CONCURRENT_STREAMS: refuse beyond our limit.
        if self.remote_active >= self.config.max_concurrent_streams as usize {
            self.stream_error(now, id, RstStatus::RefusedStream);
            return;
        }
        let mut stream = Stream::new(
            false,
            frame.priority,
            self.new_send_window(),
            self.new_recv_window(),
        );
        stream.remote_closed = frame.fin;
        if frame.unidirectional {
            // 2.3.2.1: "The receiving endpoint is implicitly already in the
            // half-closed state": we never send, and never reply.
            stream.local_closed = true;
            stream.replied = true;
        }
        if frame.fin {
            stream.readable_notified = true;
        }
        self.streams.insert(id, stream);
        self.remote_active += 1;
        if !frame.fin {
            self.raise_stream_window(id);
        }
        self.events.push_back(Event::StreamOpened {
            id,
            associated_to: push.then_some(frame.associated_to),
            priority: frame.priority,
            headers: frame.headers,
            fin: frame.fin,
            unidirectional: frame.unidirectional,
        });
        if frame.fin {
            self.events.push_back(Event::Readable { id });
            self.after_half_close(id);
        }
    }

    /// Server push rules (3.3): only a server pushes, onto an open stream the
    /// client opened, unidirectionally, naming the resource.
    fn check_push(&self, frame: &SynStream) -> Result<(), PushRefusal> {
        let id = frame.stream_id;
        if self.role == Role::Server {
            return Err(PushRefusal::Session(ProtocolViolation::InvalidPush(id)));
        }
        if !self.config.accept_push {
            return Err(PushRefusal::Stream(RstStatus::RefusedStream));
        }
        let assoc_open = self
            .streams
            .get(&frame.associated_to)
            .is_some_and(|s| s.local && !s.remote_closed);
        if !assoc_open || !frame.unidirectional {
            return Err(PushRefusal::Stream(RstStatus::ProtocolError));
        }
        let version = self.version.unwrap_or(Version::V3);
        let required: &[&str] = if version == Version::V2 {
            &["url"]
        } else {
            &[":scheme", ":host", ":path"]
        };
        // 3.3.2: without them the client "MUST reply with a RST_STREAM".
        if required
            .iter()
            .any(|name| frame.headers.get(name).is_none())
        {
            return Err(PushRefusal::Stream(RstStatus::ProtocolError));
        }
        Ok(())
    }

    fn on_syn_reply(&mut self, now: Instant, frame: SynReply) {
        let id = frame.stream_id;
        let Some(stream) = self.streams.get_mut(&id) else {
            if self.ignore_unknown(id) {
                let _ = self.count_ignored(now, Some(&frame.headers));
            } else {
                self.stream_error(now, id, RstStatus::InvalidStream);
            }
            return;
        };
        if !stream.local {
            self.stream_error(now, id, RstStatus::ProtocolError);
            return;
        }
        if stream.replied {
            // 2.6.2: "If an endpoint receives multiple SYN_REPLY frames for
            // the same active stream ID, it MUST issue a stream error ...
            // STREAM_IN_USE." (SPDY/2: PROTOCOL_ERROR, via for_version.)
            self.stream_error(now, id, RstStatus::StreamInUse);
            return;
        }
        stream.replied = true;
        if frame.fin {
            stream.remote_closed = true;
            if !stream.readable_notified {
                stream.readable_notified = true;
                self.events.push_back(Event::Readable { id });
            }
        }
        self.events.push_back(Event::Reply {
            id,
            headers: frame.headers,
            fin: frame.fin,
        });
        if frame.fin {
            self.after_half_close(id);
        }
    }

    fn on_headers(&mut self, now: Instant, frame: Headers) {
        let id = frame.stream_id;
        let Some(stream) = self.streams.get_mut(&id) else {
            if self.ignore_unknown(id) {
                let _ = self.count_ignored(now, Some(&frame.headers));
            } else {
                self.stream_error(now, id, RstStatus::InvalidStream);
            }
            return;
        };
        if stream.local && !stream.replied {
            self.stream_error(now, id, RstStatus::ProtocolError);
            return;
        }
        if stream.remote_closed {
            self.stream_error(now, id, RstStatus::StreamAlreadyClosed);
            return;
        }
        // A HEADERS frame that carries no header and does not end the
        // stream does nothing but cost us work (CVE-2019-9518's shape).
        if frame.headers.is_empty() && !frame.fin {
            let _ = self.count_empty(now);
            return;
        }
        if frame.fin {
            let Some(stream) = self.streams.get_mut(&id) else {
                return;
            };
            stream.remote_closed = true;
            if !stream.readable_notified {
                stream.readable_notified = true;
                self.events.push_back(Event::Readable { id });
            }
        }
        self.events.push_back(Event::Headers {
            id,
            headers: frame.headers,
            fin: frame.fin,
        });
        if frame.fin {
            self.after_half_close(id);
        }
    }

    fn on_rst_stream(&mut self, now: Instant, frame: RstStream) {
        tracing::trace!(id = %frame.stream_id, status = %frame.status, "RST_STREAM from the peer");
        let id = frame.stream_id;
        // "An endpoint MUST NOT send a RST_STREAM in response to an
        // RST_STREAM": unknown streams are ignored (but a stream of them
        // costs work for nothing, so they count as empty frames).
        let Some(stream) = self.streams.get(&id) else {
            let _ = self.count_empty(now);
            return;
        };
        // Both sides already finished normally (2.3.7): a late reset
        // changes nothing, and the data stays readable.
        if stream.is_closed() {
            return;
        }
        // Count what the peer does to us: a stream it opened and cancels
        // before our SYN_REPLY went out cost us work and gave it nothing
        // (rapid reset, CVE-2023-44487), so it counts against the limit.
        // A cancel of a stream we were already answering is a client
        // leaving (a player seeking, a proxy whose own client went away)
        // and is not abuse. Resets we send for the peer's errors count in
        // `stream_error`.
        if !stream.local && !stream.reply_sent && !self.peer_resets.allow(now) {
            self.fail_session(SessionError::Flood(Flood::Resets));
            return;
        }
        // 2.6.3: "the recipient must not send additional frames for that
        // stream": drop what is queued for it and not yet encoded.
        self.control.retain(|f| f.stream_id() != Some(id));
        self.cancel_pushes_of(id);
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if stream.remote_closed {
            // The peer finished its side and stops ours: a server answered
            // without reading the whole request, say. Only our sending
            // ends; its complete data stays readable.
            self.stop_sending(id, frame.status);
            return;
        }
        let error = if frame.status == RstStatus::RefusedStream && stream.local {
            StreamError::Refused
        } else {
            StreamError::Reset {
                status: frame.status,
                initiator: super::Initiator::Remote,
            }
        };
        self.fail_stream(id, error);
    }

    /// Ends our sending side without a FIN because the peer reset it:
    /// queued data is dropped and the application told.
    fn stop_sending(&mut self, id: StreamId, status: RstStatus) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.local_closed = true;
        stream.send_queue.clear();
        stream.send_queued = 0;
        stream.fin_queued = false;
        stream.trailers = None;
        stream.wants_writable = false;
        self.events.push_back(Event::SendStopped { id, status });
        self.after_half_close(id);
    }

    fn on_settings(&mut self, now: Instant, frame: Settings) {
        if !self.settings_rate.allow(now) {
            self.fail_session(SessionError::Flood(Flood::Settings));
            return;
        }
        if self.role == Role::Client {
            // 2.6.4: the server may ask us to persist values; CLEAR_SETTINGS
            // drops what was persisted before.
            if frame.clear_persisted {
                self.persisted.clear();
            }
            // One pass, whatever the number of entries (a frame may carry
            // thousands): only ids the spec defines (1..=8) are kept, so a
            // server cannot make us store (and replay) arbitrary values, and
            // only the first value of each (see below). `persisted` thus
            // holds at most 8 entries.
            let mut seen = [false; 8];
            for entry in &frame.entries {
                let Some(slot) = known_setting_slot(entry.id) else {
                    continue;
                };
                if std::mem::replace(&mut seen[slot], true) || !entry.persist_value {
                    continue;
                }
                self.persisted.retain(|p| p.id != entry.id);
                self.persisted.push(*entry);
            }
        }
        // "If the recipient of a SETTINGS frame discovers multiple values for
        // the same ID, it MUST ignore all values except the first one."
        if let Some(max) = frame.get(SettingId::MaxConcurrentStreams) {
            self.peer_max_concurrent = max;
            self.start_pending_opens();
        }
        if self.flow_controlled() {
            if let Some(size) = frame.get(SettingId::InitialWindowSize) {
                self.on_initial_window(now, size);
            }
        }
        self.events.push_back(Event::Settings(frame));
    }

    /// SPDY/3.1 section 2.6.8: a new SETTINGS_INITIAL_WINDOW_SIZE shifts the
    /// send window of every open stream by the difference (which may leave
    /// it negative); it never changes the session window.
    fn on_initial_window(&mut self, now: Instant, size: u32) {
        if size > super::MAX_WINDOW {
            self.fail_session(ProtocolViolation::BadInitialWindow(size).into());
            return;
        }
        let delta = i64::from(size) - i64::from(self.peer_initial_window);
        self.peer_initial_window = size;
        let max = super::flow::max_window(self.version);
        let mut overflowed = Vec::new();
        let mut reopened = Vec::new();
        for (id, stream) in self.streams.iter_mut() {
            let before = stream.send_window.available();
            if delta > 0 {
                let _ = stream.send_granted.adjust(delta, i64::MAX / 8);
            }
            if stream.send_window.adjust(delta, max).is_err() {
                overflowed.push(*id);
            } else if before == 0 && stream.send_window.available() > 0 {
                stream.window_blocked_since = None;
                reopened.push(*id);
            }
        }
        for id in overflowed {
            self.stream_error(now, id, RstStatus::FlowControlError);
        }
        for id in reopened {
            self.schedule(id);
        }
        self.notify_all_writable();
    }

    fn on_ping(&mut self, now: Instant, frame: Ping) {
        if self.ping.is_ours(frame.id) {
            if let Some(rtt) = self.ping.on_pong(frame.id, now) {
                self.events.push_back(Event::Pong { id: frame.id, rtt });
            } else {
                // One of ours we never sent: the spec says ignore it; many
                // of them are a flood.
                let _ = self.count_empty(now);
            }
            return;
        }
        if !self.ping_rate.allow(now) {
            self.fail_session(SessionError::Flood(Flood::Pings));
            return;
        }
        self.owe(Frame::Ping(frame));
    }

    fn on_goaway(&mut self, now: Instant, frame: GoAway) {
        tracing::debug!(last_good = %frame.last_good_stream_id, status = %frame.status, "GOAWAY from the peer");
        if self.goaway_received.is_some() && !self.count_empty(now) {
            return;
        }
        let last_good = frame.last_good_stream_id;
        if self.goaway_received.is_none() {
            self.events.push_back(Event::GoAway {
                last_good_stream_id: last_good,
                status: frame.status,
            });
        }
        let last_good = self.goaway_received.map_or(last_good, |l| l.min(last_good));
        self.goaway_received = Some(last_good);
        // Our streams above last-good were never processed: safe to retry.
        let unprocessed: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(id, s)| s.local && **id > last_good)
            .map(|(id, _)| *id)
            .collect();
        for id in unprocessed {
            self.fail_stream(id, StreamError::Refused);
        }
        self.fail_pending_opens(StreamError::Refused);
        self.check_drained();
    }

    fn on_window_update(&mut self, now: Instant, frame: WindowUpdate) {
        if frame.delta < self.config.small_frame_len as u32 && !self.small_frames.allow(now) {
            self.fail_session(SessionError::Flood(Flood::SmallFrames));
            return;
        }
        if frame.stream_id.is_zero() {
            if self.v3_undecided() {
                self.v3_blocked_since = None;
                self.version = Some(Version::V3_1);
                self.events.push_back(Event::Version(Version::V3_1));
                self.enable_session_window();
            }
            if self.version == Some(Version::V3_1) {
                let max = super::flow::max_window(self.version);
                if self.conn_send_window.increase(frame.delta, max).is_err() {
                    // 3.1 2.6.8: overflow of the session window: GOAWAY with
                    // FLOW_CONTROL_ERROR (reported as PROTOCOL_ERROR, the
                    // GOAWAY codes having no flow-control status).
                    self.fail_session(ProtocolViolation::SessionWindowOverflow.into());
                    return;
                }
                // The clocks of streams waiting on the session window
                // restart (`Config::with_window_stall_timeout`).
                for stream in self.streams.values_mut() {
                    stream.window_blocked_since = None;
                }
                self.window_blocks = false;
                self.reschedule_all();
            }
            // SPDY/3 has no session window: nothing to do.
            return;
        }
        let id = frame.stream_id;
        let undecided = self.v3_undecided();
        let Some(stream) = self.streams.get_mut(&id) else {
            // Late updates for finished streams are normal.
            return;
        };
        if undecided {
            // Only what returns bytes we sent counts: a peer may raise a
            // new stream's window as we do (`raise_stream_window`).
            let returned = u64::from(frame.delta).min(stream.v3_uncredited);
            stream.v3_uncredited -= returned;
            self.v3_stream_credit = self.v3_stream_credit.saturating_add(returned);
        }
        // "A sender should ignore all the WINDOW_UPDATE frames associated
        // with the stream after it send the last frame for the stream."
        if stream.local_closed {
            return;
        }
        let was_blocked = stream.send_window.available() == 0;
        let max = super::flow::max_window(self.version);
        if stream.send_window.increase(frame.delta, max).is_err() {
            self.stream_error(now, id, RstStatus::FlowControlError);
            return;
        }
        let _ = stream.send_granted.increase(frame.delta, i64::MAX / 8);
        stream.window_blocked_since = None;
        if was_blocked {
            self.schedule(id);
        }
        self.notify_writable(id);
    }

    pub(super) fn reschedule_all(&mut self) {
        let ids: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.scheduled && s.has_send_work())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.schedule(id);
        }
    }
}

/// The index (0..8) of a SETTINGS id the spec defines, `None` for others.
pub(super) fn known_setting_slot(id: SettingId) -> Option<usize> {
    match id {
        SettingId::Unknown(_) => None,
        known => usize::try_from(known.to_u32()).ok()?.checked_sub(1),
    }
}

enum PushRefusal {
    Session(ProtocolViolation),
    Stream(RstStatus),
}
