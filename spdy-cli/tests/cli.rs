//! The `spdy` binary end to end: `spdy serve` on a temporary folder, fetched
//! with `spdy get` (and with the library client for ranges and odd paths).

use std::process::Stdio;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use spdy::Version;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::timeout;

#[path = "support/serve.rs"]
mod support;
use support::{spdy, stderr, Server, LIMIT};

/// Sizes around the server's 128 KiB read chunk and SPDY's 64 KiB window.
const SIZES: [usize; 9] = [
    0, 1, 1000, 65_535, 65_536, 131_072, 131_073, 300_000, 5_000_000,
];

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7 + i / 251) % 256) as u8)
        .collect()
}

fn folder_of_sizes() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (seed, size) in SIZES.into_iter().enumerate() {
        std::fs::write(dir.path().join(format!("f{size}.bin")), pattern(size, seed)).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_files_of_several_sizes_in_every_version() {
    let dir = folder_of_sizes();
    let server = Server::start(dir.path(), &[]).await;
    for version in ["2", "3", "3.1"] {
        for (seed, size) in SIZES.into_iter().enumerate() {
            let url = server.url(&format!("/f{size}.bin"));
            let output = spdy(&["get", "--spdy", version, &url]).await;
            assert!(output.status.success(), "{url}: {}", stderr(&output));
            assert!(
                output.stdout == pattern(size, seed),
                "SPDY/{version} {url}: {} bytes differ from the file's {size}",
                output.stdout.len()
            );
        }
        // -o writes the file (streaming) and nothing to stdout.
        let out = dir.path().join(format!("copy-{version}"));
        let url = server.url("/f5000000.bin");
        let output = spdy(&["get", "--spdy", version, &url, "-o", out.to_str().unwrap()]).await;
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(output.stdout.is_empty());
        assert!(std::fs::read(&out).unwrap() == pattern(5_000_000, SIZES.len() - 1));
    }
    let log = server.log();
    assert!(
        log.contains("GET /f5000000.bin 200 5000000"),
        "request log: {log}"
    );
    assert!(log.contains("GET /f0.bin 200 0"), "request log: {log}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_verbose() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "some notes\n").unwrap();
    std::fs::write(dir.path().join("page.html"), "<p>hi</p>").unwrap();
    let server = Server::start(dir.path(), &[]).await;

    let output = spdy(&["get", "-I", &server.url("/notes.txt")]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let head = String::from_utf8(output.stdout).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\n"), "{head}");
    for line in [
        "content-length: 11\n",
        "content-type: text/plain\n",
        "accept-ranges: bytes\n",
        "last-modified: ",
    ] {
        assert!(head.contains(line), "{line:?} missing from {head}");
    }

    let output = spdy(&["get", "-v", "--spdy", "3", &server.url("/page.html")]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"<p>hi</p>");
    let verbose = stderr(&output);
    assert!(verbose.contains("> GET /page.html"), "{verbose}");
    assert!(verbose.contains("< HTTP/1.1 200 OK"), "{verbose}");
    assert!(verbose.contains("< content-type: text/html"), "{verbose}");
    assert!(server.log().contains("HEAD /notes.txt 200 11"));
    server.stop().await;
}

async fn get(
    client: &spdy::client::Client,
    method: &str,
    url: &str,
    range: Option<&str>,
) -> (http::response::Parts, Bytes) {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    timeout(LIMIT, async {
        let response = client.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    })
    .await
    .unwrap_or_else(|_| panic!("{method} {url} timed out"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_in_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let content = pattern(1000, 9);
    std::fs::write(dir.path().join("data.bin"), &content).unwrap();
    std::fs::write(dir.path().join("big.bin"), pattern(1_000_000, 3)).unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let url = server.url("/data.bin");
    for version in Version::ALL {
        let client = timeout(
            LIMIT,
            spdy::client::Client::connect(
                &*server.addr,
                spdy::client::Builder::new().version(version),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        let cases: [(&str, u64, u64); 4] = [
            ("bytes=10-19", 10, 19),
            ("bytes=990-", 990, 999),
            ("bytes=-5", 995, 999),
            ("bytes=900-5000", 900, 999),
        ];
        for (range, first, last) in cases {
            let (parts, body) = get(&client, "GET", &url, Some(range)).await;
            assert_eq!(
                parts.status,
                StatusCode::PARTIAL_CONTENT,
                "{version} {range}"
            );
            assert_eq!(
                parts.headers["content-range"],
                format!("bytes {first}-{last}/1000")
            );
            assert_eq!(
                parts.headers["content-length"],
                (last - first + 1).to_string()
            );
            assert_eq!(body, content[first as usize..=last as usize], "{range}");
        }

        // A range deep in a file bigger than a read chunk.
        let (parts, body) = get(
            &client,
            "GET",
            &server.url("/big.bin"),
            Some("bytes=700000-999999"),
        )
        .await;
        assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
        assert!(body[..] == pattern(1_000_000, 3)[700_000..]);

        for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
            let (parts, body) = get(&client, "GET", &url, Some(range)).await;
            assert_eq!(parts.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(parts.headers["content-range"], "bytes */1000");
            assert!(body.is_empty());
        }

        // Several ranges: the whole file, 200.
        let (parts, body) = get(&client, "GET", &url, Some("bytes=0-1,5-6")).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, content);

        let (parts, body) = get(&client, "HEAD", &url, Some("bytes=0-99")).await;
        assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(parts.headers["content-length"], "100");
        assert!(body.is_empty());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_and_paths_outside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("site")).unwrap();
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    std::fs::write(root.join("site/index.html"), "<h1>site</h1>").unwrap();
    std::fs::write(root.join("a&b.txt"), "ab").unwrap();
    std::fs::write(dir.path().join("beside"), "beside the root").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("link-out")).unwrap();
        std::os::unix::fs::symlink(root.join("a&b.txt"), root.join("link-in")).unwrap();
    }
    let server = Server::start(&root, &[]).await;
    let client = timeout(
        LIMIT,
        spdy::client::Client::connect(
            &*server.addr,
            spdy::client::Builder::new().version(Version::V3_1),
        ),
    )
    .await
    .unwrap()
    .unwrap();

    let (parts, body) = get(&client, "GET", &server.url("/"), None).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "text/html; charset=utf-8");
    let page = String::from_utf8(body.to_vec()).unwrap();
    assert!(page.contains("<a href=\"site/\">site/</a>"), "{page}");
    assert!(page.contains("<a href=\"empty%20dir/\">"), "{page}");
    assert!(
        page.contains("<a href=\"a%26b.txt\">a&amp;b.txt</a>"),
        "{page}"
    );

    let (parts, body) = get(&client, "GET", &server.url("/site/"), None).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers["content-type"], "text/html");
    assert_eq!(body, "<h1>site</h1>");

    let (parts, _) = get(&client, "GET", &server.url("/site"), None).await;
    assert_eq!(parts.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(parts.headers["location"], "/site/");

    let (parts, body) = get(&client, "GET", &server.url("/empty%20dir/"), None).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("<a href=\"../\">"));

    let (parts, body) = get(&client, "GET", &server.url("/a%26b.txt"), None).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, "ab");

    for path in [
        "/../beside",
        "/site/../../beside",
        "/%2e%2e/beside",
        "/site/%2E%2E/%2e%2e/beside",
    ] {
        let (parts, body) = get(&client, "GET", &server.url(path), None).await;
        assert_eq!(parts.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!body.starts_with(b"beside"));
    }
    for path in ["/..%2fbeside", "/%2fetc%2fpasswd"] {
        let (parts, _) = get(&client, "GET", &server.url(path), None).await;
        assert_eq!(parts.status, StatusCode::BAD_REQUEST, "{path}");
    }
    #[cfg(unix)]
    {
        let (parts, body) = get(&client, "GET", &server.url("/link-out"), None).await;
        assert_eq!(parts.status, StatusCode::FORBIDDEN);
        assert_ne!(body, "secret");
        let (parts, body) = get(&client, "GET", &server.url("/link-in"), None).await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "ab");
    }
    let (parts, _) = get(&client, "GET", &server.url("/missing"), None).await;
    assert_eq!(parts.status, StatusCode::NOT_FOUND);
    let (parts, _) = get(&client, "POST", &server.url("/a%26b.txt"), None).await;
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(parts.headers["allow"], "GET, HEAD");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_non_zero_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("here"), "here").unwrap();
    let server = Server::start(dir.path(), &[]).await;

    let out = dir.path().join("out");
    let output = spdy(&["get", &server.url("/not-here"), "-o", out.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(22), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("404 Not Found"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists(), "no output file for an HTTP error");
    server.stop().await;

    // A port nobody listens on (just freed by us).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let output = spdy(&["get", &format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("connection refused"),
        "{}",
        stderr(&output)
    );

    // https:// is TLS now (tests/tls.rs): the same refusal.
    let output = spdy(&["get", "-k", &format!("https://127.0.0.1:{port}/")]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("connection refused"),
        "{}",
        stderr(&output)
    );

    let output = spdy(&["get", "--spdy", "4", "http://127.0.0.1:1/"]).await;
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_one_version_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("v"), "two").unwrap();
    let server = Server::start(dir.path(), &["--spdy", "2"]).await;
    let output = spdy(&["get", "--spdy", "2", &server.url("/v")]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"two");
    assert!(server.log().contains("(SPDY/2)"), "{}", server.log());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_and_version_still_work() {
    let output = spdy(&["version"]).await;
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("spdy {}\n", env!("CARGO_PKG_VERSION"))
    );

    // A SPDY/3 PING with id 1, from a file and from stdin.
    let ping = [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture.bin");
    std::fs::write(&capture, ping).unwrap();
    let output = spdy(&["frames", "3.1", capture.to_str().unwrap()]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"PING id=1\n");

    let mut child = Command::new(env!("CARGO_BIN_EXE_spdy"))
        .args(["frames", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&ping).await.unwrap();
    drop(stdin);
    let output = timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(output.stdout, b"PING id=1\n");
    assert!(stderr(&output).contains("1 frames"));

    let output = spdy(&["frames", "4"]).await;
    assert_eq!(output.status.code(), Some(2));
}

/// A raw SPDY server (the library's stream API) that misbehaves on purpose:
/// `/refuse` is refused with REFUSED_STREAM; anything else gets a reply
/// promising 100 bytes, 10 bytes, and then RST_STREAM INTERNAL_ERROR.
async fn misbehaving_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (handle, connection) = spdy::handshake_detect(tcp, spdy::Config::default());
                tokio::spawn(connection);
                while let Some(incoming) = handle.accept().await {
                    let v2 = handle.version() == Some(Version::V2);
                    let path = incoming.headers.get(if v2 { "url" } else { ":path" });
                    if path.is_some_and(|p| &p[..] == b"/refuse") {
                        let _ = incoming.refuse(spdy::RstStatus::RefusedStream);
                        continue;
                    }
                    let (status, version) = if v2 {
                        ("status", "version")
                    } else {
                        (":status", ":version")
                    };
                    let reply: spdy::proto::header_block::HeaderBlock = [
                        (status, "200 OK"),
                        (version, "HTTP/1.1"),
                        ("content-length", "100"),
                    ]
                    .into_iter()
                    .collect();
                    let Ok((mut send, _recv)) = incoming.reply(reply, false) else {
                        continue;
                    };
                    if send.write(Bytes::from_static(&[7; 10])).await.is_ok() {
                        let _ = send.reset(spdy::RstStatus::InternalError);
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_are_reported_with_their_status() {
    let addr = misbehaving_server().await;
    for version in ["2", "3", "3.1"] {
        let output = spdy(&["get", "--spdy", version, &format!("http://{addr}/refuse")]).await;
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("REFUSED_STREAM"),
            "{}",
            stderr(&output)
        );

        let output = spdy(&["get", "--spdy", version, &format!("http://{addr}/cut")]).await;
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("reset by peer (INTERNAL_ERROR)"),
            "{}",
            stderr(&output)
        );
    }
}

// ===== spdy bench =====

/// `spdy bench --json`'s report, and the exit code.
async fn bench(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["bench", "--json"];
    all.extend_from_slice(args);
    let output = spdy(&all).await;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}; stderr: {}", stderr(&output)));
    (output.status.code(), report, stderr(&output))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_counts_every_request_and_byte() {
    let dir = folder_of_sizes();
    let server = Server::start(dir.path(), &[]).await;
    let url = format!("http://{}/f65536.bin", server.addr);
    for version in ["2", "3", "3.1"] {
        let args = ["--spdy", version, "-n", "300", "-c", "2", "-m", "8", &url];
        let (code, report, err) = bench(&args).await;
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(report["version"], version);
        assert_eq!(report["completed"], 300, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        assert_eq!(report["body_bytes"], 300 * 65536, "{report}");
        assert_eq!(report["statuses"], serde_json::json!({"200": 300}));
        let latency = &report["latency_ms"];
        let (p50, max) = (
            latency["p50"].as_f64().unwrap(),
            latency["max"].as_f64().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= max, "{report}");
    }
    // HEAD: no body; a missing file: its status, and no failure.
    let (code, report, err) = bench(&["-I", "-n", "20", &url]).await;
    assert_eq!((code, &report["body_bytes"]), (Some(0), &0.into()), "{err}");
    let missing = format!("http://{}/missing", server.addr);
    let (code, report, err) = bench(&["-n", "20", &missing]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["statuses"], serde_json::json!({"404": 20}));
    // For a duration: it stops sending then, and waits for those in flight.
    let (code, report, err) = bench(&["-d", "0.3", "-m", "4", &url]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(report["completed"].as_u64().unwrap() > 0, "{report}");
    assert!(report["seconds"].as_f64().unwrap() >= 0.3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_failures_by_cause() {
    let addr = misbehaving_server().await;
    // Every body is cut by RST_STREAM INTERNAL_ERROR: 50 failures, the
    // connection goes on.
    let url = format!("http://{addr}/cut");
    let (code, report, err) = bench(&["-n", "50", "-m", "5", &url]).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(report["completed"], 0, "{report}");
    assert_eq!(report["failed"], 50, "{report}");
    assert_eq!(
        report["failures"],
        serde_json::json!({"reset by peer (INTERNAL_ERROR)": 50})
    );
    // A server that hangs up at once: its connection's slots stop (no
    // spinning through the budget), each failure counted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hangs_up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
    });
    let url = format!("http://{hangs_up}/");
    let (code, report, err) = bench(&["-n", "1000", "-m", "5", &url]).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(report["completed"], 0, "{report}");
    let failed = report["failed"].as_u64().unwrap();
    assert!((1..=5).contains(&failed), "{report}");
    // A server that reads and never answers: each request times out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            connections.push(tcp);
        }
    });
    let url = format!("http://{silent}/");
    let (code, report, err) = bench(&["-n", "3", "-m", "3", "--timeout", "0.2", &url]).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        report["failures"],
        serde_json::json!({"timed out after 200ms": 3})
    );
    // Nothing listening: no report, the cause, exit 1.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let output = spdy(&["bench", "-n", "5", &format!("http://{closed}/")]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("connection refused"),
        "{}",
        stderr(&output)
    );
    // Bad usage.
    for bad in [&["-c", "0"][..], &["-m", "5000"], &["--timeout", "0"]] {
        let mut args = vec!["bench"];
        args.extend_from_slice(bad);
        let url = format!("http://{addr}/");
        args.push(&url);
        let output = spdy(&args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            stderr(&output)
        );
    }
}

/// SIGTERM: the server stops accepting, sends GOAWAY, lets the download
/// in flight finish, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_cleanly_on_sigterm() {
    let dir = folder_of_sizes();
    let mut server = Server::start(dir.path(), &[]).await;
    let client = spdy::client::Client::connect(
        &*server.addr,
        spdy::client::Builder::new().version(Version::V3_1),
    )
    .await
    .unwrap();
    let url = format!("http://{}/f5000000.bin", server.addr);
    let request = Request::get(&url).body(Empty::<Bytes>::new()).unwrap();
    let response = timeout(LIMIT, client.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let mut body = response.into_body();
    // The download has started...
    let first = timeout(LIMIT, body.data()).await.unwrap().unwrap().unwrap();
    server.terminate();
    // ...and ends whole.
    let mut received = first.to_vec();
    while let Some(chunk) = timeout(LIMIT, body.data()).await.unwrap() {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert!(received == pattern(5_000_000, 8), "the download differs");
    drop(client);
    let status = timeout(LIMIT, server.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "{}", server.log.lock().unwrap());
    assert!(server.log.lock().unwrap().contains("stopping"));
}
