//! Interoperability with an independent SPDY implementation: the framer and
//! parser of node-spdy's `spdy-transport` (npm `spdy@4.0.2`, pinned in
//! `interop/package.json`). The scripts in `interop/` turn frames into a
//! common JSON form (documented in `interop/README.md`).
//!
//! - node → Rust: spdy-transport encodes a sequence of every frame type it
//!   writes, header blocks sharing one zlib stream; our decoder must read the
//!   same fields.
//! - Rust → node: our encoder writes every frame type of the version;
//!   spdy-transport's parser must read the same fields.
//!
//! Needs Node.js and `npm ci --prefix interop` (the README's test command
//! runs it). Without them these tests fail with a message saying so: they
//! never pass by skipping.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use spdy_proto::frame::{
    Data, Frame, GoAway, GoAwayStatus, Headers, Ping, RstStatus, RstStream, Setting, SettingId,
    Settings, StreamId, SynReply, SynStream, Version, WindowUpdate,
};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::{DecodeLimits, FrameDecoder, FrameEncoder};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// Runs `node interop/<script> <version> [args]` with `stdin`, returning its
/// parsed JSON output.
fn node(script: &str, version: Version, args: &[&str], stdin: Option<&str>) -> Value {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/spdy/package.json").exists(),
        "node-spdy is not installed: run `npm ci --prefix interop` (see README.md)"
    );
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .arg(version.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run `node`: Node.js 18+ is needed for the interop tests");
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{script} {version}: bad JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "{script} {version} failed: {value}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    value
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn headers_json(block: &HeaderBlock) -> Value {
    let mut pairs: Vec<(String, String)> = block
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    pairs.sort();
    Value::from(
        pairs
            .into_iter()
            .map(|(n, v)| json!([n, v]))
            .collect::<Vec<_>>(),
    )
}

/// Our frame in the interop JSON form.
fn normalize(version: Version, frame: &Frame) -> Value {
    match frame {
        Frame::Data(f) => json!({"type": "DATA", "stream_id": f.stream_id.value(), "fin": f.fin,
            "data_hex": to_hex(&f.data)}),
        Frame::SynStream(f) => json!({"type": "SYN_STREAM", "stream_id": f.stream_id.value(),
            "associated_id": f.associated_to.value(), "priority": f.priority, "fin": f.fin,
            "unidirectional": f.unidirectional, "headers": headers_json(&f.headers)}),
        Frame::SynReply(f) => json!({"type": "SYN_REPLY", "stream_id": f.stream_id.value(),
            "fin": f.fin, "headers": headers_json(&f.headers)}),
        Frame::Headers(f) => json!({"type": "HEADERS", "stream_id": f.stream_id.value(),
            "fin": f.fin, "headers": headers_json(&f.headers)}),
        Frame::RstStream(f) => json!({"type": "RST_STREAM", "stream_id": f.stream_id.value(),
            "status": f.status.to_u32()}),
        Frame::Settings(f) => json!({"type": "SETTINGS", "clear": f.clear_persisted,
            "entries": f.entries.iter().map(|e| json!({"id": e.id.to_u32(), "value": e.value,
                "persist": e.persist_value, "persisted": e.persisted})).collect::<Vec<_>>()}),
        Frame::Ping(f) => json!({"type": "PING", "id": f.id}),
        Frame::GoAway(f) => json!({"type": "GOAWAY",
            "last_good_stream_id": f.last_good_stream_id.value(),
            "status": if version == Version::V2 { Value::Null } else { json!(f.status.to_u32()) }}),
        Frame::WindowUpdate(f) => json!({"type": "WINDOW_UPDATE",
            "stream_id": f.stream_id.value(), "delta": f.delta}),
        other => json!({"type": format!("{other:?}")}),
    }
}

/// node encodes, we decode.
fn node_to_rust(version: Version, compression: &str) {
    let doc = node("encode.js", version, &[compression], None);
    let entries = doc["frames"].as_array().unwrap();
    assert!(
        entries.len() > 20,
        "{version}: only {} frames",
        entries.len()
    );
    // One stream: every frame's bytes in order through one decoder, so the
    // header blocks share one zlib context as on a real connection.
    let mut buf = BytesMut::new();
    for entry in entries {
        buf.extend_from_slice(&from_hex(entry["hex"].as_str().unwrap()));
    }
    let limits = DecodeLimits::default().with_data_piece_len(usize::MAX);
    let mut decoder = FrameDecoder::new(version, limits);
    for (i, entry) in entries.iter().enumerate() {
        let frame = decoder
            .decode(&mut buf)
            .unwrap_or_else(|e| panic!("{version} frame #{i}: {e}"))
            .unwrap_or_else(|| panic!("{version} frame #{i}: incomplete"));
        assert_eq!(
            normalize(version, &frame),
            entry["frame"],
            "{version} {compression} frame #{i}"
        );
    }
    assert!(buf.is_empty(), "{version}: {} bytes left", buf.len());
}

#[test]
fn node_encodes_rust_decodes_v2() {
    node_to_rust(Version::V2, "--header-compression=on");
    node_to_rust(Version::V2, "--header-compression=off");
}

#[test]
fn node_encodes_rust_decodes_v3() {
    node_to_rust(Version::V3, "--header-compression=on");
    node_to_rust(Version::V3, "--header-compression=off");
}

#[test]
fn node_encodes_rust_decodes_v3_1() {
    node_to_rust(Version::V3_1, "--header-compression=on");
    node_to_rust(Version::V3_1, "--header-compression=off");
}

fn sid(n: u32) -> StreamId {
    StreamId::new(n).unwrap()
}

fn block(pairs: &[(&str, &str)]) -> HeaderBlock {
    pairs
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// Every frame type spdy-transport can read in `version`, in an order a real
/// session could produce, with enough header frames to exercise the shared
/// compression context.
///
/// Left out, because of known spdy-transport defects (interop/README.md):
/// SETTINGS entries with FLAG_PERSISTED (it misreads the rest of the frame),
/// HEADERS with FIN (its parser drops the flag, checked separately below),
/// and the SPDY/2 GOAWAY, whose spec length of 4 its parser rejects.
fn rust_sequence(version: Version) -> Vec<Frame> {
    let v2 = version == Version::V2;
    let (method, path, ver, host, scheme, status) = if v2 {
        ("method", "url", "version", "host", "scheme", "status")
    } else {
        (
            ":method", ":path", ":version", ":host", ":scheme", ":status",
        )
    };
    let request = |p: &str| {
        block(&[
            (method, "GET"),
            (path, p),
            (ver, "HTTP/1.1"),
            (host, "example.com"),
            (scheme, "https"),
            ("user-agent", "spdy-rs interop"),
            ("accept", "*/*"),
        ])
    };
    let low = SynStream::lowest_priority(version);
    let mut frames = vec![
        Frame::Settings(Settings::new(vec![
            Setting::new(SettingId::MaxConcurrentStreams, 100),
            Setting::new(SettingId::InitialWindowSize, 1 << 20),
            Setting::new(SettingId::RoundTripTime, 42),
        ])),
        Frame::Ping(Ping::new(1)),
        Frame::SynStream(SynStream {
            priority: 0,
            fin: true,
            ..SynStream::new(sid(1), request("/"))
        }),
        Frame::SynStream(SynStream {
            priority: low,
            ..SynStream::new(sid(3), request("/upload?x=1"))
        }),
        Frame::SynReply(SynReply::new(
            sid(1),
            block(&[
                (status, "200 OK"),
                (ver, "HTTP/1.1"),
                ("content-type", "text/plain"),
                ("set-cookie", "a=1\0b=2"),
            ]),
        )),
        Frame::SynStream(SynStream {
            associated_to: sid(1),
            unidirectional: true,
            priority: 1,
            ..SynStream::new(
                sid(2),
                block(&[
                    (status, "200 OK"),
                    (ver, "HTTP/1.1"),
                    (path, "/pushed.css"),
                    (host, "example.com"),
                    (scheme, "https"),
                    (method, "GET"),
                ]),
            )
        }),
        Frame::Headers(Headers::new(sid(1), block(&[("x-trailer", "yes")]))),
        Frame::Data(Data::new(sid(1), &b"hello"[..], false)),
        Frame::Data(Data::new(sid(1), Bytes::from(vec![0xa5; 20_000]), false)),
        Frame::Data(Data::new(sid(1), Bytes::new(), true)),
        Frame::SynStream(SynStream::new(sid(5), request("/again"))),
        Frame::RstStream(RstStream::new(sid(5), RstStatus::Cancel)),
        Frame::RstStream(RstStream::new(sid(3), RstStatus::RefusedStream)),
        Frame::Ping(Ping::new(0xffff_fffe)),
    ];
    if !v2 {
        frames.push(Frame::WindowUpdate(WindowUpdate::new(sid(1), 65536)));
        frames.push(Frame::RstStream(RstStream::new(
            sid(7),
            RstStatus::FrameTooLarge,
        )));
        frames.push(Frame::GoAway(GoAway::new(
            sid(3),
            GoAwayStatus::InternalError,
        )));
    }
    if version == Version::V3_1 {
        frames.push(Frame::WindowUpdate(WindowUpdate::new(
            StreamId::ZERO,
            1 << 20,
        )));
    }
    frames
}

fn node_decode(version: Version, frames: &[Frame]) -> Value {
    let mut encoder = FrameEncoder::new(version);
    let mut wire = BytesMut::new();
    for frame in frames {
        encoder.encode(frame, &mut wire).unwrap();
    }
    let input = json!({ "hex": to_hex(&wire) }).to_string();
    node("decode.js", version, &[], Some(&input))
}

/// We encode, node decodes.
fn rust_to_node(version: Version) {
    let frames = rust_sequence(version);
    let doc = node_decode(version, &frames);
    let decoded = doc["frames"].as_array().unwrap();
    assert_eq!(decoded.len(), frames.len(), "{version}: {doc}");
    for (i, (ours, theirs)) in frames.iter().zip(decoded).enumerate() {
        assert_eq!(&normalize(version, ours), theirs, "{version} frame #{i}");
    }
}

#[test]
fn rust_encodes_node_decodes_v2() {
    rust_to_node(Version::V2);
}

#[test]
fn rust_encodes_node_decodes_v3() {
    rust_to_node(Version::V3);
}

#[test]
fn rust_encodes_node_decodes_v3_1() {
    rust_to_node(Version::V3_1);
}

/// The HEADERS FIN bit reaches the wire (decode.js reports the wire bit and a
/// warning that spdy-transport's parser itself ignores it).
#[test]
fn headers_fin_reaches_the_wire() {
    for version in Version::ALL {
        let frames = vec![Frame::Headers(Headers {
            fin: true,
            ..Headers::new(sid(1), block(&[("x-done", "1")]))
        })];
        let doc = node_decode(version, &frames);
        assert_eq!(
            doc["frames"][0],
            normalize(version, &frames[0]),
            "{version}"
        );
        assert!(
            doc["warnings"].to_string().contains("fin"),
            "{version}: {doc}"
        );
    }
}
