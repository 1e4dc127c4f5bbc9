//! A hello server on 127.0.0.1:4040 speaking SPDY/2, 3 and 3.1 over plain
//! TCP (the version is detected from each connection's first frame).
//!
//! ```sh
//! cargo run -p spdy --example server
//! # in another terminal:
//! cargo run -p spdy --example client -- http://127.0.0.1:4040/hello
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use spdy::RecvBody;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:4040").await?;
    println!("listening on http://{}", listener.local_addr()?);
    spdy::server::Builder::new()
        .serve(
            listener,
            service_fn(|req: Request<RecvBody>| async move {
                println!("{} {}", req.method(), req.uri());
                let body = format!("hello over SPDY, you asked for {}\n", req.uri().path());
                let response = Response::builder()
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Full::new(Bytes::from(body)))
                    .expect("a valid response");
                Ok::<_, Infallible>(response)
            }),
        )
        .await
}
