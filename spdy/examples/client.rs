//! GET a URL over SPDY on plain TCP and print the response.
//!
//! ```sh
//! cargo run -p spdy --example server &    # or any SPDY server
//! cargo run -p spdy --example client -- http://127.0.0.1:4040/hello [2|3|3.1]
//! ```

use std::io::Write;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Empty;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url: Uri = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:4040/".to_owned())
        .parse()?;
    let version: spdy::Version = args.next().as_deref().unwrap_or("3.1").parse()?;
    if url.scheme_str() != Some("http") {
        return Err("only http:// URLs (SPDY on plain TCP)".into());
    }
    let host = url.host().ok_or("the URL has no host")?;
    let addr = (host, url.port_u16().unwrap_or(80));

    let builder = spdy::client::Builder::new().version(version);
    let client = spdy::client::Client::connect(addr, builder).await?;
    let request = Request::get(url.clone()).body(Empty::<Bytes>::new())?;
    let mut response = client.send_request(request).await?;

    eprintln!("SPDY/{version} {}", response.status());
    for (name, value) in response.headers() {
        eprintln!("{name}: {}", value.to_str().unwrap_or("<binary>"));
    }
    eprintln!();
    // The body streams as it arrives; reading it opens the flow-control
    // window for more.
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response.body_mut().data().await {
        stdout.write_all(&chunk?)?;
    }
    stdout.flush()?;
    Ok(())
}
