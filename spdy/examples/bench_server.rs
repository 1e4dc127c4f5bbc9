//! Benchmark server: `GET /bytes/N` answers N bytes (from memory, shared
//! without copying), over plain-TCP SPDY of any version.
//!
//! `cargo run --release -p spdy --example bench_server -- 127.0.0.1:0`
//! prints `listening on ADDR`.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use hyper::service::service_fn;
use spdy::RecvBody;
use tokio::net::TcpListener;

/// What one body write hands the session.
const PIECE: usize = 256 * 1024;

/// A body of `left` bytes served as slices of one shared buffer.
#[derive(Default)]
struct Repeat {
    block: Bytes,
    left: usize,
}

impl http_body::Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(self.block.len());
        self.left -= n;
        std::task::Poll::Ready(Some(Ok(Frame::data(self.block.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4041".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let block = Bytes::from(vec![0x5a; PIECE]);
    let config = spdy::Config::default()
        .with_max_concurrent_streams(1000)
        .with_initial_window(4 << 20)
        .with_session_window(32 << 20)
        .with_max_send_buffer(1 << 20)
        .with_max_data_frame(
            std::env::var("SPDY_FRAME")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(16 * 1024),
        );
    spdy::server::Builder::new()
        .config(config)
        .serve(
            listener,
            service_fn(move |req: Request<RecvBody>| {
                let block = block.clone();
                async move {
                    let n = req
                        .uri()
                        .path()
                        .strip_prefix("/bytes/")
                        .and_then(|n| n.parse::<usize>().ok());
                    Ok::<_, Infallible>(match n {
                        Some(left) => Response::builder()
                            .header("content-length", left)
                            .body(Repeat { block, left })
                            .unwrap_or_default(),
                        None => Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Repeat { block, left: 0 })
                            .unwrap_or_default(),
                    })
                }
            }),
        )
        .await
}
