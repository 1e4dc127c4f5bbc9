//! `spdy serve`: serve a folder over SPDY on plain TCP, or over TLS (the
//! SPDY version agreed by ALPN, and HTTP/1.1 on the same port).
//!
//! GET and HEAD, with Content-Type (guessed from the file name),
//! Content-Length, Last-Modified and single byte ranges (`bytes=a-b`,
//! `bytes=a-`, `bytes=-n`). A request for several ranges gets the whole file
//! with 200, which RFC 9110 allows. Files are streamed from disk a chunk at a
//! time, only as fast as the client's flow-control window lets the
//! connection send them. A folder is answered with its `index.html` if it has
//! one, else with a listing. Nothing outside the folder is reachable: `..`
//! segments are refused, and so is any path (a symlink) that resolves
//! outside it.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use spdy::tls::rustls::pki_types::PrivatePkcs8KeyDer;
use spdy::tls::{Acceptor, Protocol};
use spdy::{RecvBody, Version};
use tokio::io::AsyncSeekExt;
use tokio::net::TcpListener;

use crate::listen;
use crate::shutdown;

/// Streams the clients of one address may cancel before their answer (or
/// make us reset) per period, over all their connections: what one session
/// allows. A client that leaves a response under way is not counted.
pub(crate) const RESETS_PER_ADDRESS: spdy_proto::session::RateLimit =
    spdy_proto::session::RateLimit::new(1000, Duration::from_secs(10));

/// Bytes read from a file per piece handed to the connection: small at
/// first, large once the response is well under way. A piece is asked for
/// only once the last is queued, so a client that stops reading early
/// (most do it at once) leaves at most a small piece in hand beside what
/// its window let us queue.
const FIRST_CHUNK: usize = 16 * 1024;
const CHUNK: usize = 128 * 1024;
/// Bytes sent in small pieces before they grow.
const SMALL_PIECES_UNTIL: u64 = 256 * 1024;

fn piece_len(sent: u64) -> usize {
    if sent < SMALL_PIECES_UNTIL {
        FIRST_CHUNK
    } else {
        CHUNK
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The folder to serve.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The address to listen on; port 0 picks a free port (the address
    /// actually bound is printed on standard output).
    #[arg(long, default_value = "127.0.0.1:4040")]
    addr: String,
    /// Speak only this SPDY version (2, 3 or 3.1). By default every version
    /// is accepted, detected from each connection's first frame.
    #[arg(long = "spdy", value_name = "VERSION")]
    spdy: Option<Version>,
    /// Serve over TLS: SPDY/3.1, 3 and 2 agreed by ALPN, and HTTP/1.1 (for
    /// curl and browsers) on the same port. Without --cert and --key, a
    /// self-signed certificate for localhost and the listening address is
    /// made at start and its SHA-256 fingerprint printed.
    #[arg(long)]
    tls: bool,
    /// The certificate chain to present, in PEM (the server's certificate
    /// first); with --tls and --key.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"])]
    cert: Option<PathBuf>,
    /// The private key of --cert, in PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "cert"])]
    key: Option<PathBuf>,
    /// Write the self-signed certificate made at start to FILE (PEM), for
    /// `spdy get --cacert FILE`.
    #[arg(long, value_name = "FILE", requires = "tls", conflicts_with = "cert")]
    save_cert: Option<PathBuf>,
    #[command(flatten)]
    timeouts: crate::timeouts::Timeouts,
    #[command(flatten)]
    caps: listen::CapArgs,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let root = match tokio::fs::canonicalize(&args.dir).await {
        Ok(root) if root.is_dir() => root,
        Ok(_) => {
            eprintln!("spdy serve: {} is not a folder", args.dir.display());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("spdy serve: {}: {e}", args.dir.display());
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(args.addr.as_str()).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("spdy serve: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(e) => {
            eprintln!("spdy serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut builder = args.timeouts.server();
    let versions = match args.spdy {
        Some(version) => {
            builder = builder.version(version);
            format!("SPDY/{version}")
        }
        None => "SPDY/2, 3 and 3.1".to_owned(),
    };
    let acceptor = if args.tls {
        let acceptor = match tls_acceptor(&args, local) {
            Ok(acceptor) => acceptor,
            Err(message) => {
                eprintln!("spdy serve: {message}");
                return ExitCode::FAILURE;
            }
        };
        let protocols = match args.spdy {
            Some(version) => vec![Protocol::Spdy(version), Protocol::Http1],
            None => Protocol::SERVER_DEFAULT.to_vec(),
        };
        let offered: Vec<String> = protocols.iter().map(ToString::to_string).collect();
        eprintln!(
            "spdy serve: serving {} over TLS (ALPN: {})",
            root.display(),
            offered.join(", ")
        );
        Some(
            acceptor
                .protocols(&protocols)
                .spdy(builder.clone())
                .handshake_timeout(args.timeouts.handshake()),
        )
    } else {
        eprintln!(
            "spdy serve: serving {} over plain TCP ({versions})",
            root.display()
        );
        None
    };
    // The one line on standard output: scripts and tests read the address
    // from it.
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{local}");

    let root = Arc::new(root);
    let caps = args.caps.caps("spdy serve", 1);
    let mut listener = listen::Listener::new(listener, caps, "spdy serve");
    // SIGINT / SIGTERM: stop accepting, GOAWAY on every connection, let
    // what is in flight finish (at most 30 s), exit 0.
    let stopped = shutdown::on_signal("spdy serve");
    let mut connections = tokio::task::JoinSet::new();
    let reset_budgets = spdy::server::ResetBudgets::new(RESETS_PER_ADDRESS);
    loop {
        // Connections that ended leave the set.
        while connections.try_join_next().is_some() {}
        let (tcp, peer, guard) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown::stopped(stopped.clone()) => break,
        };
        let _ = tcp.set_nodelay(true);
        // The peer's resets count against its address's budget too, so
        // spreading them over connections gains nothing.
        let builder = builder
            .clone()
            .reset_budget(reset_budgets.for_address(peer.ip()));
        let acceptor = acceptor.as_ref().map(|a| a.clone().spdy(builder.clone()));
        let root = root.clone();
        let stop = shutdown::stopped(stopped.clone());
        connections.spawn(async move {
            // Counted against the caps until this task ends.
            let _guard = guard;
            let service = hyper::service::service_fn(move |req: Request<RecvBody>| {
                let root = root.clone();
                async move { Ok::<_, Infallible>(handle(&root, peer, req).await) }
            });
            let result = match &acceptor {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(accepted) => accepted.serve_until(service, stop).await,
                    Err(e) => Err(e),
                },
                None => builder.serve_connection_until(tcp, service, stop).await,
            };
            if let Err(e) = result {
                eprintln!("{peer} connection ended: {e}");
            }
        });
    }
    eprintln!(
        "spdy serve: GOAWAY to {} connection(s); waiting for them",
        connections.len()
    );
    while connections.join_next().await.is_some() {}
    ExitCode::SUCCESS
}

/// The TLS acceptor: the certificate and key given, or a self-signed
/// certificate made now (its fingerprint printed, and saved if asked).
fn tls_acceptor(args: &Args, local: SocketAddr) -> Result<Acceptor, String> {
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        let chain = spdy::tls::load_certs(cert).map_err(|e| e.to_string())?;
        let key = spdy::tls::load_private_key(key).map_err(|e| e.to_string())?;
        let fingerprint = chain
            .first()
            .map(spdy::tls::fingerprint_sha256)
            .unwrap_or_default();
        let acceptor = Acceptor::new(chain, key)
            .map_err(|e| format!("cannot use {} with its key: {e}", cert.display()))?;
        eprintln!(
            "spdy serve: certificate {}, SHA-256 fingerprint {fingerprint}",
            cert.display()
        );
        return Ok(acceptor);
    }
    // Names a local client can reach it by: localhost, and the address it
    // listens on (the loopback addresses when that is the wildcard).
    let mut names = vec!["localhost".to_owned()];
    if local.ip().is_unspecified() {
        names.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
    } else {
        names.push(local.ip().to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names.clone())
        .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
    let der = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    eprintln!(
        "spdy serve: self-signed certificate for {}, SHA-256 fingerprint {}",
        names.join(", "),
        spdy::tls::fingerprint_sha256(&der)
    );
    if let Some(path) = &args.save_cert {
        std::fs::write(path, certified.cert.pem())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("spdy serve: certificate written to {}", path.display());
    }
    Acceptor::new(vec![der], key.into()).map_err(|e| e.to_string())
}

/// Answers one request and logs it.
async fn handle(root: &Path, peer: SocketAddr, req: Request<RecvBody>) -> Response<ServeBody> {
    let response = respond(root, &req).await;
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    eprintln!(
        "{peer} {} {target} {} {length}",
        req.method(),
        response.status().as_u16()
    );
    response
}

pub(crate) async fn respond(root: &Path, req: &Request<RecvBody>) -> Response<ServeBody> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, head);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = req.uri().path();
    let relative = match relative_path(path) {
        Ok(relative) => relative,
        Err(status) => return plain(status, head),
    };
    let target = match resolve(root, &relative).await {
        Ok(target) => target,
        Err(status) => return plain(status, head),
    };
    let meta = match tokio::fs::metadata(&target).await {
        Ok(meta) => meta,
        Err(e) => return plain(io_status(&e), head),
    };
    if meta.is_file() {
        return serve_file(&target, &relative, req, head).await;
    }
    if !meta.is_dir() {
        // A FIFO or a device: reading it could block or never end.
        return plain(StatusCode::FORBIDDEN, head);
    }
    if !path.ends_with('/') {
        // Relative links in the page resolve against the folder only with
        // the slash.
        let mut location = format!("{path}/");
        if let Some(query) = req.uri().query() {
            location.push('?');
            location.push_str(query);
        }
        let mut response = plain(StatusCode::MOVED_PERMANENTLY, head);
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    let index = relative.join("index.html");
    if let Ok(index_target) = resolve(root, &index).await {
        if tokio::fs::metadata(&index_target)
            .await
            .is_ok_and(|m| m.is_file())
        {
            return serve_file(&index_target, &index, req, head).await;
        }
    }
    match listing(&target, path).await {
        Ok(page) => {
            let mut response = bytes_response(StatusCode::OK, Bytes::from(page), head);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(e) => plain(io_status(&e), head),
    }
}

/// The request path as a path relative to the root: percent-decoded, each
/// segment a plain name. `..` is refused with 403; a segment that decodes to
/// something with a separator or a NUL is a bad request.
fn relative_path(path: &str) -> Result<PathBuf, StatusCode> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(StatusCode::BAD_REQUEST);
    };
    let mut relative = PathBuf::new();
    for raw in rest.split('/') {
        let segment = percent_decode(raw).ok_or(StatusCode::BAD_REQUEST)?;
        match segment.as_str() {
            "" | "." => continue,
            ".." => return Err(StatusCode::FORBIDDEN),
            _ => {}
        }
        if segment.contains(['/', '\0']) || (cfg!(windows) && segment.contains(['\\', ':'])) {
            return Err(StatusCode::BAD_REQUEST);
        }
        // Belt and braces: the segment must be one ordinary name.
        let mut components = Path::new(&segment).components();
        match (components.next(), components.next()) {
            (Some(std::path::Component::Normal(_)), None) => relative.push(&segment),
            _ => return Err(StatusCode::FORBIDDEN),
        }
    }
    Ok(relative)
}

/// Decodes `%XX` escapes; `None` if one is malformed or the result is not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    // percent-encoding passes a malformed escape through as it is; a path
    // with one is a bad request.
    let well_formed = s.split('%').skip(1).all(|rest| {
        rest.as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
    Some(decoded.into_owned())
}

/// The real location of `relative` under `root`, symlinks followed; 403 if
/// that is outside the root.
async fn resolve(root: &Path, relative: &Path) -> Result<PathBuf, StatusCode> {
    let target = tokio::fs::canonicalize(root.join(relative))
        .await
        .map_err(|e| io_status(&e))?;
    if target.starts_with(root) {
        Ok(target)
    } else {
        Err(StatusCode::FORBIDDEN)
    }
}

fn io_status(e: &io::Error) -> StatusCode {
    match e.kind() {
        io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::NOT_FOUND,
    }
}

/// A file, whole or one range of it. `name` (as requested) gives the type.
async fn serve_file(
    target: &Path,
    name: &Path,
    req: &Request<RecvBody>,
    head: bool,
) -> Response<ServeBody> {
    let mut file = match tokio::fs::File::open(target).await {
        Ok(file) => file,
        Err(e) => return plain(io_status(&e), head),
    };
    let meta = match file.metadata().await {
        Ok(meta) => meta,
        Err(e) => return plain(io_status(&e), head),
    };
    let len = meta.len();
    let mut response = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_TYPE,
            mime_guess::from_path(name)
                .first_or_octet_stream()
                .essence_str(),
        );
    if let Some(date) = meta.modified().ok().and_then(http_date) {
        response = response.header(header::LAST_MODIFIED, date);
    }
    let (status, start, count) = match parse_range(req.headers().get(header::RANGE), len) {
        Range::Full => (StatusCode::OK, 0, len),
        Range::Partial(start, end) => {
            response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Range::Unsatisfiable => {
            response = response.header(header::CONTENT_RANGE, format!("bytes */{len}"));
            (StatusCode::RANGE_NOT_SATISFIABLE, 0, 0)
        }
    };
    let body = if head || count == 0 {
        ServeBody::empty()
    } else {
        if start > 0 {
            if let Err(e) = file.seek(io::SeekFrom::Start(start)).await {
                eprintln!("spdy serve: {}: {e}", target.display());
                return plain(StatusCode::INTERNAL_SERVER_ERROR, head);
            }
        }
        ServeBody::File {
            file: Some(file.into_std().await),
            reading: None,
            remaining: count,
            sent: 0,
        }
    };
    response
        .status(status)
        .header(header::CONTENT_LENGTH, count)
        .body(body)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, head))
}

/// What a Range header asks of a file of a given length.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No range, one that does not parse (ignored, as RFC 9110 says), or
    /// several ranges (answered with the whole file).
    Full,
    /// Bytes `start..=end`.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

fn parse_range(value: Option<&HeaderValue>, len: u64) -> Range {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return Range::Full;
    };
    let Some((unit, spec)) = value.split_once('=') else {
        return Range::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Range::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let digits = |s: &str| {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            // Too many digits for a u64 is still "more than the file".
            Some(s.parse::<u64>().unwrap_or(u64::MAX))
        }
    };
    if first.trim().is_empty() {
        // bytes=-n: the last n bytes.
        return match digits(last) {
            None => Range::Full,
            Some(0) => Range::Unsatisfiable,
            Some(_) if len == 0 => Range::Unsatisfiable,
            Some(n) => Range::Partial(len - n.min(len), len - 1),
        };
    }
    let Some(start) = digits(first) else {
        return Range::Full;
    };
    let end = if last.trim().is_empty() {
        None
    } else {
        match digits(last) {
            Some(end) if end >= start => Some(end),
            _ => return Range::Full,
        }
    };
    if start >= len {
        return Range::Unsatisfiable;
    }
    Range::Partial(start, end.map_or(len - 1, |end| end.min(len - 1)))
}

/// An HTML listing of a folder.
async fn listing(dir: &Path, request_path: &str) -> io::Result<String> {
    let mut entries = Vec::new();
    let mut read = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = read.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Follow symlinks to tell folders from files.
        let is_dir = tokio::fs::metadata(entry.path())
            .await
            .is_ok_and(|m| m.is_dir());
        entries.push((name, is_dir));
    }
    entries.sort();
    let title = html_escape(&percent_decode(request_path).unwrap_or_else(|| request_path.into()));
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if request_path != "/" {
        page.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir) in entries {
        let slash = if is_dir { "/" } else { "" };
        let _ = writeln!(
            page,
            "<li><a href=\"{}{slash}\">{}{slash}</a></li>",
            utf8_percent_encode(&name, LINK_ESCAPED),
            html_escape(&name)
        );
    }
    page.push_str("</ul></body></html>\n");
    Ok(page)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Everything but the unreserved characters (RFC 3986), escaped in a name
/// put in a relative link.
const LINK_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An IMF-fixdate (RFC 9110 section 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`;
/// `None` for a time it cannot write, before 1970 or from year 10000 on
/// (where `httpdate` would panic, and a file's time is whatever the file
/// system says).
fn http_date(time: SystemTime) -> Option<String> {
    /// 10000-01-01T00:00:00Z, in seconds since the epoch.
    const YEAR_10000: u64 = 253_402_300_800;
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    (since_epoch.as_secs() < YEAR_10000).then(|| httpdate::fmt_http_date(time))
}

/// A short text response for a status (no body for HEAD).
fn plain(status: StatusCode, head: bool) -> Response<ServeBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = bytes_response(status, Bytes::from(text), head);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn bytes_response(status: StatusCode, body: Bytes, head: bool) -> Response<ServeBody> {
    let len = body.len();
    let body = if head {
        ServeBody::empty()
    } else {
        ServeBody::Bytes(Some(body))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// A response body: bytes in memory, or a part of a file read a chunk at a
/// time as the connection asks for more.
pub(crate) enum ServeBody {
    Bytes(Option<Bytes>),
    /// Each piece is read by one trip to the blocking pool straight into
    /// the buffer that goes out (tokio's `File` would keep a buffer of its
    /// own per open file, as large as the largest read).
    File {
        /// The file, while no read holds it.
        file: Option<std::fs::File>,
        reading: Option<Reading>,
        remaining: u64,
        /// Bytes handed out so far.
        sent: u64,
    },
}

/// A read in the blocking pool: it gives the file back with the piece.
type Reading = tokio::task::JoinHandle<(std::fs::File, io::Result<Bytes>)>;

/// Reads up to `want` bytes (fewer only at the end of the file).
fn read_piece(mut file: std::fs::File, want: usize) -> (std::fs::File, io::Result<Bytes>) {
    use std::io::Read;
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (file, Err(e)),
        }
    }
    buf.truncate(filled);
    (file, Ok(Bytes::from(buf)))
}

impl ServeBody {
    fn empty() -> ServeBody {
        ServeBody::Bytes(None)
    }
}

impl Body for ServeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ServeBody::Bytes(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ServeBody::File {
                file,
                reading,
                remaining,
                sent,
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                if reading.is_none() {
                    let Some(f) = file.take() else {
                        return Poll::Ready(Some(Err(io::Error::other("the file was lost"))));
                    };
                    let want = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(piece_len(*sent));
                    *reading = Some(tokio::task::spawn_blocking(move || read_piece(f, want)));
                }
                let Some(task) = reading.as_mut() else {
                    return Poll::Pending;
                };
                let done = ready!(std::future::Future::poll(Pin::new(task), cx));
                *reading = None;
                let piece = match done {
                    Ok((f, piece)) => {
                        *file = Some(f);
                        piece?
                    }
                    Err(e) => return Poll::Ready(Some(Err(io::Error::other(e)))),
                };
                if piece.is_empty() {
                    *remaining = 0;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was being sent",
                    ))));
                }
                *remaining = remaining.saturating_sub(piece.len() as u64);
                *sent += piece.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ServeBody::Bytes(bytes) => bytes.is_none(),
            ServeBody::File { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ServeBody::Bytes(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ServeBody::File { remaining, .. } => SizeHint::with_exact(*remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn range(value: &str, len: u64) -> Range {
        parse_range(Some(&HeaderValue::from_str(value).unwrap()), len)
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Range::Full);
        assert_eq!(range("bytes=0-0", 10), Range::Partial(0, 0));
        assert_eq!(range("bytes=2-5", 10), Range::Partial(2, 5));
        assert_eq!(range("bytes=2-50", 10), Range::Partial(2, 9));
        assert_eq!(range("bytes=7-", 10), Range::Partial(7, 9));
        assert_eq!(range("bytes=-3", 10), Range::Partial(7, 9));
        assert_eq!(range("bytes=-30", 10), Range::Partial(0, 9));
        assert_eq!(range("Bytes = 1-2", 10), Range::Partial(1, 2));
        assert_eq!(range("bytes=10-", 10), Range::Unsatisfiable);
        assert_eq!(range("bytes=10-20", 10), Range::Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), Range::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Range::Unsatisfiable);
        assert_eq!(range("bytes=-5", 0), Range::Unsatisfiable);
        assert_eq!(
            range("bytes=99999999999999999999999-", 10),
            Range::Unsatisfiable
        );
        // Ignored: other units, bad syntax, several ranges.
        assert_eq!(range("items=0-1", 10), Range::Full);
        assert_eq!(range("bytes=5-2", 10), Range::Full);
        assert_eq!(range("bytes=a-b", 10), Range::Full);
        assert_eq!(range("bytes=+1-2", 10), Range::Full);
        assert_eq!(range("bytes=-", 10), Range::Full);
        assert_eq!(range("bytes=0-1,4-5", 10), Range::Full);
    }

    #[test]
    fn paths() {
        assert_eq!(relative_path("/"), Ok(PathBuf::new()));
        assert_eq!(relative_path("/a/./b//c"), Ok(PathBuf::from("a/b/c")));
        assert_eq!(relative_path("/a%20b"), Ok(PathBuf::from("a b")));
        assert_eq!(relative_path("/../etc/passwd"), Err(StatusCode::FORBIDDEN));
        assert_eq!(relative_path("/a/../../x"), Err(StatusCode::FORBIDDEN));
        assert_eq!(relative_path("/%2e%2e/x"), Err(StatusCode::FORBIDDEN));
        assert_eq!(relative_path("/a%2f..%2fb"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(relative_path("/%2fetc"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(relative_path("/a/%2E%2E"), Err(StatusCode::FORBIDDEN));
        assert_eq!(relative_path("/%2e%2e%2f"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(relative_path("/%252e%252e"), Ok(PathBuf::from("%2e%2e")));
        assert_eq!(relative_path("/a%00"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(relative_path("/%zz"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(relative_path("/%ff"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(relative_path("*"), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn dates() {
        assert_eq!(
            http_date(UNIX_EPOCH).as_deref(),
            Some("Thu, 01 Jan 1970 00:00:00 GMT")
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)).as_deref(),
            Some("Tue, 29 Feb 2000 00:00:00 GMT")
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_millis(253_402_300_799_999)).as_deref(),
            Some("Fri, 31 Dec 9999 23:59:59 GMT")
        );
        // Out of range: no date rather than a panic.
        assert_eq!(http_date(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(253_402_300_800)),
            None
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(html_escape("<a&'\">"), "&lt;a&amp;&#39;&quot;&gt;");
        assert_eq!(
            utf8_percent_encode("a b/é~-._*", LINK_ESCAPED).to_string(),
            "a%20b%2F%C3%A9~-._%2A"
        );
        assert_eq!(percent_decode("a%20b%2F%c3%A9").as_deref(), Some("a b/é"));
        for bad in ["%", "a%2", "%zz", "%+1", "%ff", "%c3"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
