//! What the session puts on the wire, in order: control frames first (they
//! are small, and some are owed to the peer), then DATA chosen by priority.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use super::error::{SessionError, StreamError};
use super::Session;
use crate::codec::EncodedData;
use crate::frame::{Data, EncodeError, Frame, Headers, RstStatus, StreamId};
use crate::header_block::HeaderBlockError;

/// Queued writes shorter than this are gathered (copied) into one DATA
/// frame with the writes after them; longer ones go out as they are, without
/// a copy.
const GATHER_BELOW: usize = 4 * 1024;

/// Takes up to `n` bytes off the front of a send queue. Many small writes
/// become one frame rather than a frame each (which would cost per-frame
/// overhead on both sides, and trip a peer's tiny-frame guard).
fn take_chunk(queue: &mut VecDeque<Bytes>, n: usize) -> Bytes {
    let Some(front) = queue.front_mut() else {
        return Bytes::new();
    };
    if front.len() >= n {
        return front.split_to(n);
    }
    if front.len() >= GATHER_BELOW || queue.len() == 1 {
        return queue.pop_front().unwrap_or_default();
    }
    let mut gathered = BytesMut::with_capacity(n.min(64 * 1024));
    while gathered.len() < n {
        let Some(front) = queue.front_mut() else {
            break;
        };
        let want = n - gathered.len();
        if front.len() > want {
            gathered.extend_from_slice(&front.split_to(want));
        } else {
            gathered.extend_from_slice(front);
            queue.pop_front();
        }
    }
    gathered.freeze()
}

/// Control frames are batched into one buffer of about this size.
const CONTROL_BATCH: usize = 16 * 1024;

/// Bytes to write to the connection, from [`Session::poll_transmit`].
///
/// It is a [`Buf`]; DATA keeps its payload apart from its header so a
/// vectored write sends it without a copy.
#[derive(Debug, Clone)]
pub enum Transmit {
    /// One or more encoded control frames.
    Frames(Bytes),
    /// One DATA frame.
    Data(EncodedData),
}

impl Buf for Transmit {
    fn remaining(&self) -> usize {
        match self {
            Transmit::Frames(b) => b.remaining(),
            Transmit::Data(d) => d.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Transmit::Frames(b) => b.chunk(),
            Transmit::Data(d) => d.chunk(),
        }
    }

    fn advance(&mut self, cnt: usize) {
        match self {
            Transmit::Frames(b) => b.advance(cnt),
            Transmit::Data(d) => d.advance(cnt),
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self {
            Transmit::Frames(b) => b.chunks_vectored(dst),
            Transmit::Data(d) => d.chunks_vectored(dst),
        }
    }
}

impl Session {
    /// The next bytes to write, or `None` when there is nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.ping.touch(now);
        self.note_idle(now);
        if let Some(frames) = self.encode_control() {
            return Some(Transmit::Frames(frames));
        }
        if self.closed.is_some() {
            return None;
        }
        self.next_data(now)
    }

    /// Encodes queued control frames into one batch.
    fn encode_control(&mut self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        while out.len() < CONTROL_BATCH {
            let Some(frame) = self.owed.pop_front().or_else(|| self.control.pop_front()) else {
                break;
            };
            if let Frame::SynReply(reply) = &frame {
                if let Some(stream) = self.streams.get_mut(&reply.stream_id) {
                    stream.reply_sent = true;
                }
            }
            self.encode_frame(&frame, &mut out);
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    fn encode_frame(&mut self, frame: &Frame, out: &mut BytesMut) {
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        let Err(err) = encoder.encode(frame, out) else {
            return;
        };
        // Header blocks were validated when the application gave them, so
        // an error here is a block too large for one frame, or a broken
        // compressor.
        match (err, frame.stream_id()) {
            (EncodeError::HeaderBlock(HeaderBlockError::Compress(msg)), _) => {
                self.fail_session(SessionError::Compression(msg));
            }
            (_, Some(id)) if self.streams.contains_key(&id) => {
                self.send_reset(id, RstStatus::InternalError);
                self.fail_stream(
                    id,
                    StreamError::Reset {
                        status: RstStatus::InternalError,
                        initiator: super::Initiator::Local,
                    },
                );
            }
            _ => {}
        }
    }

    /// The next DATA frame (or trailers, or bare FIN) by priority.
    fn next_data(&mut self, now: Instant) -> Option<Transmit> {
        // A detected SPDY/3 session that may yet be 3.1 is limited as 3.1
        // is (see `settle_v3`).
        self.settle_v3(false);
        let session_limited = self.session_window_tracked();
        let mut session_blocked = false;
        // Streams with data but no session window keep their place, while
        // those behind them that only owe a FIN or trailers (which need no
        // window) still go.
        let mut waiting = Vec::new();
        let mut result = None;
        while let Some(id) = self.scheduler.pop() {
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            stream.scheduled = false;
            if !stream.has_send_work() {
                continue;
            }
            if stream.send_queued > 0 {
                let stream_room = stream.send_window.available();
                if stream_room == 0 {
                    // Blocked on its own window; a WINDOW_UPDATE or SETTINGS
                    // change reschedules it.
                    stream.window_blocked_since.get_or_insert(now);
                    self.window_blocks = true;
                    continue;
                }
                let conn_room = if session_limited {
                    self.conn_send_window.available()
                } else {
                    usize::MAX
                };
                if conn_room == 0 {
                    session_blocked = true;
                    stream.window_blocked_since.get_or_insert(now);
                    self.window_blocks = true;
                    stream.scheduled = true;
                    waiting.push((id, stream.priority));
                    continue;
                }
                let n = stream_room.min(conn_room).min(self.config.max_data_frame);
                result = Some(self.send_chunk(id, n));
                break;
            }
            if let Some(transmit) = self.send_trailers_or_fin(id) {
                result = Some(transmit);
                break;
            }
        }
        for (id, priority) in waiting.into_iter().rev() {
            self.scheduler.push_front(id, priority);
        }
        if session_blocked && self.v3_undecided() && self.v3_blocked_since.is_none() {
            self.v3_blocked_since = Some(now);
        }
        result
    }

    /// Takes up to `n` queued bytes of `id` into one DATA frame.
    fn send_chunk(&mut self, id: StreamId, n: usize) -> Transmit {
        let (data, fin, priority, more) = {
            let Some(stream) = self.streams.get_mut(&id) else {
                return Transmit::Frames(Bytes::new());
            };
            stream.window_blocked_since = None;
            let chunk = take_chunk(&mut stream.send_queue, n);
            stream.send_queued -= chunk.len();
            stream.send_window.consume(chunk.len());
            stream.send_granted.consume(chunk.len());
            let fin = stream.send_queued == 0 && stream.fin_queued && stream.trailers.is_none();
            let more = !fin && stream.has_send_work();
            (chunk, fin, stream.priority, more)
        };
        // Counted in a detected SPDY/3 session too: should it turn out to
        // be 3.1, the peer has been counting from the start.
        if self.session_window_tracked() {
            self.conn_send_window.consume(data.len());
        }
        if self.v3_undecided() {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.v3_uncredited += data.len() as u64;
            }
        }
        self.notify_writable(id);
        if more {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.scheduled = true;
            }
            self.scheduler.push_back(id, priority);
        }
        let frame = Data::new(id, data, fin);
        if fin {
            self.close_local(id);
        }
        match self.encoder.as_ref().map(|e| e.encode_data(frame)) {
            Some(Ok(encoded)) => Transmit::Data(encoded),
            // Chunks are at most max_data_frame (< 2^24) bytes.
            _ => Transmit::Frames(Bytes::new()),
        }
    }

    /// Sends a stream's trailers (HEADERS) or a bare FIN once its data is
    /// gone.
    fn send_trailers_or_fin(&mut self, id: StreamId) -> Option<Transmit> {
        let stream = self.streams.get_mut(&id)?;
        if let Some((headers, fin)) = stream.trailers.take() {
            // The end of the stream goes in an empty DATA frame after the
            // HEADERS, not as FLAG_FIN on them: SPDY/2 defines no FIN on
            // HEADERS, and deployed SPDY/3 peers (node-spdy) ignore it,
            // which would leave them waiting forever. Both forms are valid.
            let header_fin = false;
            if fin {
                stream.fin_queued = true;
            }
            let more = stream.fin_queued && !header_fin;
            let priority = stream.priority;
            let frame = Frame::Headers(Headers {
                fin: header_fin,
                ..Headers::new(id, headers)
            });
            let mut out = BytesMut::new();
            self.encode_frame(&frame, &mut out);
            if header_fin {
                self.close_local(id);
            } else if more {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.scheduled = true;
                }
                self.scheduler.push_back(id, priority);
            }
            return (!out.is_empty()).then(|| Transmit::Frames(out.freeze()));
        }
        if stream.fin_queued {
            let frame = Data::new(id, Bytes::new(), true);
            self.close_local(id);
            return self
                .encoder
                .as_ref()
                .and_then(|e| e.encode_data(frame).ok())
                .map(Transmit::Data);
        }
        None
    }
}
