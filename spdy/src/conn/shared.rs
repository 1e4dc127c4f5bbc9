//! The state shared by the connection task and the user's handles.
//!
//! One mutex guards the session and the per-stream wakers. Handles lock it,
//! call the session, register their waker and wake the connection task;
//! the task locks it to feed input, dispatch events and take output. The
//! lock is never held across an `.await` or an I/O call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use spdy_proto::frame::{GoAwayStatus, RstStatus, StreamId};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::session::{Event, Session};

use crate::error::Error;

/// HEADERS frames kept per stream until the application reads them; a peer
/// sending more resets the stream instead of growing memory.
pub(crate) const MAX_PENDING_HEADERS: usize = 16;
/// Bytes of those blocks (names and values) kept per stream: one block of
/// the largest size the decoder accepts. Without it 16 blocks of 64 KiB,
/// which zlib sends for a few hundred bytes, could wait on each of 100
/// streams: 100 MiB per connection.
pub(crate) const MAX_PENDING_HEADER_BYTES: usize = 64 * 1024;

/// The memory a header block holds, near enough: its names and values.
fn block_bytes(block: &HeaderBlock) -> usize {
    block.iter().map(|(n, v)| n.len() + v.len() + 8).sum()
}

/// A stream the peer opened, waiting for `accept`.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) id: StreamId,
    pub(crate) associated_to: Option<StreamId>,
    pub(crate) priority: u8,
    pub(crate) headers: HeaderBlock,
    pub(crate) unidirectional: bool,
}

/// What the application side knows about one stream.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// SYN_REPLY headers of a stream we opened, once they arrive.
    pub(crate) reply: Option<HeaderBlock>,
    pub(crate) reply_taken: bool,
    /// HEADERS frames received, oldest first.
    pub(crate) headers: VecDeque<HeaderBlock>,
    /// Their size (see `block_bytes`).
    pub(crate) header_bytes: usize,
    /// Why the stream ended abnormally.
    pub(crate) error: Option<Error>,
    /// Why our sending side ended early while the peer's data stays
    /// readable (see `Event::SendStopped`).
    pub(crate) send_error: Option<Error>,
    pub(crate) recv_waker: Option<Waker>,
    pub(crate) send_waker: Option<Waker>,
    /// A `Responder` waiting in `poll_reset`.
    pub(crate) reset_waker: Option<Waker>,
    /// Live `SendStream` / `RecvStream` handles.
    pub(crate) refs: usize,
}

#[derive(Debug, Default)]
pub(crate) struct PingSlot {
    pub(crate) rtt: Option<Duration>,
    pub(crate) waker: Option<Waker>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) session: Session,
    pub(crate) slots: HashMap<StreamId, Slot>,
    pub(crate) incoming: VecDeque<Incoming>,
    /// Tasks waiting in `accept` (handles are clonable: each gets woken).
    pub(crate) accept_wakers: Vec<Waker>,
    /// Tasks waiting in `poll_ready` for a stream slot; woken once one is
    /// free or opening fails for good.
    pub(crate) ready_wakers: Vec<Waker>,
    /// Streams the peer opened that may wait for `accept`; beyond this they
    /// are refused, so a peer cannot queue work faster than it is taken.
    pub(crate) max_incoming: usize,
    pub(crate) driver_waker: Option<Waker>,
    pub(crate) pings: HashMap<u32, PingSlot>,
    /// Set when the connection is over; every waiting operation ends with
    /// it.
    pub(crate) terminal: Option<Error>,
    pub(crate) goaway: Option<(StreamId, GoAwayStatus)>,
    /// Live `Handle`s; when the last goes, the session goes away.
    pub(crate) handles: usize,
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(session: Session, max_incoming: usize) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State {
                session,
                slots: HashMap::new(),
                incoming: VecDeque::new(),
                accept_wakers: Vec::new(),
                ready_wakers: Vec::new(),
                max_incoming,
                driver_waker: None,
                pings: HashMap::new(),
                terminal: None,
                goaway: None,
                handles: 1,
            }),
        })
    }

    /// Locks the state. A panic while the lock was held (a bug) must not
    /// wedge every other handle, so a poisoned lock is used as is: the
    /// session's own invariants do not depend on the panicking code.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(w) = waker.take() {
        w.wake();
    }
}

impl State {
    pub(crate) fn wake_driver(&mut self) {
        wake(&mut self.driver_waker);
    }

    /// Hands the session's events to the waiting handles.
    pub(crate) fn dispatch_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            self.dispatch(event);
        }
        // Every change that frees a slot (a stream closed or failed, a
        // cancel by a dropped handle, SETTINGS raising the limit) or ends
        // the session passes through here: checked, not inferred from
        // events, so none is missed.
        if !self.ready_wakers.is_empty() && self.session.can_open() != Ok(false) {
            self.wake_ready();
        }
    }

    fn wake_ready(&mut self) {
        for waker in self.ready_wakers.drain(..) {
            waker.wake();
        }
    }

    /// Registers a task waiting in `poll_ready`.
    pub(crate) fn wait_ready(&mut self, waker: &Waker) {
        if !self.ready_wakers.iter().any(|w| w.will_wake(waker)) {
            self.ready_wakers.push(waker.clone());
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::StreamOpened {
                id,
                associated_to,
                priority,
                headers,
                unidirectional,
                ..
            } => {
                if self.incoming.len() >= self.max_incoming {
                    // Nobody is taking streams as fast as the peer opens
                    // them: refuse (safe for it to retry).
                    let _ = self.session.reset(id, RstStatus::RefusedStream);
                    self.slots.remove(&id);
                    self.wake_driver();
                    return;
                }
                self.slots.entry(id).or_default();
                self.incoming.push_back(Incoming {
                    id,
                    associated_to,
                    priority,
                    headers,
                    unidirectional,
                });
                self.wake_accepters();
            }
            Event::Reply { id, headers, .. } => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.reply = Some(headers);
                    wake(&mut slot.recv_waker);
                }
            }
            Event::Headers { id, headers, .. } => {
                let size = block_bytes(&headers);
                let overflow = match self.slots.get_mut(&id) {
                    Some(slot)
                        if slot.headers.len() >= MAX_PENDING_HEADERS
                            || slot.header_bytes + size > MAX_PENDING_HEADER_BYTES =>
                    {
                        true
                    }
                    Some(slot) => {
                        slot.header_bytes += size;
                        slot.headers.push_back(headers);
                        wake(&mut slot.recv_waker);
                        false
                    }
                    None => false,
                };
                if overflow {
                    let _ = self.session.reset(id, RstStatus::InternalError);
                    self.fail_slot(
                        id,
                        Error::Stream(spdy_proto::session::StreamError::Reset {
                            status: RstStatus::InternalError,
                            initiator: spdy_proto::session::Initiator::Local,
                        }),
                    );
                }
            }
            Event::Readable { id } => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    wake(&mut slot.recv_waker);
                }
            }
            Event::Writable { id } => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    wake(&mut slot.send_waker);
                }
            }
            Event::StreamFailed { id, error } => {
                tracing::trace!(%id, %error, "stream failed");
                self.fail_slot(id, Error::Stream(error));
            }
            Event::SendStopped { id, status } => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.send_error =
                        Some(Error::Stream(spdy_proto::session::StreamError::Reset {
                            status,
                            initiator: spdy_proto::session::Initiator::Remote,
                        }));
                    wake(&mut slot.send_waker);
                    wake(&mut slot.reset_waker);
                }
            }
            Event::Pong { id, rtt } => {
                if let Some(ping) = self.pings.get_mut(&id) {
                    ping.rtt = Some(rtt);
                    wake(&mut ping.waker);
                }
            }
            Event::GoAway {
                last_good_stream_id,
                status,
            } => {
                tracing::debug!(%last_good_stream_id, %status, "GOAWAY from the peer");
                self.goaway = Some((last_good_stream_id, status));
                self.wake_accepters();
            }
            Event::Closed { error } => {
                match &error {
                    Some(error) => tracing::debug!(%error, "session ended in error"),
                    None => tracing::trace!("session ended"),
                }
                let error = error.map_or(Error::ConnectionClosed, Error::Session);
                self.terminate(error);
            }
            Event::Version(_)
            | Event::StreamStarted { .. }
            | Event::StreamClosed { .. }
            | Event::Settings(_) => {}
        }
    }

    fn fail_slot(&mut self, id: StreamId, error: Error) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.error.get_or_insert(error);
            wake(&mut slot.recv_waker);
            wake(&mut slot.send_waker);
            wake(&mut slot.reset_waker);
        }
    }

    /// The connection is over: everything waiting ends with `error`.
    pub(crate) fn terminate(&mut self, error: Error) {
        if self.terminal.is_none() {
            self.terminal = Some(error);
        }
        for slot in self.slots.values_mut() {
            wake(&mut slot.recv_waker);
            wake(&mut slot.send_waker);
            wake(&mut slot.reset_waker);
        }
        for ping in self.pings.values_mut() {
            wake(&mut ping.waker);
        }
        self.wake_accepters();
        self.wake_ready();
    }

    fn wake_accepters(&mut self) {
        for waker in self.accept_wakers.drain(..) {
            waker.wake();
        }
    }

    /// Registers a task waiting in `accept`.
    pub(crate) fn wait_accept(&mut self, waker: &Waker) {
        if !self.accept_wakers.iter().any(|w| w.will_wake(waker)) {
            self.accept_wakers.push(waker.clone());
        }
    }

    /// Refuses every stream still waiting for `accept` (REFUSED_STREAM:
    /// safe for the peer to retry), for a graceful shutdown.
    pub(crate) fn refuse_incoming(&mut self) {
        while let Some(incoming) = self.incoming.pop_front() {
            let _ = self.session.reset(incoming.id, RstStatus::RefusedStream);
            self.slots.remove(&incoming.id);
        }
        self.wake_driver();
    }

    /// The error a stream operation ends with: the stream's own, else the
    /// connection's.
    pub(crate) fn stream_error(&self, id: StreamId) -> Option<Error> {
        self.slots
            .get(&id)
            .and_then(|s| s.error.clone())
            .or_else(|| self.terminal.clone())
    }

    /// The error a sending operation ends with: the sending side's own, else
    /// the stream's or the connection's.
    pub(crate) fn send_error(&self, id: StreamId) -> Option<Error> {
        self.slots
            .get(&id)
            .and_then(|s| s.send_error.clone())
            .or_else(|| self.stream_error(id))
    }

    /// A handle to stream `id` was dropped; when none is left and the stream
    /// is unfinished, it is cancelled so the peer stops sending.
    pub(crate) fn release_stream_ref(&mut self, id: StreamId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.refs = slot.refs.saturating_sub(1);
        if slot.refs > 0 {
            return;
        }
        self.slots.remove(&id);
        // Unknown to the session means it finished (or failed) already;
        // otherwise an unfinished stream is reset with CANCEL.
        if self.session.cancel(id).is_ok() {
            self.wake_driver();
        }
    }
}
