//! An axum `Router` under a tower-http layer, served over SPDY/2, 3 and 3.1
//! on plain TCP (127.0.0.1:4042) as it is: hyper-util's
//! `TowerToHyperService` turns the tower service into the hyper service
//! `spdy::server` takes. `/` pushes its stylesheet through the
//! `spdy::server::Pusher` found in the request's extensions.
//!
//! ```sh
//! cargo run -p spdy --example axum
//! # in another terminal:
//! cargo run -p spdy --example client -- http://127.0.0.1:4042/users/7 3.1
//! ```

use axum::extract::Path;
use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use axum::http::{Response, Uri};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::service::TowerToHyperService;
use spdy::server::Pusher;
use tower_http::set_header::SetResponseHeaderLayer;

const STYLE: &str = "h1 { color: tomato }\n";

/// The page; over SPDY its stylesheet is pushed with it. (The pushed
/// response is sent as it is built here: layers around the router do not
/// see it.)
async fn page(pusher: Option<Extension<Pusher>>, uri: Uri) -> &'static str {
    if let (Some(Extension(pusher)), Some(scheme), Some(authority)) =
        (pusher, uri.scheme_str(), uri.authority())
    {
        let style = Response::builder()
            .header(CONTENT_TYPE, "text/css")
            .body(Full::new(Bytes::from_static(STYLE.as_bytes())))
            .expect("a valid response");
        match format!("{scheme}://{authority}/style.css").parse() {
            Ok(target) => {
                if let Err(e) = pusher.push(target, style) {
                    eprintln!("push failed: {e}");
                }
            }
            Err(e) => eprintln!("no push: {e}"),
        }
    }
    "<link rel=stylesheet href=/style.css><h1>axum over SPDY</h1>\n"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(page))
        .route("/style.css", get(|| async { STYLE }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}\n") }),
        )
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("server"),
            HeaderValue::from_static("spdy-rs + axum"),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:4042").await?;
    println!("listening on http://{}", listener.local_addr()?);
    spdy::server::Builder::new()
        .serve(listener, TowerToHyperService::new(app))
        .await
}
