//! `v5.channel.k8s.io`: the streams of an exec as channels of one
//! WebSocket (kubectl's default exec path since 1.30, not SPDY).
//!
//! Each binary message carries one channel's data behind a byte naming
//! the channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize). v5 adds
//! the close signal `[255, channel]`, with which the client ends stdin
//! without ending the connection; the server ends everything at once by
//! closing the WebSocket normally (client-go ignores close signals it
//! receives, so the server never sends them).
//!
//! One task per connection ([`Driver`]) reads and writes the WebSocket.
//! Memory stays bounded without any flow control in the protocol: each
//! data channel (stdin; stdout, stderr and error on the client) queues at
//! most [`CHANNEL_QUEUE`] messages of at most [`MAX_MESSAGE`] bytes
//! towards the application, and when a queue is full the driver stops
//! reading the socket (TCP back-pressure) until the application reads;
//! writers queue at most [`OUTGOING_QUEUE`] messages. The resize channel
//! never pauses the connection: it keeps only the latest size.
//!
//! Every [`HEARTBEAT`] the driver sends a control frame. While it reads,
//! a ping, and a peer that has sent nothing at all for [`PEER_TIMEOUT`]
//! of reading (not even the pong) is taken for gone: the connection fails
//! instead of waiting forever (kubectl, once a write of its own timed out,
//! never writes again, nor closes). While it does not read, it cannot
//! answer the peer's pings (client-go gives up after a minute without a
//! pong), so it sends a pong of its own (RFC 6455 5.5.3 allows unsolicited
//! pongs; client-go's pong handler only pushes its read deadline on).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::PollSender;

/// The WebSocket subprotocol of exec (remote command) version 5.
pub const EXEC_WEBSOCKET_PROTOCOL: &str = "v5.channel.k8s.io";

/// The channel numbers.
pub(super) const STDIN: u8 = 0;
pub(super) const STDOUT: u8 = 1;
pub(super) const STDERR: u8 = 2;
pub(super) const ERROR: u8 = 3;
pub(super) const RESIZE: u8 = 4;
/// The first byte of v5's close signal; the second names the channel.
const CLOSE_SIGNAL: u8 = 255;
const CHANNELS: usize = 5;

/// Messages queued per channel towards the application.
pub const CHANNEL_QUEUE: usize = 4;
/// Messages queued by the writers towards the socket.
pub const OUTGOING_QUEUE: usize = 16;
/// The largest message (and frame) accepted from the peer.
pub const MAX_MESSAGE: usize = 1 << 20;
/// The most data a write puts in one message (what client-go's copies
/// write at a time).
pub const MAX_WRITE: usize = 32 * 1024;
/// How long the server holds what it writes after the upgrade. client-go
/// starts reading the connection before it registers its streams, and
/// drops messages for streams it does not know yet: a command that ends
/// at once (`test -d`, which `kubectl cp` runs first) could otherwise see
/// its exit status dropped and read as success. Through a real API
/// server the hop to the kubelet hides this; here a short wait does.
pub const SERVER_GRACE: Duration = Duration::from_millis(50);

/// How often a ping (or, while the driver is not reading, a pong) goes
/// out.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a peer may stay silent while the driver reads.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a channel's queue carries.
#[derive(Debug)]
enum Item {
    Data(Bytes),
    /// The peer's close signal for this channel: a clean end.
    End,
}

/// How the connection ended, for readers whose channel had no close signal
/// of its own (and writers that find the driver gone).
#[derive(Debug, Default)]
struct Shared {
    ending: Mutex<Option<Ending>>,
}

#[derive(Debug, Clone)]
enum Ending {
    /// A normal close: every channel ends cleanly.
    Clean,
    /// Anything else: a channel cut short is an error.
    Failed(io::ErrorKind, String),
}

impl Shared {
    fn set(&self, ending: Ending) {
        if let Ok(mut slot) = self.ending.lock() {
            slot.get_or_insert(ending);
        }
    }

    fn get(&self) -> Option<Ending> {
        self.ending.lock().ok().and_then(|slot| slot.clone())
    }

    /// The error for an operation on a connection that is gone.
    fn gone(&self) -> io::Error {
        match self.get() {
            Some(Ending::Failed(kind, message)) => io::Error::new(kind, message),
            Some(Ending::Clean) => io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the WebSocket connection is closed",
            ),
            None => io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the WebSocket connection was dropped",
            ),
        }
    }
}

/// The WebSocket limits for channel connections.
pub(super) fn websocket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        max_message_size: Some(MAX_MESSAGE),
        max_frame_size: Some(MAX_MESSAGE),
        ..Default::default()
    }
}

/// Which end of the protocol we are: the client sends close signals when
/// it ends a channel, the server does not (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Client,
    Server,
}

/// A running channel connection: its driver task and what it takes to
/// open readers and writers and to close it.
#[derive(Debug)]
pub(super) struct Connection {
    outgoing: mpsc::Sender<Message>,
    receivers: [Option<mpsc::Receiver<Item>>; CHANNELS],
    resize: Option<watch::Receiver<Option<Bytes>>>,
    shared: Arc<Shared>,
    side: Side,
    task: JoinHandle<()>,
}

impl Connection {
    /// Starts the driver of `ws` (its handshake done) on the current tokio
    /// runtime. Data for channels not in `inbound` is discarded.
    pub(super) fn spawn<S>(ws: WebSocketStream<S>, side: Side, inbound: &[u8]) -> Connection
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Connection::spawn_with(ws, side, inbound, HEARTBEAT, PEER_TIMEOUT, SERVER_GRACE)
    }

    fn spawn_with<S>(
        ws: WebSocketStream<S>,
        side: Side,
        inbound: &[u8],
        period: Duration,
        peer_timeout: Duration,
        grace: Duration,
    ) -> Connection
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let mut senders: [Option<PollSender<Item>>; CHANNELS] = Default::default();
        let mut receivers: [Option<mpsc::Receiver<Item>>; CHANNELS] = Default::default();
        let (mut resize_tx, mut resize) = (None, None);
        for &channel in inbound {
            if channel == RESIZE {
                let (tx, rx) = watch::channel(None);
                (resize_tx, resize) = (Some(tx), Some(rx));
            } else if let Some(slot) = senders.get_mut(channel as usize) {
                let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
                *slot = Some(PollSender::new(tx));
                receivers[channel as usize] = Some(rx);
            }
        }
        let shared = Arc::new(Shared::default());
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let silent_ticks_allowed = peer_timeout.as_millis() / period.as_millis().max(1);
        let hold = match side {
            Side::Server => Some(Box::pin(tokio::time::sleep(grace))),
            Side::Client => None,
        };
        let driver = Driver {
            ws,
            hold,
            outgoing: outgoing_rx,
            outgoing_open: true,
            flush: false,
            heartbeat,
            due: None,
            heard: false,
            silent_ticks: 0,
            silent_ticks_allowed: silent_ticks_allowed.try_into().unwrap_or(u32::MAX),
            senders,
            resize: resize_tx,
            pending: None,
            shared: shared.clone(),
        };
        Connection {
            outgoing,
            receivers,
            resize,
            shared,
            side,
            task: tokio::spawn(driver),
        }
    }

    /// The resize channel's sizes, latest first (once; `None` if it is not
    /// inbound).
    pub(super) fn resize(&mut self) -> Option<Latest> {
        self.resize.take().map(|receiver| Latest { receiver })
    }

    /// The reading end of `channel` (once; `None` if it is not inbound).
    pub(super) fn reader(&mut self, channel: u8) -> Option<Reader> {
        let receiver = self.receivers.get_mut(channel as usize)?.take()?;
        Some(Reader {
            receiver,
            chunk: Bytes::new(),
            done: false,
            shared: self.shared.clone(),
        })
    }

    /// A writing end for `channel`.
    pub(super) fn writer(&self, channel: u8) -> Writer {
        Writer {
            sender: PollSender::new(self.outgoing.clone()),
            channel,
            close_signal: self.side == Side::Client,
            closed: false,
            shared: self.shared.clone(),
        }
    }

    /// Closes the connection normally (after what the writers queued) and
    /// waits at most `linger` for the peer to close its side; then the
    /// connection is dropped.
    pub(super) async fn close(mut self, linger: Duration) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let outgoing = self.outgoing.clone();
        let close = async move {
            if outgoing.send(Message::Close(Some(frame))).await.is_ok() {
                let _ = (&mut self.task).await;
            }
        };
        let _ = tokio::time::timeout(linger, close).await;
    }
}

impl Drop for Connection {
    /// A connection dropped without [`close`](Connection::close) ends at
    /// once, abruptly (the peer sees a failure, not a clean end).
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads and writes the WebSocket: writers' messages out, the peer's
/// messages to their channels' queues.
struct Driver<S> {
    ws: WebSocketStream<S>,
    /// Until it elapses, nothing is sent (see [`SERVER_GRACE`]).
    hold: Option<Pin<Box<tokio::time::Sleep>>>,
    outgoing: mpsc::Receiver<Message>,
    /// Whether writers' messages are still taken (not after our close).
    outgoing_open: bool,
    /// Messages were sent since the last flush.
    flush: bool,
    /// Ticks every [`HEARTBEAT`]: a ping or a pong is due at each.
    heartbeat: tokio::time::Interval,
    due: Option<Message>,
    /// Something came from the peer since the last tick.
    heard: bool,
    /// Ticks while reading without a word from the peer, and how many
    /// make it gone.
    silent_ticks: u32,
    silent_ticks_allowed: u32,
    senders: [Option<PollSender<Item>>; CHANNELS],
    /// The resize channel: the latest message, never blocking.
    resize: Option<watch::Sender<Option<Bytes>>>,
    /// A received item whose channel's queue was full.
    pending: Option<(usize, Item)>,
    shared: Arc<Shared>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// Sends what the writers queued; `Err` when the socket failed.
    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Result<(), Ending> {
        if let Some(hold) = &mut self.hold {
            if hold.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            self.hold = None;
        }
        while self.outgoing_open {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(failed(e)),
                Poll::Pending => break,
            }
            if let Some(message) = self.due.take() {
                Pin::new(&mut self.ws).start_send(message).map_err(failed)?;
                self.flush = true;
                continue;
            }
            let message = match self.outgoing.poll_recv(cx) {
                Poll::Ready(Some(message)) => message,
                // Every writer and the connection's owner are gone without
                // a close: end abruptly, so the peer does not take it for a
                // clean end.
                Poll::Ready(None) => Message::Close(Some(CloseFrame {
                    code: CloseCode::Error,
                    reason: "the session was dropped".into(),
                })),
                Poll::Pending => break,
            };
            self.outgoing_open = !matches!(message, Message::Close(_));
            Pin::new(&mut self.ws).start_send(message).map_err(failed)?;
            self.flush = true;
        }
        if self.flush {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush = false,
                Poll::Ready(Err(e)) => return Err(failed(e)),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Hands the pending item to its channel; `Pending` while its queue is
    /// full.
    fn poll_deliver(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some((channel, _)) = &self.pending else {
            return Poll::Ready(());
        };
        let channel = *channel;
        let Some(sender) = self.senders[channel].as_mut() else {
            self.pending = None;
            return Poll::Ready(());
        };
        match ready!(sender.poll_reserve(cx)) {
            Ok(()) => {
                if let Some((_, item)) = self.pending.take() {
                    let end = matches!(item, Item::End);
                    if sender.send_item(item).is_err() || end {
                        self.senders[channel] = None;
                    }
                }
            }
            // The application dropped the reader: its data goes nowhere.
            Err(_) => {
                self.senders[channel] = None;
                self.pending = None;
            }
        }
        Poll::Ready(())
    }

    /// What to do with a message from the peer.
    fn receive(&mut self, message: Message) -> Result<(), Ending> {
        let data = match message {
            Message::Binary(data) => data,
            Message::Text(_) => {
                return Err(Ending::Failed(
                    io::ErrorKind::InvalidData,
                    "a text message on a channel connection".to_owned(),
                ))
            }
            Message::Close(frame) => {
                // Only a normal close is a clean end (client-go agrees: a
                // close without a status is an error there too).
                let normal = frame.as_ref().is_some_and(|f| f.code == CloseCode::Normal);
                self.shared.set(match normal {
                    true => Ending::Clean,
                    false => Ending::Failed(
                        io::ErrorKind::ConnectionAborted,
                        format!(
                            "the peer closed the WebSocket: {}",
                            frame.map(|f| f.to_string()).unwrap_or_default()
                        ),
                    ),
                });
                return Ok(());
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(()),
        };
        match data.first().copied() {
            // An empty message says nothing.
            None => Ok(()),
            Some(CLOSE_SIGNAL) => match data.get(1) {
                Some(&RESIZE) if data.len() == 2 => {
                    self.resize = None;
                    Ok(())
                }
                Some(&channel) if data.len() == 2 && (channel as usize) < CHANNELS => {
                    self.pending = Some((channel as usize, Item::End));
                    Ok(())
                }
                _ => Err(Ending::Failed(
                    io::ErrorKind::InvalidData,
                    format!("a malformed close signal: {data:?}"),
                )),
            },
            Some(RESIZE) => {
                if let Some(resize) = &self.resize {
                    resize.send_replace(Some(Bytes::from(data).slice(1..)));
                }
                Ok(())
            }
            // Data for a channel nobody reads (or unknown) is dropped, as
            // client-go does.
            Some(channel) if (channel as usize) < CHANNELS && data.len() > 1 => {
                let data = Bytes::from(data).slice(1..);
                self.pending = Some((channel as usize, Item::Data(data)));
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        loop {
            if let Err(ending) = self.poll_outgoing(cx) {
                return Poll::Ready(ending);
            }
            let blocked = self.poll_deliver(cx).is_pending();
            if self.heartbeat.poll_tick(cx).is_ready() {
                if blocked {
                    // Not reading: nobody answers the peer's pings.
                    self.due = Some(Message::Pong(Vec::new()));
                } else {
                    self.silent_ticks = match self.heard {
                        true => 0,
                        false => self.silent_ticks + 1,
                    };
                    self.heard = false;
                    if self.silent_ticks > self.silent_ticks_allowed {
                        return Poll::Ready(Ending::Failed(
                            io::ErrorKind::TimedOut,
                            "the peer stopped answering (no pong in time)".to_owned(),
                        ));
                    }
                    self.due = Some(Message::Ping(Vec::new()));
                }
                continue;
            }
            if blocked {
                return Poll::Pending;
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(message)) => {
                    self.heard = true;
                    if let Err(ending) = self.receive(message) {
                        return Poll::Ready(ending);
                    }
                }
                Some(Err(e)) => return Poll::Ready(failed(e)),
                None => {
                    return Poll::Ready(Ending::Failed(
                        io::ErrorKind::UnexpectedEof,
                        "the WebSocket connection ended without a close message".to_owned(),
                    ))
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Driver<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let ending = ready!(this.poll_run(cx));
        // The first ending stays (a clean close followed by the end of the
        // connection is clean).
        this.shared.set(ending);
        // Dropping the senders ends the readers (after what they queued).
        this.senders = Default::default();
        this.resize = None;
        Poll::Ready(())
    }
}

fn failed(e: tokio_tungstenite::tungstenite::Error) -> Ending {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(e) => Ending::Failed(e.kind(), e.to_string()),
        Error::ConnectionClosed | Error::AlreadyClosed => Ending::Failed(
            io::ErrorKind::BrokenPipe,
            "the WebSocket connection is closed".to_owned(),
        ),
        e => Ending::Failed(io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// The reading end of one channel.
#[derive(Debug)]
pub(super) struct Reader {
    receiver: mpsc::Receiver<Item>,
    chunk: Bytes,
    done: bool,
    shared: Arc<Shared>,
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.chunk.is_empty() {
                let n = buf.remaining().min(this.chunk.len());
                buf.put_slice(&this.chunk.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.receiver.poll_recv(cx)) {
                Some(Item::Data(data)) => this.chunk = data,
                Some(Item::End) => this.done = true,
                None => match this.shared.get() {
                    Some(Ending::Clean) => this.done = true,
                    _ => return Poll::Ready(Err(this.shared.gone())),
                },
            }
        }
    }
}

/// The resize channel's messages, keeping only the latest one the
/// application has not taken (a terminal's size is all that matters).
#[derive(Debug)]
pub(super) struct Latest {
    receiver: watch::Receiver<Option<Bytes>>,
}

impl Latest {
    /// The next message not seen yet; `None` at the channel's end.
    pub(super) async fn next(&mut self) -> Option<Bytes> {
        loop {
            self.receiver.changed().await.ok()?;
            if let Some(message) = self.receiver.borrow_and_update().clone() {
                return Some(message);
            }
        }
    }
}

/// The writing end of one channel: each write is one message of at most
/// [`MAX_WRITE`] bytes.
#[derive(Debug)]
pub(super) struct Writer {
    sender: PollSender<Message>,
    channel: u8,
    close_signal: bool,
    closed: bool,
    shared: Arc<Shared>,
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if ready!(this.sender.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(this.shared.gone()));
        }
        let n = buf.len().min(MAX_WRITE);
        let mut message = Vec::with_capacity(n + 1);
        message.push(this.channel);
        message.extend_from_slice(&buf[..n]);
        match this.sender.send_item(Message::Binary(message)) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(this.shared.gone())),
        }
    }

    /// The driver flushes the socket whenever it has sent what was queued.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The client sends the close signal; the server has none to send
    /// (its channels end with the connection).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Ok(()));
        }
        if this.close_signal {
            if ready!(this.sender.poll_reserve(cx)).is_err() {
                return Poll::Ready(Err(this.shared.gone()));
            }
            let signal = Message::Binary(vec![CLOSE_SIGNAL, this.channel]);
            if this.sender.send_item(signal).is_err() {
                return Poll::Ready(Err(this.shared.gone()));
            }
        }
        this.closed = true;
        this.sender.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio_tungstenite::tungstenite::protocol::Role;

    const WAIT: Duration = Duration::from_secs(10);
    /// The server's hold in these tests.
    const GRACE: Duration = Duration::from_millis(30);

    /// A server-side connection (`inbound` channels, pongs every
    /// `heartbeat`) and the raw WebSocket of its client.
    async fn pair(
        inbound: &[u8],
        heartbeat: Duration,
    ) -> (Connection, WebSocketStream<DuplexStream>) {
        pair_with(inbound, heartbeat, PEER_TIMEOUT).await
    }

    async fn pair_with(
        inbound: &[u8],
        heartbeat: Duration,
        peer_timeout: Duration,
    ) -> (Connection, WebSocketStream<DuplexStream>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        (
            Connection::spawn_with(
                server,
                Side::Server,
                inbound,
                heartbeat,
                peer_timeout,
                GRACE,
            ),
            client,
        )
    }

    async fn send(ws: &mut WebSocketStream<DuplexStream>, message: Message) {
        let sent = async {
            std::future::poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx)).await?;
            Pin::new(&mut *ws).start_send(message)?;
            std::future::poll_fn(|cx| Pin::new(&mut *ws).poll_flush(cx)).await
        };
        tokio::time::timeout(WAIT, sent).await.unwrap().unwrap();
    }

    async fn next(ws: &mut WebSocketStream<DuplexStream>) -> Option<Message> {
        let next = std::future::poll_fn(|cx| Pin::new(&mut *ws).poll_next(cx));
        tokio::time::timeout(WAIT, next).await.unwrap()?.ok()
    }

    async fn read_all(reader: &mut Reader) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        tokio::time::timeout(WAIT, reader.read_to_end(&mut out))
            .await
            .unwrap()?;
        Ok(out)
    }

    #[tokio::test]
    async fn the_server_holds_what_it_writes_just_after_the_upgrade() {
        let started = std::time::Instant::now();
        let (connection, mut client) = pair(&[], HEARTBEAT).await;
        let mut error = connection.writer(ERROR);
        tokio::io::AsyncWriteExt::write_all(&mut error, b"done")
            .await
            .unwrap();
        assert_eq!(
            next(&mut client).await,
            Some(Message::Binary(b"\x03done".to_vec()))
        );
        // (A sleep lasts at least its duration.)
        assert!(started.elapsed() >= GRACE, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn pongs_while_the_application_does_not_read() {
        let (mut connection, mut client) = pair(&[STDIN], Duration::from_millis(20)).await;
        let _stdin = connection.reader(STDIN);
        // More than the queue and the pending slot hold: the driver stops
        // reading, so it cannot answer a ping.
        for _ in 0..CHANNEL_QUEUE + 4 {
            send(
                &mut client,
                Message::Binary([&[STDIN][..], &[b'a'; 100]].concat()),
            )
            .await;
        }
        send(&mut client, Message::Ping(b"hi".to_vec())).await;
        loop {
            match next(&mut client).await {
                Some(Message::Pong(_)) => break,
                Some(_) => continue,
                None => panic!("the connection ended without a pong"),
            }
        }
    }

    #[tokio::test]
    async fn a_peer_that_answers_pings_stays_and_a_silent_one_is_gone() {
        let period = Duration::from_millis(20);
        let (mut connection, mut client) = pair_with(&[STDIN], period, period * 3).await;
        let mut stdin = connection.reader(STDIN).unwrap();
        // Answering (tungstenite does as it reads) for many timeouts' worth.
        let mut pings = 0;
        while pings < 20 {
            if let Some(Message::Ping(_)) = next(&mut client).await {
                pings += 1;
            }
        }
        send(&mut client, Message::Binary(b"\x00still here".to_vec())).await;
        let mut buf = [0; 10];
        let n = tokio::time::timeout(WAIT, stdin.read(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n.unwrap()], b"still here");
        // Then silent (not even reading, so no pongs): gone, as an error.
        let read = read_all(&mut stdin).await;
        assert_eq!(read.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
        drop(client);
    }

    #[tokio::test]
    async fn close_signal_ends_one_channel_and_a_normal_close_the_rest() {
        let (mut connection, mut client) = pair(&[STDIN, RESIZE], HEARTBEAT).await;
        let mut stdin = connection.reader(STDIN).unwrap();
        let mut stdout = connection.writer(STDOUT);
        send(&mut client, Message::Binary(b"\x00abc".to_vec())).await;
        // Data for a channel that is not inbound, an empty message and an
        // unknown channel are dropped.
        send(&mut client, Message::Binary(b"\x01ignored".to_vec())).await;
        send(&mut client, Message::Binary(Vec::new())).await;
        send(&mut client, Message::Binary(b"\x09ignored".to_vec())).await;
        send(&mut client, Message::Binary(vec![CLOSE_SIGNAL, STDIN])).await;
        assert_eq!(read_all(&mut stdin).await.unwrap(), b"abc");
        // The connection goes on after stdin's end.
        tokio::io::AsyncWriteExt::write_all(&mut stdout, b"out")
            .await
            .unwrap();
        assert_eq!(
            next(&mut client).await,
            Some(Message::Binary(b"\x01out".to_vec()))
        );
        // The server's shutdown of a channel sends nothing (client-go would
        // log an unknown stream 255).
        tokio::io::AsyncWriteExt::shutdown(&mut stdout)
            .await
            .unwrap();
        // The close ends when the client answers it (tungstenite does, as
        // it reads on to the end).
        let client_side = async {
            let close = next(&mut client).await;
            (close, next(&mut client).await)
        };
        let (_, (close, end)) = tokio::join!(connection.close(WAIT), client_side);
        match close {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Normal),
            other => panic!("expected a normal close, got {other:?}"),
        }
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn only_a_normal_close_is_a_clean_end() {
        for (close, clean) in [
            (Some(CloseCode::Normal), true),
            (None, false),
            (Some(CloseCode::Away), false),
        ] {
            let (mut connection, mut client) = pair(&[STDIN], HEARTBEAT).await;
            let mut stdin = connection.reader(STDIN).unwrap();
            send(&mut client, Message::Binary(b"\x00data".to_vec())).await;
            let frame = close.map(|code| CloseFrame {
                code,
                reason: "".into(),
            });
            send(&mut client, Message::Close(frame)).await;
            let read = read_all(&mut stdin).await;
            match clean {
                true => assert_eq!(read.unwrap(), b"data"),
                false => assert!(read.is_err(), "{close:?} read as {read:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_connection_that_just_ends_is_an_error() {
        let (mut connection, client) = pair(&[STDIN], HEARTBEAT).await;
        let mut stdin = connection.reader(STDIN).unwrap();
        drop(client);
        let read = read_all(&mut stdin).await;
        assert!(read.is_err(), "{read:?}");
        // A writer sees the connection gone too.
        let mut stdout = connection.writer(STDOUT);
        let written = async {
            loop {
                tokio::io::AsyncWriteExt::write_all(&mut stdout, b"x").await?;
            }
        };
        let written: io::Result<()> = tokio::time::timeout(WAIT, written).await.unwrap();
        assert!(written.is_err());
    }

    #[tokio::test]
    async fn resize_keeps_the_latest_and_never_blocks_stdin() {
        let (mut connection, mut client) = pair(&[STDIN, RESIZE], HEARTBEAT).await;
        let mut resize = connection.resize().unwrap();
        let mut stdin = connection.reader(STDIN).unwrap();
        for width in 0..20 {
            let message = format!("\x04{{\"Width\":{width},\"Height\":24}}");
            send(&mut client, Message::Binary(message.into_bytes())).await;
        }
        send(&mut client, Message::Binary(b"\x00after".to_vec())).await;
        send(&mut client, Message::Binary(vec![CLOSE_SIGNAL, STDIN])).await;
        assert_eq!(read_all(&mut stdin).await.unwrap(), b"after");
        let latest = tokio::time::timeout(WAIT, resize.next()).await.unwrap();
        assert_eq!(latest.as_deref(), Some(&br#"{"Width":19,"Height":24}"#[..]));
        send(&mut client, Message::Binary(vec![CLOSE_SIGNAL, RESIZE])).await;
        assert_eq!(
            tokio::time::timeout(WAIT, resize.next()).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn malformed_close_signal_fails_the_connection() {
        let (mut connection, mut client) = pair(&[STDIN], HEARTBEAT).await;
        let mut stdin = connection.reader(STDIN).unwrap();
        send(&mut client, Message::Binary(vec![CLOSE_SIGNAL, STDIN, 0])).await;
        let read = read_all(&mut stdin).await;
        assert_eq!(read.map_err(|e| e.kind()), Err(io::ErrorKind::InvalidData));
    }

    /// What a peer may send: binary messages of any bytes (some shaped
    /// like channel data and close signals), text, pings, closes.
    fn peer_message() -> impl proptest::strategy::Strategy<Value = Message> {
        use proptest::prelude::*;
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Message::Binary),
            4 => (0u8..6, proptest::collection::vec(any::<u8>(), 0..100))
                .prop_map(|(c, d)| Message::Binary([&[c][..], &d].concat())),
            2 => (0u8..8).prop_map(|c| Message::Binary(vec![CLOSE_SIGNAL, c])),
            1 => ".{0,20}".prop_map(Message::Text),
            1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Message::Ping),
            1 => proptest::option::of(prop_oneof![
                Just(CloseCode::Normal),
                Just(CloseCode::Away),
                Just(CloseCode::Protocol)
            ])
            .prop_map(|code| Message::Close(code.map(|code| CloseFrame { code, reason: "".into() }))),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a peer sends, the server's driver does not panic and
        /// ends: stdin reads what came on channel 0 (in order), then a
        /// clean end or an error, never more; resize sizes are only what
        /// came on channel 4.
        #[test]
        fn any_peer_input(messages in proptest::collection::vec(peer_message(), 0..40)) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let (mut connection, mut client) = pair(&[STDIN, RESIZE], HEARTBEAT).await;
                let mut stdin = connection.reader(STDIN).unwrap();
                let mut expected = Vec::new();
                let mut stdin_open = true;
                for message in &messages {
                    if let Message::Close(_) = message {
                        // The client sends nothing after its close.
                        break;
                    }
                    if let Message::Binary(data) = message {
                        match data.as_slice() {
                            [STDIN, rest @ ..] if stdin_open => expected.extend_from_slice(rest),
                            [CLOSE_SIGNAL, STDIN] => stdin_open = false,
                            _ => {}
                        }
                    }
                }
                let writer = async {
                    for message in messages {
                        let stop = matches!(message, Message::Close(_));
                        if send_quietly(&mut client, message).await.is_err() || stop {
                            break;
                        }
                    }
                    drop(client);
                };
                let reader = async {
                    let mut got = Vec::new();
                    let mut buf = [0; 4096];
                    loop {
                        match stdin.read(&mut buf).await {
                            Ok(0) => return (got, true),
                            Err(_) => return (got, false),
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                };
                let ((), (got, clean)) =
                    tokio::time::timeout(WAIT, async { tokio::join!(writer, reader) })
                        .await
                        .expect("the driver did not end");
                // A clean end comes after everything sent on stdin; an
                // error (malformed input, the connection gone) may come
                // earlier, but never with other bytes.
                if clean {
                    assert_eq!(got, expected);
                } else {
                    assert!(expected.starts_with(&got), "{got:?} vs {expected:?}");
                }
            });
        }
    }

    /// `send` that reports a failure instead of panicking (the driver may
    /// have ended the connection).
    async fn send_quietly(
        ws: &mut WebSocketStream<DuplexStream>,
        message: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        std::future::poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx)).await?;
        Pin::new(&mut *ws).start_send(message)?;
        std::future::poll_fn(|cx| Pin::new(&mut *ws).poll_flush(cx)).await
    }

    #[tokio::test]
    async fn client_writes_one_message_per_write_and_signals_its_end() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let client = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let mut server = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        let connection = Connection::spawn(client, Side::Client, &[ERROR]);
        let mut stdin = connection.writer(STDIN);
        let big = vec![7u8; MAX_WRITE + 10];
        tokio::io::AsyncWriteExt::write_all(&mut stdin, &big)
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut stdin)
            .await
            .unwrap();
        let mut first = vec![STDIN];
        first.extend_from_slice(&big[..MAX_WRITE]);
        assert_eq!(next(&mut server).await, Some(Message::Binary(first)));
        let rest = [&[STDIN][..], &big[MAX_WRITE..]].concat();
        assert_eq!(next(&mut server).await, Some(Message::Binary(rest)));
        assert_eq!(
            next(&mut server).await,
            Some(Message::Binary(vec![CLOSE_SIGNAL, STDIN]))
        );
        drop(connection);
    }
}
