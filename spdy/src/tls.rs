//! SPDY over TLS, the version agreed by ALPN; HTTP/1.1 on the same port.
//!
//! Browsers only ever spoke SPDY over TLS, and the TLS handshake is where
//! the two ends agree on the protocol:
//!
//! - A server ([`Acceptor`], [`serve`], [`serve_connection`]) offers
//!   `spdy/3.1`, `spdy/3`, `spdy/2` and `http/1.1`, in that order of
//!   preference. A SPDY protocol is served as SPDY of exactly that version;
//!   `http/1.1`, or no ALPN at all (a client that does not send it), is
//!   served as HTTP/1.1 by hyper with *the same service*, so curl and
//!   browsers work on the same port.
//! - A client ([`Connector`], [`Connector::connect`]) offers `spdy/3.1`, `spdy/3` and
//!   `spdy/2` (or the versions it is told to) and speaks the one the server
//!   picks; if the server picks none of them the error is
//!   [`Error::NoSpdyProtocol`].
//!
//! # No NPN
//!
//! SPDY was first negotiated with NPN (Next Protocol Negotiation), a TLS
//! extension that ALPN (RFC 7301) replaced. NPN is obsolete, removed from
//! browsers and TLS libraries, and rustls never had it: only ALPN is
//! supported here. A peer that only knows NPN will see a server that agrees
//! to nothing (and, against our server, be served HTTP/1.1).
//!
//! # Crypto
//!
//! rustls with its *ring* provider, passed explicitly to every
//! configuration this module builds: nothing depends on a process-wide
//! default `CryptoProvider`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use bytes::Bytes;
//! use http_body_util::{Empty, Full};
//! use hyper::service::service_fn;
//! use spdy::{tls, RecvBody};
//!
//! // Server: SPDY/3.1, 3 and 2, and HTTP/1.1, on one port.
//! let acceptor = tls::Acceptor::from_pem_files("cert.pem", "key.pem")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4443").await?;
//! let service = service_fn(|req: http::Request<RecvBody>| async move {
//!     let body = Full::new(Bytes::from(format!("you asked for {}\n", req.uri().path())));
//!     Ok::<_, std::convert::Infallible>(http::Response::new(body))
//! });
//! tokio::spawn(tls::serve(listener, acceptor, service));
//!
//! // Client: trusts cert.pem, speaks the version the server picked.
//! let connector = tls::Connector::with_ca_file("cert.pem")?;
//! let client = connector.connect("127.0.0.1:4443", "localhost").await?;
//! println!("SPDY/{}", client.version());
//! let req = http::Request::get("https://localhost:4443/").body(Empty::<Bytes>::new())?;
//! let mut res = client.send_request(req).await?;
//! let body = res.body_mut().collect_to_vec(1 << 20).await?;
//! # let _ = body; Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::client::{self, Client, SendRequest};
use crate::error::Error;
use crate::server::{self, HttpService};
use crate::{Connection, RecvBody, Version};

/// The rustls this module is built on, for its configuration and
/// certificate types (`rustls::pki_types::CertificateDer` and the like).
pub use rustls;
/// A TLS connection this program dialed (the socket of a client
/// [`Connection`]).
pub use tokio_rustls::client::TlsStream as ClientTlsStream;
/// A TLS connection this program accepted.
pub use tokio_rustls::server::TlsStream as ServerTlsStream;

/// How long a TLS handshake may take by default.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A protocol agreed by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SPDY of this version (`spdy/2`, `spdy/3`, `spdy/3.1`).
    Spdy(Version),
    /// HTTP/1.1 (`http/1.1`).
    Http1,
}

impl Protocol {
    /// What a server offers by default, most preferred first: `spdy/3.1`,
    /// `spdy/3`, `spdy/2`, `http/1.1`.
    pub const SERVER_DEFAULT: [Protocol; 4] = [
        Protocol::Spdy(Version::V3_1),
        Protocol::Spdy(Version::V3),
        Protocol::Spdy(Version::V2),
        Protocol::Http1,
    ];

    /// What a client offers by default, most preferred first.
    pub const CLIENT_DEFAULT: [Protocol; 3] = [
        Protocol::Spdy(Version::V3_1),
        Protocol::Spdy(Version::V3),
        Protocol::Spdy(Version::V2),
    ];

    /// The protocol's ALPN identifier, e.g. `b"spdy/3.1"`.
    pub const fn alpn_id(self) -> &'static [u8] {
        match self {
            Protocol::Spdy(Version::V2) => b"spdy/2",
            Protocol::Spdy(Version::V3) => b"spdy/3",
            Protocol::Spdy(Version::V3_1) => b"spdy/3.1",
            Protocol::Http1 => b"http/1.1",
        }
    }

    /// The protocol an ALPN identifier names, if it is one of ours.
    pub fn from_alpn_id(id: &[u8]) -> Option<Protocol> {
        Protocol::SERVER_DEFAULT
            .into_iter()
            .find(|p| p.alpn_id() == id)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.alpn_id()))
    }
}

/// The list of ALPN identifiers for `protocols`, in order (the form of
/// `ServerConfig::alpn_protocols` and `ClientConfig::alpn_protocols`).
pub fn alpn_protocols(protocols: impl IntoIterator<Item = Protocol>) -> Vec<Vec<u8>> {
    protocols
        .into_iter()
        .map(|p| p.alpn_id().to_vec())
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in a PEM file (a chain: the server's own first, then
/// the intermediates; or the trust anchors of a CA file).
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, Error> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "certificate", pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, Error> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, "private key", e))
}

/// A PEM file that could not be read, or had no `what` in it, as an I/O
/// error naming the file.
fn pem_error(path: &Path, what: &str, e: pem::Error) -> Error {
    let (kind, detail) = match e {
        pem::Error::Io(e) => (e.kind(), e.to_string()),
        pem::Error::NoItemsFound => (io::ErrorKind::InvalidData, format!("no {what} in PEM")),
        e => (io::ErrorKind::InvalidData, format!("bad PEM: {e}")),
    };
    io::Error::new(kind, format!("{}: {detail}", path.display())).into()
}

/// The SHA-256 fingerprint of a certificate as colon-separated uppercase
/// hex pairs, the way `openssl x509 -noout -fingerprint -sha256` prints it.
pub fn fingerprint_sha256(cert: &CertificateDer<'_>) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Maps a failed TLS handshake (tokio-rustls reports rustls errors inside
/// `io::Error`s) to our error.
fn handshake_error(e: io::Error) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        // Ours as a server, or the server's alert to us as a client.
        Some(rustls::Error::NoApplicationProtocol)
        | Some(rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol)) => {
            Error::NoSpdyProtocol { negotiated: None }
        }
        Some(tls) => Error::Tls(tls.clone()),
        None => Error::from(e),
    }
}

fn timed_out() -> Error {
    io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake timed out").into()
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, no client
/// certificates) presenting `chain` (the server's certificate first) with
/// `key`, and offering [`Protocol::SERVER_DEFAULT`] by ALPN. Adjust it (for
/// instance `alpn_protocols`) and pass it to [`Acceptor::from_config`].
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn_protocols(Protocol::SERVER_DEFAULT);
    Ok(config)
}

/// The server side: TLS handshakes, then SPDY or HTTP/1.1 by what ALPN
/// agreed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
    spdy: server::Builder,
    handshake_timeout: Duration,
}

impl Acceptor {
    /// Presents `chain` (the server's certificate first, then any
    /// intermediates) with `key`, offering SPDY/3.1, 3, 2 and HTTP/1.1. Fails
    /// if the key does not match the certificate or is of an unsupported
    /// kind.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Acceptor, Error> {
        Ok(Acceptor::from_config(Arc::new(server_config(chain, key)?)))
    }

    /// Like [`new`](Self::new), with the chain and the key read from PEM
    /// files.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Acceptor, Error> {
        Acceptor::new(load_certs(cert)?, load_private_key(key)?)
    }

    /// Uses `config` as it is, ALPN list included (see [`server_config`]):
    /// a configuration without ALPN protocols serves every connection as
    /// HTTP/1.1.
    pub fn from_config(config: Arc<ServerConfig>) -> Acceptor {
        Acceptor {
            config,
            spdy: server::Builder::new(),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// Offers these protocols by ALPN instead, most preferred first (for
    /// instance only `[Protocol::Spdy(Version::V3_1), Protocol::Http1]`).
    pub fn protocols(mut self, protocols: &[Protocol]) -> Acceptor {
        Arc::make_mut(&mut self.config).alpn_protocols = alpn_protocols(protocols.iter().copied());
        self
    }

    /// The settings of SPDY sessions (limits, windows, drain timeout). The
    /// version set on `builder`, if any, is ignored: each connection speaks
    /// the one ALPN agreed.
    pub fn spdy(mut self, builder: server::Builder) -> Acceptor {
        self.spdy = builder;
        self
    }

    /// How long a client may take to complete the TLS handshake (default
    /// 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Acceptor {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration in use.
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs the TLS handshake on an accepted socket and reports what ALPN
    /// agreed; serve the result with [`Accepted::serve`].
    ///
    /// Fails with [`Error::Tls`] if the handshake fails, with
    /// [`Error::NoSpdyProtocol`] if the client offered by ALPN only
    /// protocols this server does not (or the configuration selected one
    /// that is neither SPDY nor HTTP/1.1), and with a timed-out
    /// [`Error::Io`] after the handshake timeout.
    pub async fn accept<T>(&self, io: T) -> Result<Accepted<T>, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = tokio_rustls::TlsAcceptor::from(self.config.clone()).accept(io);
        let stream = tokio::time::timeout(self.handshake_timeout, handshake)
            .await
            .map_err(|_| timed_out())?
            .map_err(handshake_error)?;
        let protocol = match stream.get_ref().1.alpn_protocol() {
            None => Protocol::Http1,
            Some(id) => Protocol::from_alpn_id(id).ok_or_else(|| Error::NoSpdyProtocol {
                negotiated: Some(String::from_utf8_lossy(id).into_owned()),
            })?,
        };
        Ok(Accepted {
            stream,
            protocol,
            spdy: self.spdy.clone(),
        })
    }
}

/// A TLS connection whose handshake is done, from [`Acceptor::accept`].
#[derive(Debug)]
pub struct Accepted<T> {
    stream: ServerTlsStream<T>,
    protocol: Protocol,
    spdy: server::Builder,
}

impl<T> Accepted<T> {
    /// What ALPN agreed (HTTP/1.1 if the client sent no ALPN).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The TLS connection: SNI server name, cipher suite, peer certificates.
    pub fn tls(&self) -> &rustls::ServerConnection {
        self.stream.get_ref().1
    }

    /// The TLS stream, to serve it some other way.
    pub fn into_stream(self) -> ServerTlsStream<T> {
        self.stream
    }

    /// Serves the connection with `service` until the client goes away:
    /// as SPDY of the agreed version, or as HTTP/1.1 (see
    /// [`serve_connection`]).
    pub async fn serve<S>(self, service: S) -> Result<(), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService,
    {
        self.serve_until(service, std::future::pending()).await
    }

    /// Like [`serve`](Self::serve), and when `shutdown` completes: SPDY
    /// sends GOAWAY and lets open streams finish (at most the server
    /// builder's drain timeout); HTTP/1.1 finishes the request in flight
    /// and closes.
    pub async fn serve_until<S>(
        self,
        service: S,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService,
    {
        match self.protocol {
            Protocol::Spdy(version) => {
                self.spdy
                    .version(version)
                    .serve_connection_until(self.stream, service, shutdown)
                    .await
            }
            Protocol::Http1 => serve_http1(self.stream, service, shutdown).await,
        }
    }
}

/// Serves HTTP/1.1 with hyper: each request's body is wrapped in a
/// [`RecvBody`] and its target made absolute, as SPDY requests are.
async fn serve_http1<T, S>(
    io: T,
    service: S,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    let hyper_service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let mut req = req.map(RecvBody::wrap);
        absolute_uri(&mut req);
        service.call(req)
    });
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // The timer lets hyper time out a client slow to send its headers.
    http1.timer(TokioTimer::new());
    // What a client can make us buffer of a request head (hyper's default
    // is about 400 KiB per connection).
    http1.max_buf_size(64 * 1024);
    let connection = http1
        .serve_connection(TokioIo::new(io), hyper_service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut shutdown = std::pin::pin!(shutdown);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = &mut shutdown => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    result.map_err(|e| Error::from(io::Error::other(e)))
}

/// `/path` with `Host: h` becomes `https://h/path`, the URI a SPDY request
/// for the same resource has.
fn absolute_uri(req: &mut Request<RecvBody>) {
    if req.uri().authority().is_some() {
        return;
    }
    let Some(host) = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return;
    };
    let Some(path) = req.uri().path_and_query().map(|p| p.as_str()) else {
        return;
    };
    if !path.starts_with('/') {
        return;
    }
    if let Ok(uri) = format!("https://{host}{path}").parse() {
        *req.uri_mut() = uri;
    }
}

/// Serves one accepted socket: the TLS handshake, then SPDY of the version
/// ALPN agreed, or HTTP/1.1 (agreed, or no ALPN) with the same `service`.
///
/// For HTTP/1.1 the service sees the same kind of request as over SPDY: an
/// absolute `https://` URI (from the Host header) and a [`RecvBody`]
/// wrapping the HTTP/1.1 body. Upgrades are enabled, so a service can take
/// the connection over with `hyper::upgrade::on`. There is no
/// [`server::Pusher`] on HTTP/1.1 requests, and a service error closes an
/// HTTP/1.1 connection (hyper's way) where SPDY answers 500.
pub async fn serve_connection<T, S>(io: T, acceptor: &Acceptor, service: S) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    acceptor.accept(io).await?.serve(service).await
}

/// Accepts connections on `listener` and serves each with
/// [`serve_connection`] in a task of its own. Runs until accepting fails.
pub async fn serve<S>(listener: TcpListener, acceptor: Acceptor, service: S) -> io::Result<()>
where
    S: HttpService,
{
    let service = Arc::new(service);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let _ = serve_connection(tcp, &acceptor, service).await;
        });
    }
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3) that
/// trusts `roots` and offers [`Protocol::CLIENT_DEFAULT`] by ALPN.
pub fn client_config(roots: RootCertStore) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn_protocols(Protocol::CLIENT_DEFAULT);
    Ok(config)
}

/// The client side: a TLS handshake offering SPDY by ALPN, then a client
/// session of the version the server picked. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    client: client::Builder,
    handshake_timeout: Duration,
}

impl Connector {
    /// Uses `config` as it is, ALPN list included (see [`client_config`]).
    pub fn new(config: Arc<ClientConfig>) -> Connector {
        Connector {
            config,
            client: client::Builder::new(),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// Trusts the certificates in `roots` (CA certificates, or a server's
    /// self-signed certificate).
    pub fn with_roots(roots: RootCertStore) -> Result<Connector, Error> {
        Ok(Connector::new(Arc::new(client_config(roots)?)))
    }

    /// Trusts the certificates in a PEM file.
    pub fn with_ca_file(path: impl AsRef<Path>) -> Result<Connector, Error> {
        let mut roots = RootCertStore::empty();
        for cert in load_certs(path)? {
            roots.add(cert)?;
        }
        Connector::with_roots(roots)
    }

    /// **Insecure**: accepts any server certificate, for any name (see
    /// [`AcceptAnyServerCert`]), like `curl -k`. The connection is
    /// encrypted but anyone in the path can impersonate the server. For
    /// testing only.
    pub fn insecure() -> Result<Connector, Error> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new()))
            .with_no_client_auth();
        config.alpn_protocols = alpn_protocols(Protocol::CLIENT_DEFAULT);
        Ok(Connector::new(Arc::new(config)))
    }

    /// Offers only these SPDY versions by ALPN, most preferred first.
    pub fn versions(mut self, versions: &[Version]) -> Connector {
        Arc::make_mut(&mut self.config).alpn_protocols =
            alpn_protocols(versions.iter().map(|&v| Protocol::Spdy(v)));
        self
    }

    /// The SPDY session's settings: limits, windows, push. Its version is
    /// not used: the session speaks the one ALPN agreed on (offer them
    /// with [`versions`](Self::versions)).
    pub fn client(mut self, builder: client::Builder) -> Connector {
        self.client = builder;
        self
    }

    /// How long the TLS handshake may take (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Connector {
        self.handshake_timeout = timeout;
        self
    }

    /// The rustls configuration in use.
    pub fn client_config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Runs the TLS handshake on a connected socket, verifying the
    /// certificate for `server_name`, and starts a client session of the
    /// SPDY version the server picked (read it from
    /// `send.handle().version()`). Spawn the [`Connection`].
    ///
    /// Fails with [`Error::Tls`] if the handshake fails (an untrusted
    /// certificate is `Error::Tls(rustls::Error::InvalidCertificate(_))`),
    /// with [`Error::NoSpdyProtocol`] if the server agrees to none of the
    /// offered versions (or ignores ALPN), and with a timed-out
    /// [`Error::Io`] after the handshake timeout.
    pub async fn handshake<T>(
        &self,
        io: T,
        server_name: ServerName<'static>,
    ) -> Result<(SendRequest, Connection<ClientTlsStream<T>>), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake =
            tokio_rustls::TlsConnector::from(self.config.clone()).connect(server_name, io);
        let stream = tokio::time::timeout(self.handshake_timeout, handshake)
            .await
            .map_err(|_| timed_out())?
            .map_err(handshake_error)?;
        let alpn = stream.get_ref().1.alpn_protocol();
        let version = match alpn.and_then(Protocol::from_alpn_id) {
            Some(Protocol::Spdy(version)) => version,
            _ => {
                return Err(Error::NoSpdyProtocol {
                    negotiated: alpn.map(|id| String::from_utf8_lossy(id).into_owned()),
                })
            }
        };
        Ok(self.client.clone().version(version).handshake(stream))
    }

    /// Connects over TCP to `addr`, then as [`handshake`](Self::handshake)
    /// with `server_name` (a DNS name or an IP address; what the
    /// certificate must name), and returns the client with its connection
    /// task spawned.
    pub async fn connect(
        &self,
        addr: impl ToSocketAddrs,
        server_name: &str,
    ) -> Result<Client, Error> {
        let bare = server_name.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid server name {server_name:?}: {e}"),
            )
        })?;
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = self.handshake(tcp, name).await?;
        Ok(Client::new(send, conn))
    }
}

/// **INSECURE**: a server certificate verifier that accepts every
/// certificate, whoever issued it and whatever it names (what `curl -k`
/// does).
///
/// The connection is still encrypted, and the server still proves it holds
/// the key of the certificate it sent (handshake signatures are checked),
/// but nothing ties that certificate to the server you meant to reach:
/// anyone in the path can impersonate it and read everything. Use it for
/// tests and local development only, never to reach a server across a
/// network you do not control. Prefer trusting the server's own
/// certificate ([`Connector::with_ca_file`]).
#[derive(Debug, Clone)]
pub struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCert {
    /// A verifier checking handshake signatures with ring's algorithms.
    pub fn new() -> AcceptAnyServerCert {
        AcceptAnyServerCert {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl Default for AcceptAnyServerCert {
    fn default() -> AcceptAnyServerCert {
        AcceptAnyServerCert::new()
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_ids_round_trip() {
        for p in Protocol::SERVER_DEFAULT {
            assert_eq!(Protocol::from_alpn_id(p.alpn_id()), Some(p));
        }
        assert_eq!(Protocol::from_alpn_id(b"h2"), None);
        assert_eq!(
            alpn_protocols(Protocol::SERVER_DEFAULT),
            [&b"spdy/3.1"[..], b"spdy/3", b"spdy/2", b"http/1.1"]
        );
        assert_eq!(Protocol::Spdy(Version::V3_1).to_string(), "spdy/3.1");
    }

    #[test]
    fn fingerprint_of_known_bytes() {
        // SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        let fp = fingerprint_sha256(&CertificateDer::from(&b"abc"[..]));
        assert_eq!(
            fp,
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:\
             B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }
}
