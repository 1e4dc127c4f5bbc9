//! `tokio::io` adapters for raw streams: a stream as a byte pipe.
//!
//! Protocols such as Kubernetes' `exec` and `port-forward` use SPDY streams
//! as plain bidirectional byte pipes. These adapters let such a stream meet
//! the rest of the tokio ecosystem: `tokio::io::copy`,
//! `tokio::io::copy_bidirectional`, codecs, `AsyncReadExt` and so on.
//!
//! - [`StreamReader`] wraps a [`RecvStream`] as an [`AsyncRead`]: the peer's
//!   data in order, end of file when the peer finished its side (FIN), and
//!   an error when the stream was cut short (reset, or the connection lost),
//!   never a silent end of file.
//! - [`StreamWriter`] wraps a [`SendStream`] as an [`AsyncWrite`]: a write
//!   waits for room in the stream's bounded send buffer (so a peer that
//!   does not read slows the writer), and `shutdown` ends our side (FIN),
//!   which is a half-close: the peer's data stays readable.
//! - [`StreamIo`] is both halves in one value (`AsyncRead + AsyncWrite`),
//!   and splits back into them.
//!
//! Errors are `std::io::Error`s whose kind follows the cause (a reset is
//! `ConnectionReset`, a lost connection `ConnectionAborted`, ...) and whose
//! inner error is the precise [`crate::Error`]; [`stream_error`] gets it
//! back.
//!
//! ```no_run
//! # async fn demo(handle: spdy::Handle) -> Result<(), Box<dyn std::error::Error>> {
//! use spdy::io::StreamIo;
//! use spdy::proto::header_block::HeaderBlock;
//!
//! // Forward one local TCP connection over a stream, both ways, with
//! // half-closes passed along.
//! let mut tcp = tokio::net::TcpStream::connect("127.0.0.1:8080").await?;
//! let headers: HeaderBlock = [("streamtype", "data"), ("port", "80")].into_iter().collect();
//! let (send, recv) = handle.open_stream(headers, Default::default())?;
//! let mut stream = StreamIo::new(send, recv);
//! tokio::io::copy_bidirectional(&mut tcp, &mut stream).await?;
//! # Ok(()) }
//! ```

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use spdy_proto::frame::StreamId;
use spdy_proto::session::StreamError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::Error;
use crate::stream::{RecvStream, SendStream};

/// The receiving half of a stream as an [`AsyncRead`].
///
/// Bytes handed out are returned to the peer's flow-control window as they
/// are read, so a slow reader slows the sender, as with
/// [`RecvStream::poll_data`].
#[derive(Debug)]
pub struct StreamReader {
    recv: RecvStream,
    /// The unread rest of the last chunk.
    leftover: Bytes,
}

impl StreamReader {
    /// Wraps a receiving half.
    pub fn new(recv: RecvStream) -> StreamReader {
        StreamReader {
            recv,
            leftover: Bytes::new(),
        }
    }

    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.recv.id()
    }

    /// The receiving half, for [`RecvStream::reply`] or
    /// [`RecvStream::take_headers`].
    pub fn get_mut(&mut self) -> &mut RecvStream {
        &mut self.recv
    }

    /// The receiving half and the bytes already taken from it but not yet
    /// read.
    pub fn into_inner(self) -> (RecvStream, Bytes) {
        (self.recv, self.leftover)
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        // Empty DATA frames (allowed without FIN) are skipped, so that an
        // empty read only ever means the end of the stream.
        while this.leftover.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(chunk)) => this.leftover = chunk,
                Some(Err(e)) => return Poll::Ready(Err(e.into())),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.leftover.len().min(buf.remaining());
        buf.put_slice(&this.leftover.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// The sending half of a stream as an [`AsyncWrite`].
///
/// `poll_write` waits for room in the stream's send buffer and queues a
/// copy of as much as fits; `poll_flush` returns at once (the connection
/// task writes queued data as flow control allows; there is no "written to
/// the socket" point to wait for); `poll_shutdown` ends our side (FIN) and
/// may be called again.
#[derive(Debug)]
pub struct StreamWriter {
    send: SendStream,
    finished: bool,
}

impl StreamWriter {
    /// Wraps a sending half.
    pub fn new(send: SendStream) -> StreamWriter {
        StreamWriter {
            send,
            finished: false,
        }
    }

    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.send.id()
    }

    /// The sending half, for [`SendStream::reset`] or
    /// [`SendStream::send_headers`].
    pub fn get_mut(&mut self) -> &mut SendStream {
        &mut self.send
    }

    /// The sending half.
    pub fn into_inner(self) -> SendStream {
        self.send
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        let room = ready!(this.send.poll_capacity(cx))?;
        let n = room.min(buf.len());
        this.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.finished {
            self.send.finish()?;
            self.finished = true;
        }
        Poll::Ready(Ok(()))
    }
}

/// Both halves of a stream as one [`AsyncRead`] + [`AsyncWrite`] value.
#[derive(Debug)]
pub struct StreamIo {
    reader: StreamReader,
    writer: StreamWriter,
}

impl StreamIo {
    /// Joins the two halves of a stream (from [`crate::Handle::open_stream`]
    /// or [`crate::IncomingStream::reply`]).
    pub fn new(send: SendStream, recv: RecvStream) -> StreamIo {
        StreamIo {
            reader: StreamReader::new(recv),
            writer: StreamWriter::new(send),
        }
    }

    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.reader.id()
    }

    /// The receiving half.
    pub fn reader(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    /// The sending half.
    pub fn writer(&mut self) -> &mut StreamWriter {
        &mut self.writer
    }

    /// Splits into the two halves, to read and write from different tasks.
    pub fn split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

impl AsyncRead for StreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for StreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// The SPDY error inside an `io::Error` that an adapter of this module (or
/// `From<spdy::Error> for io::Error`) made.
pub fn stream_error(e: &io::Error) -> Option<&Error> {
    e.get_ref()?.downcast_ref::<Error>()
}

/// An `io::Error` of the kind that matches the cause, carrying the SPDY
/// error itself (see [`stream_error`]).
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io(inner) => inner.kind(),
            Error::Stream(StreamError::Reset { .. }) => io::ErrorKind::ConnectionReset,
            Error::Stream(StreamError::Refused) => io::ErrorKind::ConnectionRefused,
            Error::Stream(StreamError::SessionClosed) | Error::ConnectionClosed => {
                io::ErrorKind::ConnectionAborted
            }
            Error::Session(_) | Error::Headers(_) | Error::ContentLength { .. } => {
                io::ErrorKind::InvalidData
            }
            Error::User(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
