//! Stream handles: the base layer both roles use (HTTP sits on top).
//!
//! A stream has two halves: [`SendStream`] writes data and trailers with
//! flow-control backpressure, [`RecvStream`] reads the peer's reply headers,
//! data and trailers. Dropping both halves of an unfinished stream cancels it
//! (RST_STREAM CANCEL), so an abandoned stream never pins a window.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use spdy_proto::frame::{RstStatus, StreamId};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::{Recv, UserError};

use crate::conn::{Shared, State};
use crate::error::Error;

/// The sending half of a stream.
#[derive(Debug)]
pub struct SendStream {
    shared: Arc<Shared>,
    id: StreamId,
}

/// The receiving half of a stream.
#[derive(Debug)]
pub struct RecvStream {
    shared: Arc<Shared>,
    id: StreamId,
    /// The end was handed out: later polls keep saying so.
    ended: bool,
}

/// Makes both halves of a stream the session already knows. The caller
/// holds the lock, so that no event for the stream can slip in before its
/// slot exists.
pub(crate) fn pair(
    state: &mut State,
    shared: &Arc<Shared>,
    id: StreamId,
) -> (SendStream, RecvStream) {
    state.slots.entry(id).or_default().refs += 2;
    (
        SendStream {
            shared: shared.clone(),
            id,
        },
        RecvStream {
            shared: shared.clone(),
            id,
            ended: false,
        },
    )
}

/// Makes a sending half that takes over a reference already counted.
pub(crate) fn send_only(shared: Arc<Shared>, id: StreamId) -> SendStream {
    SendStream { shared, id }
}

/// Makes only the receiving half (a unidirectional stream the peer opened).
pub(crate) fn recv_only(shared: &Arc<Shared>, id: StreamId) -> RecvStream {
    shared.lock().slots.entry(id).or_default().refs += 1;
    RecvStream {
        shared: shared.clone(),
        id,
        ended: false,
    }
}

impl SendStream {
    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Waits until the stream's send buffer has room, and returns how much.
    /// The buffer is bounded per stream (`Config::with_max_send_buffer`), so
    /// a peer that does not open its window stops the writer here.
    pub fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Error>> {
        let mut state = self.shared.lock();
        if let Some(e) = state.send_error(self.id) {
            return Poll::Ready(Err(e));
        }
        match state.session.poll_capacity(self.id) {
            Ok(0) => {
                if let Some(slot) = state.slots.get_mut(&self.id) {
                    slot.send_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e) => Poll::Ready(Err(state.send_error(self.id).unwrap_or(e.into()))),
        }
    }

    /// Queues `data` (and the end of the stream if `fin`) without waiting.
    /// Fails with [`UserError::BufferFull`] if it exceeds the capacity.
    pub fn send_data(&mut self, data: Bytes, fin: bool) -> Result<(), Error> {
        let mut state = self.shared.lock();
        if let Some(e) = state.send_error(self.id) {
            return Err(e);
        }
        state.session.send_data(self.id, data, fin)?;
        state.wake_driver();
        Ok(())
    }

    /// Sends all of `data`, waiting for capacity as needed.
    pub async fn write(&mut self, mut data: Bytes) -> Result<(), Error> {
        while !data.is_empty() {
            let room = poll_fn(|cx| self.poll_capacity(cx)).await?;
            let chunk = data.split_to(room.min(data.len()));
            self.send_data(chunk, false)?;
        }
        Ok(())
    }

    /// Ends our side of the stream.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.send_data(Bytes::new(), true)
    }

    /// Sends headers after the data queued so far (trailers); with `fin`
    /// they also end our side.
    pub fn send_headers(&mut self, headers: HeaderBlock, fin: bool) -> Result<(), Error> {
        let mut state = self.shared.lock();
        if let Some(e) = state.send_error(self.id) {
            return Err(e);
        }
        state.session.send_headers(self.id, headers, fin)?;
        state.wake_driver();
        Ok(())
    }

    /// Resets the stream (both directions) with `status`.
    pub fn reset(&mut self, status: RstStatus) -> Result<(), Error> {
        let mut state = self.shared.lock();
        state.session.reset(self.id, status)?;
        state.wake_driver();
        Ok(())
    }

    /// Pushes a stream associated with this one (server only, while this
    /// stream is open): `headers` name the resource (`:scheme`, `:host`,
    /// `:path`, plus response headers; `url` in SPDY/2).
    pub fn push(&mut self, headers: HeaderBlock, priority: u8) -> Result<SendStream, Error> {
        let mut state = self.shared.lock();
        let id = state.session.push(self.id, headers, priority)?;
        state.slots.entry(id).or_default().refs += 1;
        state.wake_driver();
        Ok(SendStream {
            shared: self.shared.clone(),
            id,
        })
    }
}

impl RecvStream {
    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Waits for the peer's SYN_REPLY on a stream we opened and returns its
    /// headers.
    pub fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Result<HeaderBlock, Error>> {
        let mut state = self.shared.lock();
        let error = state.stream_error(self.id);
        let Some(slot) = state.slots.get_mut(&self.id) else {
            return Poll::Ready(Err(error.unwrap_or(Error::ConnectionClosed)));
        };
        if let Some(headers) = slot.reply.take() {
            slot.reply_taken = true;
            return Poll::Ready(Ok(headers));
        }
        if slot.reply_taken {
            return Poll::Ready(Err(UserError::CannotReply(self.id).into()));
        }
        if let Some(e) = error {
            return Poll::Ready(Err(e));
        }
        slot.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// See [`poll_reply`](Self::poll_reply).
    pub async fn reply(&mut self) -> Result<HeaderBlock, Error> {
        poll_fn(|cx| self.poll_reply(cx)).await
    }

    /// The next piece of the peer's data; `None` at the end of the stream.
    /// The bytes are returned to the peer's window as they are handed out,
    /// so reading slowly is what slows the sender. A stream cut short
    /// (reset, or the connection lost) ends with an error, never `None`.
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let mut state = self.shared.lock();
        match state.session.recv(self.id, usize::MAX) {
            Ok(Recv::Data(chunk)) => {
                let _ = state.session.release_capacity(self.id, chunk.len());
                state.wake_driver();
                Poll::Ready(Some(Ok(chunk)))
            }
            Ok(Recv::End) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Ok(Recv::Pending) => {
                if let Some(e) = state.stream_error(self.id) {
                    return Poll::Ready(Some(Err(e)));
                }
                if let Some(slot) = state.slots.get_mut(&self.id) {
                    slot.recv_waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            // Unknown to the session: it failed, or finished and was read.
            Err(_) => match state.stream_error(self.id) {
                Some(e) => Poll::Ready(Some(Err(e))),
                None => Poll::Ready(None),
            },
        }
    }

    /// See [`poll_data`](Self::poll_data).
    pub async fn data(&mut self) -> Option<Result<Bytes, Error>> {
        poll_fn(|cx| self.poll_data(cx)).await
    }

    /// Reads the rest of the stream into one buffer, refusing more than
    /// `limit` bytes.
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        while let Some(chunk) = self.data().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(Error::BodyTooLarge { limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// HEADERS frames received so far (for instance trailers, once `data`
    /// returned `None`), oldest first.
    pub fn take_headers(&mut self) -> Vec<HeaderBlock> {
        let mut state = self.shared.lock();
        state
            .slots
            .get_mut(&self.id)
            .map(|slot| {
                slot.header_bytes = 0;
                slot.headers.drain(..).collect()
            })
            .unwrap_or_default()
    }
}

impl RecvStream {
    /// Resets the stream (both directions) with `status`.
    pub(crate) fn reset(&self, status: RstStatus) {
        let mut state = self.shared.lock();
        if state.session.reset(self.id, status).is_ok() {
            state.wake_driver();
        }
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        self.shared.lock().release_stream_ref(self.id);
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        // The sending half lives on: stop holding what the peer sends, so
        // the stream pins no window (its data is discarded and credited).
        if state.slots.get(&self.id).is_some_and(|s| s.refs > 1)
            && state.session.stop_reading(self.id).is_ok()
        {
            state.wake_driver();
        }
        state.release_stream_ref(self.id);
    }
}
