//! Reverse roles: an "origin" behind NAT dials a "proxy" and then SERVES on
//! the connection it dialed, while the proxy, which accepted the TCP
//! connection, is the SPDY client and sends requests through it. Both ends
//! run in this one program.
//!
//! ```sh
//! cargo run -p spdy --example reverse_roles
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use spdy::{RecvBody, Version};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The proxy listens; the origin dials out to it.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = listener.local_addr()?;

    let origin = tokio::spawn(async move {
        let tcp = TcpStream::connect(proxy_addr).await?;
        println!("[origin] dialed the proxy at {proxy_addr}; serving on that connection");
        let service = service_fn(|req: Request<RecvBody>| async move {
            println!("[origin] request: {} {}", req.method(), req.uri());
            let body = format!("hello from the origin, for {}\n", req.uri().path());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        });
        // The version is detected from the proxy's first frame.
        spdy::server::Builder::new()
            .serve_connection(tcp, service)
            .await
            .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
    });

    let (tcp, origin_addr) = listener.accept().await?;
    println!("[proxy] accepted the origin's connection from {origin_addr}; acting as the client");
    let (send, connection) = spdy::client::Builder::new()
        .version(Version::V3_1)
        .handshake(tcp);
    tokio::spawn(connection);

    for path in ["/", "/status"] {
        let request =
            Request::get(format!("http://origin.internal{path}")).body(Empty::<Bytes>::new())?;
        println!("[proxy] sending GET {path} through the origin's connection");
        let response = send.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        print!("[proxy] {status}: {}", String::from_utf8_lossy(&body));
    }

    // Dropping the last sender sends GOAWAY; the origin's serve_connection
    // then returns.
    drop(send);
    origin.await?.map_err(|e| e as Box<dyn std::error::Error>)?;
    println!("[origin] the proxy went away; connection closed");
    Ok(())
}
