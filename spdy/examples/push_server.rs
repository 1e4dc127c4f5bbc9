//! Server push: the page's stylesheet is pushed along with the page. The
//! program serves on 127.0.0.1:4041, and first fetches the page itself to
//! show the push arriving.
//!
//! ```sh
//! cargo run -p spdy --example push_server
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use spdy::server::Pusher;
use spdy::RecvBody;

const PAGE: &str = "<link rel=stylesheet href=/style.css><h1>pushed</h1>\n";
const STYLE: &str = "h1 { color: tomato }\n";

async fn service(req: Request<RecvBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/" {
        // Push before answering: a push must start while its request's
        // stream is open.
        if let Some(pusher) = req.extensions().get::<Pusher>() {
            let style = Response::builder()
                .header("content-type", "text/css")
                .body(Full::new(Bytes::from_static(STYLE.as_bytes())))
                .expect("a valid response");
            let url = format!("http://{}/style.css", req.uri().authority().unwrap());
            if let Err(e) = pusher.push(url.parse().unwrap(), style) {
                eprintln!("push failed: {e}");
            }
        }
    }
    let body = match req.uri().path() {
        "/style.css" => STYLE,
        _ => PAGE,
    };
    Ok(Response::new(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:4041").await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    let server = tokio::spawn(async move {
        spdy::server::Builder::new()
            .serve(listener, service_fn(service))
            .await
    });

    // A client, to see the push: the page and its pushed stylesheet.
    let builder = spdy::client::Builder::new().enable_push(true);
    let client = spdy::client::Client::connect(addr, builder).await?;
    let request = Request::get(format!("http://{addr}/")).body(Empty::<Bytes>::new())?;
    let (page, pushed) = tokio::join!(
        client.send_request(request),
        client.as_send_request().accept_push()
    );
    let page = page?.into_body().collect().await?.to_bytes();
    println!("GET / ->\n{}", String::from_utf8_lossy(&page));
    if let Some(pushed) = pushed {
        let pushed = pushed?;
        let uri = pushed.request.uri.clone();
        let css = pushed.response.into_body().collect().await?.to_bytes();
        println!("pushed {uri} ->\n{}", String::from_utf8_lossy(&css));
    }
    drop(client);

    println!("still serving on http://{addr} (Ctrl-C to stop)");
    server.await??;
    Ok(())
}
