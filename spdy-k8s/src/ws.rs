//! A WebSocket as a byte stream: [`WsIo`] reads the payloads of the binary
//! messages it receives one after another and sends each write as one
//! binary message, so a SPDY session (or anything else over
//! `AsyncRead + AsyncWrite`) runs on it. That is how kubectl's default
//! port-forward path carries SPDY/3.1 (`Sec-WebSocket-Protocol:
//! SPDY/3.1+portforward.k8s.io`); see
//! [`port_forward_websocket`](crate::port_forward_websocket).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

pub use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A WebSocket seen as a byte stream (binary messages both ways).
///
/// Reading: the payloads of binary messages in order; a close message or
/// the end of the connection is the end of the stream; a text message is an
/// error (`InvalidData`); pings are answered by the WebSocket layer.
/// Writing: each write is one binary message; shutdown sends a close
/// message.
#[derive(Debug)]
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// The rest of the message being read.
    message: Vec<u8>,
    offset: usize,
    eof: bool,
}

impl<S> WsIo<S> {
    /// Wraps a WebSocket whose handshake is done.
    pub fn new(ws: WebSocketStream<S>) -> WsIo<S> {
        WsIo {
            ws,
            message: Vec::new(),
            offset: 0,
            eof: false,
        }
    }

    /// The WebSocket.
    pub fn get_mut(&mut self) -> &mut WebSocketStream<S> {
        &mut self.ws
    }
}

fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, e)
        }
        e => io::Error::other(e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsIo<S> {
    /// Queues `message()` as one binary message once the WebSocket can take
    /// it. It goes out on `poll_flush` (the SPDY connection driver flushes
    /// whenever its write queue drains).
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        message: impl FnOnce() -> Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(to_io)?;
        let message = message();
        let n = message.len();
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(message))
            .map_err(to_io)?;
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.offset < this.message.len() {
                let n = buf.remaining().min(this.message.len() - this.offset);
                buf.put_slice(&this.message[this.offset..this.offset + n]);
                this.offset += n;
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => {
                    this.message = data;
                    this.offset = 0;
                }
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text message where binary ones are expected",
                    )))
                }
                Some(Ok(Message::Close(_))) | None => this.eof = true,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.get_mut().poll_send(cx, || buf.to_vec())
    }

    /// All the slices as one message (the SPDY driver writes frame heads
    /// and payloads as separate slices).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        self.get_mut().poll_send(cx, || {
            let mut message = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
            for buf in bufs {
                message.extend_from_slice(buf);
            }
            message
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(to_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().ws).poll_close(cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }
}
