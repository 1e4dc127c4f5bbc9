//! The connection driver: one task per connection owns the socket.
//!
//! [`Connection`] is a future that reads from the socket into the sans-IO
//! [`Session`], writes what the session produces (a DATA frame as its 8-byte
//! header and the payload `Bytes`, in one vectored write, never copied),
//! drives the session's timer, and wakes the handles waiting on streams.
//!
//! The session lives behind one mutex shared with the handles, as in quinn
//! and h2: a handle that sends data locks it, queues the data in the
//! session, and wakes this task; this task locks it to feed input and take
//! output. The lock is only held for those calls, never across I/O or an
//! `.await`, so a slow reader on one stream cannot stall another: all that
//! waits on a stream is that stream's handle.

mod shared;

pub(crate) use shared::{Shared, State};

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use spdy_proto::session::{Flood, Session, Transmit};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

use crate::error::Error;
use crate::reset_budget::ResetBudget;

/// Bytes read from the socket per read call.
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer of a session with no stream open: idle connections are
/// the many, and a request's first frames fit in it. The first read that
/// fills it brings back [`READ_CHUNK`].
const IDLE_READ_CHUNK: usize = 2 * 1024;
/// Output gathered from the session before writing; also how far ahead of
/// the socket the session is allowed to run.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Slices per vectored write.
const MAX_IOVECS: usize = 64;
/// Reads processed per poll before yielding to other tasks.
const READS_PER_POLL: usize = 16;
/// How long, and for how many bytes, a session that failed keeps reading
/// (and dropping) what the peer sends before it closes the socket.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;
/// How long a finished session waits for a peer that does not read.
const CLOSE_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Drives one SPDY connection. Spawn it (`tokio::spawn(connection)`); it
/// completes when the session is over and the socket is shut down, with the
/// reason if that was an error.
#[must_use = "a Connection does nothing unless polled or spawned"]
pub struct Connection<T> {
    io: T,
    shared: Arc<Shared>,
    read_buf: BytesMut,
    write_queue: VecDeque<Transmit>,
    queued: usize,
    /// Made at the first deadline (inside the runtime: a `Sleep` made
    /// outside one panics, and handshakes may run before any runtime).
    timer: Option<Pin<Box<Sleep>>>,
    timer_armed: bool,
    /// How long a finished session may wait for the peer to read its last
    /// frames.
    close_deadline: Option<Pin<Box<Sleep>>>,
    read_closed: bool,
    /// Bytes were written since the last successful flush.
    unflushed: bool,
    done: bool,
    /// A reset limit shared with other connections, and the session's
    /// count already charged to it.
    reset_budget: Option<(ResetBudget, u64)>,
    /// Our side of the socket is shut down.
    shut_down: bool,
    /// Output was dropped because the peer did not read it.
    output_dropped: bool,
    /// The lingering close: its deadline, and the bytes dropped so far.
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<T> Drop for Connection<T> {
    /// A driver dropped before the session ended (aborted, or its task
    /// panicked) fails everything still waiting, rather than leave it
    /// waiting forever.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.shared.lock();
        state.terminate(Error::ConnectionClosed);
        state.session.handle_eof();
        state.dispatch_events();
    }
}

impl<T> std::fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("queued", &self.queued)
            .field("read_closed", &self.read_closed)
            .finish()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    /// Wraps a connected socket and a session. Returns the driver and the
    /// shared state that handles use.
    pub(crate) fn new(
        io: T,
        session: Session,
        max_incoming: usize,
    ) -> (Connection<T>, Arc<Shared>) {
        let shared = Shared::new(session, max_incoming);
        let conn = Connection {
            io,
            shared: shared.clone(),
            read_buf: BytesMut::new(),
            write_queue: VecDeque::new(),
            queued: 0,
            timer: None,
            timer_armed: false,
            close_deadline: None,
            read_closed: false,
            unflushed: false,
            done: false,
            reset_budget: None,
            shut_down: false,
            output_dropped: false,
            linger: None,
        };
        (conn, shared)
    }

    /// Charges the peer's resets to `budget` too (see
    /// [`server::ResetBudget`](crate::server::ResetBudget)).
    pub(crate) fn with_reset_budget(mut self, budget: ResetBudget) -> Connection<T> {
        self.reset_budget = Some((budget, 0));
        self
    }

    /// Reads what is available and feeds it to the session.
    fn poll_read_side(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        // Input the session left while it paused (SPDY/2 back-pressure).
        if !self.read_buf.is_empty() {
            let mut state = self.shared.lock();
            if state.session.wants_input() {
                let now = Instant::now().into_std();
                state.session.handle_input(now, &mut self.read_buf);
                charge_resets(&mut self.reset_budget, &mut state);
                state.dispatch_events();
            }
        }
        for _ in 0..READS_PER_POLL {
            if self.read_closed {
                return Ok(());
            }
            // While the session takes no input, leave it in the socket: the
            // peer is held back by TCP. Taking data wakes this task again.
            if !self.shared.lock().session.wants_input() {
                return Ok(());
            }
            if self.read_buf.capacity() == 0 {
                self.read_buf.reserve(IDLE_READ_CHUNK);
            } else if self.read_buf.capacity() - self.read_buf.len() < READ_CHUNK / 4 {
                self.read_buf.reserve(READ_CHUNK);
            }
            match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf) {
                Poll::Ready(Ok(n)) => {
                    if n == 0 {
                        self.read_closed = true;
                        let mut state = self.shared.lock();
                        state.session.handle_eof();
                        state.dispatch_events();
                        return Ok(());
                    }
                    let mut state = self.shared.lock();
                    let now = Instant::now().into_std();
                    state.session.handle_input(now, &mut self.read_buf);
                    charge_resets(&mut self.reset_budget, &mut state);
                    state.dispatch_events();
                }
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => return Ok(()),
            }
        }
        // More may be waiting: come back after other tasks had a turn.
        cx.waker().wake_by_ref();
        Ok(())
    }

    /// Moves session output into the write queue and writes it.
    fn poll_write_side(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        loop {
            if self.queued < WRITE_HIGH_WATER {
                let mut state = self.shared.lock();
                let now = Instant::now().into_std();
                while self.queued < WRITE_HIGH_WATER {
                    match state.session.poll_transmit(now) {
                        Some(t) => {
                            self.queued += t.remaining();
                            self.write_queue.push_back(t);
                        }
                        None => break,
                    }
                }
            }
            if self.write_queue.is_empty() {
                // Transports that buffer writes (TLS records, WebSocket
                // messages) send nothing until flushed.
                if self.unflushed {
                    match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => self.unflushed = false,
                        Poll::Ready(Err(e)) => return Err(e.into()),
                        Poll::Pending => {}
                    }
                }
                return Ok(());
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut n = 0;
            for t in &self.write_queue {
                if n == MAX_IOVECS {
                    break;
                }
                n += t.chunks_vectored(&mut slices[n..]);
            }
            let written = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into())
                }
                Poll::Ready(Ok(w)) => w,
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => return Ok(()),
            };
            self.unflushed = true;
            self.advance_written(written);
        }
    }

    fn advance_written(&mut self, mut written: usize) {
        self.queued -= written;
        while written > 0 {
            let Some(front) = self.write_queue.front_mut() else {
                return;
            };
            let take = written.min(front.remaining());
            front.advance(take);
            written -= take;
            if !front.has_remaining() {
                self.write_queue.pop_front();
            }
        }
    }

    /// Arms the timer for the session's next deadline and fires it when due.
    fn poll_timer(&mut self, cx: &mut Context<'_>) {
        loop {
            let deadline = self.shared.lock().session.poll_timeout();
            let Some(deadline) = deadline else {
                self.timer_armed = false;
                return;
            };
            let deadline = Instant::from_std(deadline);
            let timer = match &mut self.timer {
                Some(timer) => {
                    if !self.timer_armed || timer.deadline() != deadline {
                        timer.as_mut().reset(deadline);
                    }
                    timer
                }
                None => self
                    .timer
                    .insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            self.timer_armed = true;
            if timer.as_mut().poll(cx).is_pending() {
                return;
            }
            self.timer_armed = false;
            let mut state = self.shared.lock();
            state.session.handle_timeout(Instant::now().into_std());
            state.dispatch_events();
        }
    }

    /// Reads and discards what the peer still sends, until it closes, at
    /// most [`LINGER_TIME`] and [`LINGER_BYTES`].
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self
            .linger
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep(LINGER_TIME)), 0));
        if deadline.0.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let mut scratch = [0u8; 4096];
        loop {
            if self.read_closed || deadline.1 >= LINGER_BYTES {
                return Poll::Ready(());
            }
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    deadline.1 += buf.filled().len();
                }
                Poll::Ready(_) => self.read_closed = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn fail(&mut self, error: Error) -> Poll<Result<(), Error>> {
        tracing::debug!(%error, "connection failed");
        let mut state = self.shared.lock();
        // The I/O error is what waiting operations report, not a plain
        // "connection closed".
        state.terminate(error.clone());
        state.session.handle_eof();
        state.dispatch_events();
        self.done = true;
        Poll::Ready(Err(error))
    }
}

/// Charges the resets a session counted since the last call to its shared
/// budget; ends the session once that is spent.
fn charge_resets(budget: &mut Option<(ResetBudget, u64)>, state: &mut State) {
    let Some((budget, charged)) = budget else {
        return;
    };
    let total = state.session.peer_resets_counted();
    if total > *charged {
        let n = total - *charged;
        *charged = total;
        if !budget.charge(n, Instant::now()) {
            tracing::debug!("the peer's address spent its shared reset budget: GOAWAY");
            state.session.close_flooded(Flood::Resets);
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Connection<T> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(Ok(()));
        }
        // Register first, so that a handle changing the state from here on
        // wakes this poll again.
        this.shared.lock().driver_waker = Some(cx.waker().clone());
        if let Err(e) = this.poll_read_side(cx) {
            return this.fail(e);
        }
        // Write, then arm the timer (writing starts the session's idle
        // clock), then write what a timer may have queued (a keepalive).
        if let Err(e) = this.poll_write_side(cx) {
            return this.fail(e);
        }
        this.poll_timer(cx);
        if let Err(e) = this.poll_write_side(cx) {
            return this.fail(e);
        }
        let (closed, error) = {
            let mut state = this.shared.lock();
            state.dispatch_events();
            // Idle (no stream, nothing half-read): give the large read
            // buffer back (DATA handed out keeps its own part alive), so
            // the many idle connections of a server stay small.
            if this.read_buf.capacity() > IDLE_READ_CHUNK
                && this.read_buf.is_empty()
                && state.session.active_streams() == (0, 0)
            {
                this.read_buf = BytesMut::new();
                this.write_queue.shrink_to_fit();
            }
            (state.session.is_closed(), state.terminal.clone())
        };
        if closed && !this.write_queue.is_empty() {
            // The session is over but the peer does not read its last
            // frames: give it a bounded time, then drop the connection.
            let deadline = this
                .close_deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_FLUSH_TIMEOUT)));
            if deadline.as_mut().poll(cx).is_ready() {
                tracing::debug!(
                    queued = this.queued,
                    "the peer does not read the session's last frames: dropped"
                );
                this.write_queue.clear();
                this.queued = 0;
                // The GOAWAY is lost with it: nothing to linger for.
                this.output_dropped = true;
            }
        }
        if (closed || this.read_closed) && this.write_queue.is_empty() {
            if !this.shut_down {
                if Pin::new(&mut this.io).poll_shutdown(cx).is_pending() {
                    return Poll::Pending;
                }
                this.shut_down = true;
            }
            // A session that failed told the peer why in its GOAWAY; closing
            // while the peer's frames are still arriving would make the
            // kernel answer them with a reset that can destroy that GOAWAY
            // before the peer reads it. So read and drop for a bounded time
            // first (nginx's lingering close).
            if matches!(error, Some(Error::Session(_)))
                && !this.output_dropped
                && this.poll_linger(cx).is_pending()
            {
                return Poll::Pending;
            }
            this.done = true;
            this.shared.lock().terminate(Error::ConnectionClosed);
            return Poll::Ready(match error {
                Some(Error::Session(e)) => Err(Error::Session(e)),
                _ => Ok(()),
            });
        }
        Poll::Pending
    }
}
