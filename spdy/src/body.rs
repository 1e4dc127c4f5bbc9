//! HTTP bodies over SPDY streams: [`RecvBody`] reads one, `send_body` writes
//! any `http_body::Body` with backpressure.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use spdy_proto::frame::RstStatus;

use crate::error::Error;
use crate::headers;
use crate::stream::{RecvStream, SendStream};

/// The body of a request or response received over SPDY: DATA as it
/// arrives, then trailers (a HEADERS frame) if the peer sent any.
///
/// It ends with an error, never a clean end, if the stream is reset or the
/// connection is lost before the peer's FIN. Reading it is what returns
/// capacity to the peer's window, so a slow reader slows the sender.
pub struct RecvBody {
    recv: Option<RecvStream>,
    /// A body from elsewhere (an HTTP/1.1 request served by the same
    /// service, for instance), used instead of `recv`.
    other: Option<Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send + Sync>>>,
    expected: Option<u64>,
    received: u64,
    trailers: Option<HeaderMap>,
    /// How long the peer may send nothing while the body is being read,
    /// and the timer of the current wait (made when a wait begins).
    recv_timeout: Option<Duration>,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl std::fmt::Debug for RecvBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBody")
            .field("recv", &self.recv)
            .field("other", &self.other.is_some())
            .field("received", &self.received)
            .finish()
    }
}

impl RecvBody {
    /// `expected` is a Content-Length to enforce (servers), or `None`.
    pub(crate) fn new(recv: RecvStream, expected: Option<u64>) -> RecvBody {
        RecvBody {
            recv: Some(recv),
            other: None,
            expected,
            received: 0,
            trailers: None,
            recv_timeout: None,
            waiting: None,
        }
    }

    /// A request body whose reader gives up on a peer that sends nothing
    /// for `timeout` while it waits (nginx's `client_body_timeout`): the
    /// stream is reset with CANCEL and the body ends with
    /// [`Error::RecvTimeout`].
    pub(crate) fn with_recv_timeout(mut self, timeout: Option<Duration>) -> RecvBody {
        self.recv_timeout = timeout;
        self
    }

    /// Wraps any other body, so one service can serve SPDY and, say,
    /// HTTP/1.1 requests alike.
    pub fn wrap<B>(body: B) -> RecvBody
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        struct MapErr<B>(B);
        impl<B> Body for MapErr<B>
        where
            B: Body<Data = Bytes> + Unpin,
            B::Error: Into<BoxError>,
        {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                Pin::new(&mut self.0)
                    .poll_frame(cx)
                    .map(|f| f.map(|r| r.map_err(Into::into)))
            }
            fn is_end_stream(&self) -> bool {
                self.0.is_end_stream()
            }
            fn size_hint(&self) -> SizeHint {
                self.0.size_hint()
            }
        }
        RecvBody {
            recv: None,
            other: Some(Box::pin(MapErr(Box::pin(body)))),
            expected: None,
            received: 0,
            trailers: None,
            recv_timeout: None,
            waiting: None,
        }
    }

    /// A body that is already over (a message sent with FIN on its headers
    /// still has a stream; this is for pushes refused and the like).
    pub fn empty() -> RecvBody {
        RecvBody {
            recv: None,
            other: None,
            expected: None,
            received: 0,
            trailers: None,
            recv_timeout: None,
            waiting: None,
        }
    }

    /// The next piece of data; `None` at the end.
    pub async fn data(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await?;
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data)),
                    Err(trailers) => {
                        self.trailers = trailers.into_trailers().ok();
                    }
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The trailers, once the data has been read to the end.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub async fn collect_to_vec(&mut self, limit: usize) -> Result<Vec<u8>, Error> {
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
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if let Some(other) = this.other.as_mut() {
            return match other.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Err(e))) => {
                    this.other = None;
                    Poll::Ready(Some(Err(Error::Body(Arc::from(e)))))
                }
                Poll::Ready(None) => {
                    this.other = None;
                    Poll::Ready(None)
                }
                other => other.map(|f| f.map(|r| r.map_err(|e| Error::Body(Arc::from(e))))),
            };
        }
        let Some(recv) = this.recv.as_mut() else {
            return Poll::Ready(None);
        };
        match recv.poll_data(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                // Progress: the next wait starts its own clock.
                this.waiting = None;
                this.received += chunk.len() as u64;
                if let Some(expected) = this.expected {
                    if this.received > expected {
                        let received = this.received;
                        this.recv = None;
                        return Poll::Ready(Some(Err(Error::ContentLength { expected, received })));
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => {
                this.recv = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                let blocks = recv.take_headers();
                this.recv = None;
                if let Some(expected) = this.expected {
                    if this.received != expected {
                        return Poll::Ready(Some(Err(Error::ContentLength {
                            expected,
                            received: this.received,
                        })));
                    }
                }
                let mut map = HeaderMap::new();
                for block in &blocks {
                    match headers::trailers(block) {
                        Ok(part) => map.extend(part),
                        Err(e) => return Poll::Ready(Some(Err(e.into()))),
                    }
                }
                if map.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::trailers(map))))
                }
            }
            Poll::Pending => {
                let Some(limit) = this.recv_timeout else {
                    return Poll::Pending;
                };
                let timer = this
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                tracing::debug!(id = %recv.id(), ?limit, "receive timeout: the peer sent nothing; RST_STREAM CANCEL");
                recv.reset(RstStatus::Cancel);
                this.recv = None;
                this.waiting = None;
                Poll::Ready(Some(Err(Error::RecvTimeout(limit))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.other {
            Some(other) => other.is_end_stream(),
            None => self.recv.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.expected {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.received)),
            None => SizeHint::default(),
        }
    }
}

/// Sends `body` on `send`: data with backpressure, then trailers or a FIN.
/// A failing body resets the stream with INTERNAL_ERROR.
pub(crate) async fn send_body<B>(body: B, send: SendStream) -> Result<(), Error>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    send_body_within(body, send, None).await
}

/// [`send_body`], and when the peer takes no data for `timeout` (its window
/// stays shut: a reader that stopped) the stream is reset with CANCEL, so
/// that it holds neither its buffers nor a stream slot any longer.
pub(crate) async fn send_body_within<B>(
    body: B,
    mut send: SendStream,
    timeout: Option<std::time::Duration>,
) -> Result<(), Error>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A body frame, owned, so nothing of the body's types is held across
    /// an `.await` (they need not be `Send`).
    enum Next {
        End,
        Failed(Box<dyn std::error::Error + Send + Sync>),
        Data(Bytes),
        Trailers(HeaderMap),
        Skip,
    }
    let mut body = std::pin::pin!(body);
    loop {
        // Room first, then the next piece: a body is not read ahead of a
        // peer that takes nothing, so a stalled reader costs no piece in
        // hand (a body that ends or has trailers only waits like data).
        if !body.is_end_stream() {
            wait_for_room(&mut send, timeout).await?;
        }
        let next = match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            None => Next::End,
            Some(Err(e)) => Next::Failed(e.into()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => Next::Data(data.copy_to_bytes(data.remaining())),
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => Next::Trailers(trailers),
                    Err(_) => Next::Skip,
                },
            },
        };
        match next {
            Next::End => return send.finish(),
            Next::Failed(e) => {
                let _ = send.reset(RstStatus::InternalError);
                return Err(Error::Body(Arc::from(e)));
            }
            Next::Data(bytes) => write_within(&mut send, bytes, timeout).await?,
            Next::Trailers(trailers) => {
                return send.send_headers(headers::trailer_block(&trailers), true)
            }
            Next::Skip => {}
        }
    }
}

/// Waits until the stream has room, at most `limit`; a stream that stays
/// full that long is reset with CANCEL.
async fn wait_for_room(
    send: &mut SendStream,
    limit: Option<std::time::Duration>,
) -> Result<usize, Error> {
    let room = std::future::poll_fn(|cx| send.poll_capacity(cx));
    match limit {
        None => room.await,
        Some(limit) => match tokio::time::timeout(limit, room).await {
            Ok(room) => room,
            Err(_) => {
                tracing::debug!(id = %send.id(), ?limit, "send timeout: the peer took nothing; RST_STREAM CANCEL");
                let _ = send.reset(RstStatus::Cancel);
                Err(Error::SendTimeout(limit))
            }
        },
    }
}

/// Writes `data`, each wait for room bounded by `limit` (if any).
async fn write_within(
    send: &mut SendStream,
    mut data: Bytes,
    limit: Option<std::time::Duration>,
) -> Result<(), Error> {
    while !data.is_empty() {
        let room = wait_for_room(send, limit).await?;
        let chunk = data.split_to(room.min(data.len()));
        send.send_data(chunk, false)?;
    }
    Ok(())
}
