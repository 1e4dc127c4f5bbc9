//! One stream's state: its two half-closes, its windows, and its buffers.
//!
//! ```text
//!                  SYN_STREAM (sent or received)
//!                             |
//!                             v
//!   FIN sent  +--------------------------------+  FIN received
//!  +----------|             open               |-----------+
//!  |          +--------------------------------+           |
//!  v                                                       v
//! half-closed (local)                          half-closed (remote)
//!  |  FIN received                                FIN sent  |
//!  +-----------------------> closed <-----------------------+
//!              (RST_STREAM from either side: closed at once)
//! ```
//!
//! A unidirectional stream starts half-closed on the side that may not send.
//! A stream we opened does not accept DATA until its SYN_REPLY arrives; a
//! stream the peer opened gets our SYN_REPLY before any DATA of ours.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::flow::Window;
use crate::header_block::HeaderBlock;

/// DATA pieces shorter than this are copied into the stream's own buffer
/// rather than kept as slices of the read buffer: a slice keeps its whole
/// read buffer (the driver reads 64 KiB at a time) alive, so a peer that
/// interleaves small frames of streams nobody reads could otherwise make
/// each buffered byte pin 64 times its size. At 16 KiB the unread data of
/// a session costs at most 4 times its window, and full-size frames (ours
/// are 16 KiB) are still kept without a copy.
const COPY_BELOW: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) struct Stream {
    /// Scheduling level, 0 highest.
    pub(crate) priority: u8,
    /// True if we opened it.
    pub(crate) local: bool,

    // ----- our sending side -----
    /// The frame that opens our side (SYN_STREAM or SYN_REPLY) has been
    /// encoded; until then no DATA of ours may go.
    pub(crate) opened_on_wire: bool,
    /// We sent FIN (or may never send: a unidirectional stream the peer
    /// opened), or reset the stream.
    pub(crate) local_closed: bool,
    /// Data waiting for window and scheduling.
    pub(crate) send_queue: VecDeque<Bytes>,
    pub(crate) send_queued: usize,
    /// FIN follows the queued data.
    pub(crate) fin_queued: bool,
    /// HEADERS to send after the queued data (trailers), with their FIN.
    pub(crate) trailers: Option<(HeaderBlock, bool)>,
    pub(crate) send_window: Window,
    /// The send window as the peer opened it, not lowered by a smaller
    /// SETTINGS_INITIAL_WINDOW_SIZE: what the send buffer is sized by, so
    /// that the room `send_capacity` reports only shrinks by our own
    /// writes (a writer that was told of room must find it).
    pub(crate) send_granted: Window,
    /// In the scheduler's queue.
    pub(crate) scheduled: bool,
    /// The application was told the buffer was full; tell it when room
    /// opens.
    pub(crate) wants_writable: bool,
    /// Since when data has waited on a shut window with no WINDOW_UPDATE
    /// (see `Config::with_window_stall_timeout`).
    pub(crate) window_blocked_since: Option<std::time::Instant>,
    /// Bytes sent while the session might yet be SPDY/3.1 that no stream
    /// WINDOW_UPDATE has returned yet (see `Session::settle_v3`).
    pub(crate) v3_uncredited: u64,

    // ----- the peer's sending side -----
    /// For a stream we opened (bidirectional): SYN_REPLY received. For a
    /// stream the peer opened: we sent (queued) our SYN_REPLY.
    pub(crate) replied: bool,
    /// For a stream the peer opened: our SYN_REPLY has been encoded for
    /// the wire (not merely queued). A cancel after that is a client
    /// leaving, not rapid reset.
    pub(crate) reply_sent: bool,
    /// The peer sent FIN (or may never send: a unidirectional stream we
    /// opened).
    pub(crate) remote_closed: bool,
    /// Received data not yet taken by the application.
    pub(crate) recv_queue: VecDeque<Bytes>,
    /// Small pieces gathered by copying (see `COPY_BELOW`).
    pub(crate) recv_tail: BytesMut,
    pub(crate) recv_buffered: usize,
    /// The application has taken the FIN (end of data).
    pub(crate) fin_taken: bool,
    /// What the peer may still send before we send WINDOW_UPDATE.
    pub(crate) recv_window: Window,
    /// Bytes the application released that are not yet returned to the
    /// peer in a WINDOW_UPDATE.
    pub(crate) pending_update: u32,
    /// Bytes the application took with `recv` and has not released yet.
    pub(crate) unreleased: usize,
    /// A `Readable` event is outstanding.
    pub(crate) readable_notified: bool,
    /// Counted against a concurrency limit (until both sides close).
    pub(crate) counted: bool,
    /// The application gave up reading: discard what arrives, and reset
    /// the stream once our FIN is out (see `Session::cancel`).
    pub(crate) cancel_after_fin: bool,
    /// The application stopped reading: discard what arrives.
    pub(crate) discard_recv: bool,
    /// For a push we made, the stream it belongs to (else 0).
    pub(crate) associated_to: crate::frame::StreamId,
}

impl Stream {
    pub(crate) fn new(
        local: bool,
        priority: u8,
        send_window: Window,
        recv_window: Window,
    ) -> Stream {
        Stream {
            priority,
            local,
            opened_on_wire: false,
            local_closed: false,
            send_queue: VecDeque::new(),
            send_queued: 0,
            fin_queued: false,
            trailers: None,
            send_window,
            send_granted: send_window,
            scheduled: false,
            wants_writable: false,
            window_blocked_since: None,
            v3_uncredited: 0,
            replied: false,
            reply_sent: false,
            remote_closed: false,
            recv_queue: VecDeque::new(),
            recv_tail: BytesMut::new(),
            recv_buffered: 0,
            fin_taken: false,
            recv_window,
            pending_update: 0,
            unreleased: 0,
            readable_notified: false,
            counted: true,
            cancel_after_fin: false,
            discard_recv: false,
            associated_to: crate::frame::StreamId::ZERO,
        }
    }

    /// Both sides have finished (normally or by reset).
    pub(crate) fn is_closed(&self) -> bool {
        self.local_closed && self.remote_closed
    }

    /// Closed, and the application has taken everything including the end
    /// and released what it took: the stream can be forgotten.
    pub(crate) fn is_done(&self) -> bool {
        self.is_closed() && self.recv_buffered == 0 && self.fin_taken && self.unreleased == 0
    }

    /// The sending side has something to put on the wire: data, a FIN, or
    /// trailers.
    pub(crate) fn has_send_work(&self) -> bool {
        !self.local_closed
            && self.opened_on_wire
            && (self.send_queued > 0 || self.fin_queued || self.trailers.is_some())
    }

    /// Stores a received DATA payload.
    pub(crate) fn push_recv(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.recv_buffered += data.len();
        if data.len() < COPY_BELOW {
            self.recv_tail.extend_from_slice(&data);
        } else {
            self.flush_tail();
            self.recv_queue.push_back(data);
        }
    }

    fn flush_tail(&mut self) {
        if !self.recv_tail.is_empty() {
            let tail = self.recv_tail.split().freeze();
            self.recv_queue.push_back(tail);
        }
    }

    /// Takes up to `max` buffered bytes, oldest first.
    pub(crate) fn pop_recv(&mut self, max: usize) -> Option<Bytes> {
        if self.recv_queue.is_empty() {
            self.flush_tail();
        }
        let front = self.recv_queue.front_mut()?;
        let chunk = if front.len() <= max {
            self.recv_queue.pop_front()?
        } else {
            front.split_to(max)
        };
        self.recv_buffered -= chunk.len();
        Some(chunk)
    }

    /// Drops everything buffered in both directions (after a reset).
    pub(crate) fn clear_buffers(&mut self) -> usize {
        let dropped = self.recv_buffered;
        self.recv_queue.clear();
        self.recv_tail.clear();
        self.recv_buffered = 0;
        self.send_queue.clear();
        self.send_queued = 0;
        self.fin_queued = false;
        self.trailers = None;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Stream {
        Stream::new(true, 0, Window::new(100), Window::new(100))
    }

    #[test]
    fn small_pieces_are_coalesced_and_read_in_order() {
        let mut s = stream();
        s.push_recv(Bytes::from_static(b"ab"));
        s.push_recv(Bytes::from_static(b"cd"));
        s.push_recv(Bytes::from(vec![b'x'; 20_000]));
        s.push_recv(Bytes::from_static(b"ef"));
        assert_eq!(s.recv_buffered, 20_006);
        assert_eq!(s.pop_recv(3).unwrap(), Bytes::from_static(b"abc"));
        assert_eq!(s.pop_recv(100).unwrap(), Bytes::from_static(b"d"));
        assert_eq!(s.pop_recv(50_000).unwrap().len(), 20_000);
        assert_eq!(s.pop_recv(50_000).unwrap(), Bytes::from_static(b"ef"));
        assert_eq!(s.pop_recv(50_000), None);
        assert_eq!(s.recv_buffered, 0);
    }

    #[test]
    fn a_small_piece_does_not_keep_its_read_buffer_alive() {
        let mut s = stream();
        let read_buffer = Bytes::from(vec![7u8; 64 * 1024]);
        let range = read_buffer.as_ptr_range();
        s.push_recv(read_buffer.slice(1000..9000));
        let kept = s.pop_recv(usize::MAX).unwrap();
        assert_eq!(kept.len(), 8000);
        assert!(
            !range.contains(&kept.as_ptr()),
            "an 8 KB piece was kept as a slice"
        );
        // A full-size frame is kept as it is, without a copy.
        s.push_recv(read_buffer.slice(0..COPY_BELOW));
        assert_eq!(s.pop_recv(usize::MAX).unwrap().as_ptr(), range.start);
    }
}
