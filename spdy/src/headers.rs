//! Between SPDY name/value blocks and `http` types, per version.
//!
//! SPDY/3 (section 3.2) unfolds the request line into `:method`, `:path`,
//! `:version`, `:host` and `:scheme`, and the status line into `:status` and
//! `:version`; SPDY/2 uses `method`, `url`, `version`, `scheme` (and the
//! ordinary `host` header) and `status`, `version`. Names are lower case, a
//! repeated header is one value with NUL-separated parts, and the
//! connection-specific headers (Connection, Keep-Alive, Proxy-Connection,
//! Transfer-Encoding, and Host in SPDY/3) "MUST not be sent", nor are those
//! a Connection header names (an HTTP/1.1 hop's own, passed on by a proxy).

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use spdy_proto::frame::Version;
use spdy_proto::header_block::HeaderBlock;

/// Why headers could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A required pseudo-header (or its SPDY/2 spelling) is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A value that the `http` types reject.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
}

fn invalid(what: &'static str, e: impl std::fmt::Display) -> HeaderError {
    HeaderError::Invalid {
        what,
        detail: e.to_string(),
    }
}

/// Headers a SPDY message must not carry.
fn is_connection_specific(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "host" | "upgrade"
    )
}

struct Names {
    method: &'static str,
    path: &'static str,
    version: &'static str,
    scheme: &'static str,
    status: &'static str,
}

fn names(version: Version) -> Names {
    if version == Version::V2 {
        Names {
            method: "method",
            path: "url",
            version: "version",
            scheme: "scheme",
            status: "status",
        }
    } else {
        Names {
            method: ":method",
            path: ":path",
            version: ":version",
            scheme: ":scheme",
            status: ":status",
        }
    }
}

/// Whether `Connection` names `name` as a header of this hop only
/// (RFC 9110 7.6.1): it goes with the Connection header.
fn named_by_connection(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|named| named.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Adds ordinary headers, joining repeated ones with NUL.
fn push_header_map(block: &mut HeaderBlock, headers: &HeaderMap) {
    let has_connection = headers.contains_key(http::header::CONNECTION);
    for name in headers.keys() {
        if is_connection_specific(name) || has_connection && named_by_connection(headers, name) {
            continue;
        }
        let mut joined: Vec<u8> = Vec::new();
        for value in headers.get_all(name) {
            // Empty parts cannot be carried between NULs.
            if value.is_empty() {
                continue;
            }
            if !joined.is_empty() {
                joined.push(0);
            }
            joined.extend_from_slice(value.as_bytes());
        }
        if !joined.is_empty() {
            block.push(Bytes::copy_from_slice(name.as_str().as_bytes()), joined);
        }
    }
}

/// The header block of a request.
pub(crate) fn request_block<B>(version: Version, req: &Request<B>) -> HeaderBlock {
    let n = names(version);
    let mut block = HeaderBlock::with_capacity(req.headers().len() + 5);
    let uri = req.uri();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let host = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    });
    block.push(n.method, req.method().as_str().to_owned());
    block.push(
        n.path,
        if path.is_empty() {
            "/".to_owned()
        } else {
            path
        },
    );
    block.push(n.version, "HTTP/1.1");
    block.push(n.scheme, uri.scheme_str().unwrap_or("http").to_owned());
    if let Some(host) = host {
        block.push(
            if version == Version::V2 {
                "host"
            } else {
                ":host"
            },
            host,
        );
    }
    push_header_map(&mut block, req.headers());
    block
}

/// The `http` request a SYN_STREAM describes (body left to the caller).
pub(crate) fn request_parts(
    version: Version,
    block: &HeaderBlock,
) -> Result<http::request::Parts, HeaderError> {
    let n = names(version);
    let text = |name: &'static str| -> Result<&str, HeaderError> {
        let value = block.get(name).ok_or(HeaderError::Missing(name))?;
        std::str::from_utf8(value).map_err(|e| invalid(name, e))
    };
    let method =
        Method::from_bytes(text(n.method)?.as_bytes()).map_err(|e| invalid(n.method, e))?;
    let path = text(n.path)?;
    let scheme = block
        .get(n.scheme)
        .and_then(|s| std::str::from_utf8(s).ok())
        .unwrap_or("http");
    let host_name = if version == Version::V2 {
        "host"
    } else {
        ":host"
    };
    let host = block
        .get(host_name)
        .and_then(|s| std::str::from_utf8(s).ok());
    // SPDY/2's url may be an absolute URI; otherwise build one from the
    // scheme and host.
    let uri: Uri = if path.starts_with('/') || path == "*" {
        match host {
            Some(host) => format!("{scheme}://{host}{path}"),
            None => path.to_owned(),
        }
        .parse()
        .map_err(|e| invalid(n.path, e))?
    } else {
        path.parse().map_err(|e| invalid(n.path, e))?
    };
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(host) = host {
        builder = builder.header(http::header::HOST, host);
    }
    let headers = builder
        .headers_mut()
        .ok_or(HeaderError::Missing("headers"))?;
    copy_ordinary(block, headers)?;
    let (parts, ()) = builder
        .body(())
        .map_err(|e| invalid("request", e))?
        .into_parts();
    Ok(parts)
}

/// Copies the non-pseudo headers of `block` into `headers`, splitting
/// NUL-joined values.
fn copy_ordinary(block: &HeaderBlock, headers: &mut HeaderMap) -> Result<(), HeaderError> {
    for (name, value) in block.iter() {
        if name.starts_with(b":") {
            continue;
        }
        let name = HeaderName::from_bytes(name).map_err(|e| invalid("header name", e))?;
        if matches!(
            name.as_str(),
            "method" | "url" | "version" | "scheme" | "status" | "host"
        ) {
            continue;
        }
        for part in value.split(|&b| b == 0) {
            let value = HeaderValue::from_bytes(part).map_err(|e| invalid("header value", e))?;
            headers.append(name.clone(), value);
        }
    }
    Ok(())
}

/// The header block of a response.
pub(crate) fn response_block<B>(version: Version, res: &Response<B>) -> HeaderBlock {
    let n = names(version);
    let mut block = HeaderBlock::with_capacity(res.headers().len() + 2);
    let status = res.status();
    let line = match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    block.push(n.status, line);
    block.push(n.version, "HTTP/1.1");
    push_header_map(&mut block, res.headers());
    block
}

/// The `http` response a SYN_REPLY describes. "If a client receives a
/// SYN_REPLY without a status or without a version header, the client must
/// reply with a RST_STREAM frame indicating a PROTOCOL ERROR": a missing
/// status is an error here; a missing version is tolerated.
pub(crate) fn response_parts(
    version: Version,
    block: &HeaderBlock,
) -> Result<http::response::Parts, HeaderError> {
    let n = names(version);
    let status = block.get(n.status).ok_or(HeaderError::Missing(n.status))?;
    let code = status.split(|&b| b == b' ').next().unwrap_or(&[]);
    let status = StatusCode::from_bytes(code).map_err(|e| invalid(n.status, e))?;
    let mut builder = Response::builder().status(status);
    let headers = builder
        .headers_mut()
        .ok_or(HeaderError::Missing("headers"))?;
    copy_ordinary(block, headers)?;
    let (parts, ()) = builder
        .body(())
        .map_err(|e| invalid("response", e))?
        .into_parts();
    Ok(parts)
}

/// Trailers (a HEADERS block) as a header map.
pub(crate) fn trailers(block: &HeaderBlock) -> Result<HeaderMap, HeaderError> {
    let mut map = HeaderMap::new();
    copy_ordinary(block, &mut map)?;
    Ok(map)
}

/// A header map as a HEADERS block.
pub(crate) fn trailer_block(map: &HeaderMap) -> HeaderBlock {
    let mut block = HeaderBlock::with_capacity(map.len());
    push_header_map(&mut block, map);
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_in_each_version() {
        for version in Version::ALL {
            let req = Request::builder()
                .method("POST")
                .uri("http://example.com:8080/a/b?c=d")
                .header("accept", "text/plain")
                .header("x-many", "1")
                .header("x-many", "2")
                .header("connection", "keep-alive, X-Hop")
                .header("x-hop", "this hop only")
                .body(())
                .unwrap();
            let block = request_block(version, &req);
            assert!(block.get("connection").is_none());
            assert!(block.get("x-hop").is_none());
            let parts = request_parts(version, &block).unwrap();
            assert_eq!(parts.method, Method::POST);
            assert_eq!(parts.uri, "http://example.com:8080/a/b?c=d", "{version}");
            let many: Vec<_> = parts.headers.get_all("x-many").iter().collect();
            assert_eq!(many, ["1", "2"]);
            assert_eq!(parts.headers["accept"], "text/plain");
        }
    }

    #[test]
    fn response_round_trips_with_reason_phrase() {
        for version in Version::ALL {
            let res = Response::builder()
                .status(404)
                .header("content-type", "text/plain")
                .body(())
                .unwrap();
            let block = response_block(version, &res);
            let status_name = if version == Version::V2 {
                "status"
            } else {
                ":status"
            };
            assert_eq!(block.get(status_name).unwrap(), "404 Not Found");
            let parts = response_parts(version, &block).unwrap();
            assert_eq!(parts.status, 404);
            assert_eq!(parts.headers["content-type"], "text/plain");
        }
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        let block: HeaderBlock = [(":status", "abc")].into_iter().collect();
        assert!(response_parts(Version::V3, &block).is_err());
        let block: HeaderBlock = [(":method", "GET")].into_iter().collect();
        assert_eq!(
            request_parts(Version::V3, &block).unwrap_err(),
            HeaderError::Missing(":path")
        );
        let block: HeaderBlock = [(":method", "G E T"), (":path", "/")].into_iter().collect();
        assert!(request_parts(Version::V3, &block).is_err());
        let block: HeaderBlock = [("method", "GET"), ("url", "/"), ("x", "a\r\nb")]
            .into_iter()
            .collect();
        assert!(request_parts(Version::V2, &block).is_err());
    }
}
