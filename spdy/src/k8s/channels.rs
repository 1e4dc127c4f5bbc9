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
//! channel queues at most [`CHANNEL_QUEUE`] messages of at most
//! [`MAX_MESSAGE`] bytes towards the application, and when a queue is full
//! the driver stops reading the socket (TCP back-pressure) until the
//! application reads; writers queue at most [`OUTGOING_QUEUE`] messages.

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
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
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
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let mut senders: [Option<PollSender<Item>>; CHANNELS] = Default::default();
        let mut receivers: [Option<mpsc::Receiver<Item>>; CHANNELS] = Default::default();
        for &channel in inbound {
            let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
            senders[channel as usize] = Some(PollSender::new(tx));
            receivers[channel as usize] = Some(rx);
        }
        let shared = Arc::new(Shared::default());
        let driver = Driver {
            ws,
            outgoing: outgoing_rx,
            outgoing_open: true,
            flush: false,
            senders,
            pending: None,
            shared: shared.clone(),
        };
        Connection {
            outgoing,
            receivers,
            shared,
            side,
            task: tokio::spawn(driver),
        }
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
    outgoing: mpsc::Receiver<Message>,
    /// Whether writers' messages are still taken (not after our close).
    outgoing_open: bool,
    /// Messages were sent since the last flush.
    flush: bool,
    senders: [Option<PollSender<Item>>; CHANNELS],
    /// A received item whose channel's queue was full.
    pending: Option<(usize, Item)>,
    shared: Arc<Shared>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// Sends what the writers queued; `Err` when the socket failed.
    fn poll_outgoing(&mut self, cx: &mut Context<'_>) -> Result<(), Ending> {
        while self.outgoing_open {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(failed(e)),
                Poll::Pending => break,
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
                let normal = frame.as_ref().is_none_or(|f| f.code == CloseCode::Normal);
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
                Some(&channel) if data.len() == 2 && (channel as usize) < CHANNELS => {
                    self.pending = Some((channel as usize, Item::End));
                    Ok(())
                }
                _ => Err(Ending::Failed(
                    io::ErrorKind::InvalidData,
                    format!("a malformed close signal: {data:?}"),
                )),
            },
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
            ready!(self.poll_deliver(cx));
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(message)) => {
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
