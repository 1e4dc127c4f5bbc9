//! One stream of an exec (stdin, stdout, stderr, error, resize), whatever
//! carries it: a SPDY stream, or a channel of a `v5.channel.k8s.io`
//! WebSocket. Applications read and write them as tokio byte streams and
//! need not know which transport the client chose.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::channels;
use spdy::io::{StreamReader, StreamWriter};

/// The reading end of an exec stream ([`AsyncRead`]): stdin on the
/// server, stdout / stderr / error on the client. A stream cut short (the
/// connection failed, the peer reset it) reads as an error, not as a clean
/// end.
#[derive(Debug)]
pub struct ChannelReader(Reader);

#[derive(Debug)]
enum Reader {
    Spdy(StreamReader),
    WebSocket(channels::Reader),
}

/// The writing end of an exec stream ([`AsyncWrite`]): stdout / stderr /
/// error on the server, stdin / resize on the client. `shutdown` ends it
/// at once over SPDY and from the client over a WebSocket; the server's
/// WebSocket channels end together when the session finishes (client-go
/// has no end for a single one of them).
#[derive(Debug)]
pub struct ChannelWriter(Writer);

#[derive(Debug)]
enum Writer {
    Spdy(StreamWriter),
    WebSocket(channels::Writer),
}

impl ChannelReader {
    /// The SPDY stream underneath, if the exec runs over SPDY.
    pub fn as_spdy_mut(&mut self) -> Option<&mut StreamReader> {
        match &mut self.0 {
            Reader::Spdy(reader) => Some(reader),
            Reader::WebSocket(_) => None,
        }
    }
}

impl ChannelWriter {
    /// The SPDY stream underneath, if the exec runs over SPDY.
    pub fn as_spdy_mut(&mut self) -> Option<&mut StreamWriter> {
        match &mut self.0 {
            Writer::Spdy(writer) => Some(writer),
            Writer::WebSocket(_) => None,
        }
    }
}

impl From<StreamReader> for ChannelReader {
    fn from(reader: StreamReader) -> ChannelReader {
        ChannelReader(Reader::Spdy(reader))
    }
}

impl From<channels::Reader> for ChannelReader {
    fn from(reader: channels::Reader) -> ChannelReader {
        ChannelReader(Reader::WebSocket(reader))
    }
}

impl From<StreamWriter> for ChannelWriter {
    fn from(writer: StreamWriter) -> ChannelWriter {
        ChannelWriter(Writer::Spdy(writer))
    }
}

impl From<channels::Writer> for ChannelWriter {
    fn from(writer: channels::Writer) -> ChannelWriter {
        ChannelWriter(Writer::WebSocket(writer))
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Reader::Spdy(r) => Pin::new(r).poll_read(cx, buf),
            Reader::WebSocket(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Writer::Spdy(w) => Pin::new(w).poll_write(cx, buf),
            Writer::WebSocket(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Writer::Spdy(w) => Pin::new(w).poll_flush(cx),
            Writer::WebSocket(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Writer::Spdy(w) => Pin::new(w).poll_shutdown(cx),
            Writer::WebSocket(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}
