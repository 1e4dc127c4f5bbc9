//! Every way the decoder rejects input, and whether the spec makes it a
//! stream error (RST_STREAM, decoding goes on) or a session error (GOAWAY,
//! the decoder stays failed). Each test names the spec section it enforces
//! (SPDY/3 numbering unless it says SPDY/2).

use bytes::BytesMut;
use spdy_proto::frame::{
    ControlType, Frame, FrameError, GoAwayStatus, Headers, Ping, RstStatus, StreamId, SynReply,
    SynStream, Unknown, Version,
};
use spdy_proto::header_block::{HeaderBlock, HeaderBlockError};
use spdy_proto::{DecodeError, DecodeLimits, FrameDecoder, FrameEncoder};

fn sid(n: u32) -> StreamId {
    StreamId::new(n).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An encoder that writes whatever header block it is given.
fn lax_encoder(version: Version) -> FrameEncoder {
    let mut encoder = FrameEncoder::new(version);
    encoder.set_validate_headers(false);
    encoder
}

fn syn(id: u32, pairs: &[(&[u8], &[u8])]) -> Frame {
    let block: HeaderBlock = pairs
        .iter()
        .map(|&(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    Frame::SynStream(SynStream::new(sid(id), block))
}

fn expect_stream_error(
    result: Result<Option<Frame>, DecodeError>,
    stream: u32,
    status: RstStatus,
) -> FrameError {
    match result {
        Err(DecodeError::Stream {
            stream_id,
            status: got,
            cause,
            ..
        }) => {
            assert_eq!(stream_id, sid(stream));
            assert_eq!(got, status, "{cause}");
            cause
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
}

fn expect_session_error(result: Result<Option<Frame>, DecodeError>) -> FrameError {
    match result {
        Err(DecodeError::Session { status, cause }) => {
            assert_eq!(status, GoAwayStatus::ProtocolError);
            cause
        }
        other => panic!("expected a session error, got {other:?}"),
    }
}

/// Encodes `bad` then a valid PING and a valid SYN_STREAM (which needs the
/// zlib context to be intact), and checks that after the stream error on
/// `bad` the next two frames still decode.
fn assert_stream_error_then_recovery(
    version: Version,
    bad: Frame,
    stream: u32,
    status: RstStatus,
) -> FrameError {
    let mut encoder = lax_encoder(version);
    let mut buf = BytesMut::new();
    encoder.encode(&bad, &mut buf).unwrap();
    encoder
        .encode(&Frame::Ping(Ping::new(2)), &mut buf)
        .unwrap();
    let good = syn(101, &[(b"x", b"after")]);
    encoder.encode(&good, &mut buf).unwrap();
    let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
    let cause = expect_stream_error(decoder.decode(&mut buf), stream, status);
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(Frame::Ping(Ping::new(2))))
    );
    assert_eq!(decoder.decode(&mut buf), Ok(Some(good)));
    assert!(buf.is_empty());
    cause
}

/// 2.6.10: "A recipient of a zero-length name MUST issue a stream error ...
/// with the status code PROTOCOL_ERROR for the stream-id."
#[test]
fn zero_length_name_is_a_stream_protocol_error() {
    for version in Version::ALL {
        let cause = assert_stream_error_then_recovery(
            version,
            syn(1, &[(b"", b"v")]),
            1,
            RstStatus::ProtocolError,
        );
        assert_eq!(cause, FrameError::HeaderBlock(HeaderBlockError::EmptyName));
    }
}

/// 2.6.10: "Duplicate header names are not allowed."
#[test]
fn duplicate_names_are_a_stream_protocol_error() {
    for version in Version::ALL {
        assert_stream_error_then_recovery(
            version,
            syn(3, &[(b"a", b"1"), (b"a", b"2")]),
            3,
            RstStatus::ProtocolError,
        );
    }
}

/// 2.6.10: header names "must be all lower case" (enforced on SPDY/3).
#[test]
fn uppercase_name_is_a_stream_protocol_error_in_v3() {
    let reply = Frame::SynReply(SynReply::new(
        sid(5),
        [("Content-Type", "text/plain")].into_iter().collect(),
    ));
    assert_stream_error_then_recovery(Version::V3, reply, 5, RstStatus::ProtocolError);
}

/// 2.6.10: "The value never starts nor ends with a NUL character ...
/// Recipients of illegal value fields MUST issue a stream error".
#[test]
fn misplaced_nul_in_value_is_a_stream_protocol_error() {
    for version in Version::ALL {
        let headers = Frame::Headers(Headers::new(
            sid(7),
            [(&b"x"[..], &b"a\0\0b"[..])].into_iter().collect(),
        ));
        assert_stream_error_then_recovery(version, headers, 7, RstStatus::ProtocolError);
    }
}

/// SPDY/2 name/value block: "The length of each name and value must be
/// greater than zero. A receiver of a zero-length name or value must send a
/// RST_STREAM with code PROTOCOL error."
#[test]
fn v2_empty_value_is_a_stream_protocol_error() {
    assert_stream_error_then_recovery(
        Version::V2,
        syn(9, &[(b"x", b"")]),
        9,
        RstStatus::ProtocolError,
    );
}

/// 2.6.3 FRAME_TOO_LARGE: a header block over our limit is refused on its
/// stream; since the block was fully inflated, the session goes on.
/// SPDY/2 has no FRAME_TOO_LARGE and gets INTERNAL_ERROR.
#[test]
fn oversized_header_block_is_a_stream_error_and_the_session_goes_on() {
    // Two 40 000-byte values: 80 000 bytes, over the 64 KiB default limit,
    // and each within SPDY/2's 16-bit lengths.
    let big = vec![b'a'; 40_000];
    for (version, status) in [
        (Version::V2, RstStatus::InternalError),
        (Version::V3, RstStatus::FrameTooLarge),
        (Version::V3_1, RstStatus::FrameTooLarge),
    ] {
        let cause = assert_stream_error_then_recovery(
            version,
            syn(11, &[(b"x", &big), (b"y", &big)]),
            11,
            status,
        );
        assert!(matches!(
            cause,
            FrameError::HeaderBlock(HeaderBlockError::TooLarge { limit: 65536 })
        ));
    }
}

/// A block that inflates far past the limit is a decompression bomb: the
/// session ends rather than spend unbounded CPU inflating it.
#[test]
fn decompression_bomb_ends_the_session() {
    let bomb = vec![b'a'; 1 << 20];
    let mut buf = BytesMut::new();
    lax_encoder(Version::V3)
        .encode(&syn(1, &[(b"x", &bomb)]), &mut buf)
        .unwrap();
    assert!(buf.len() < 8 * 1024, "compressed to {} bytes", buf.len());
    let mut decoder = FrameDecoder::new(Version::V3, DecodeLimits::default());
    let cause = expect_session_error(decoder.decode(&mut buf));
    assert!(matches!(
        cause,
        FrameError::HeaderBlock(HeaderBlockError::Bomb { .. })
    ));
}

/// 2.4.1: an error that "corrupts the session compression state" is a
/// session error, and the decoder stays failed afterwards.
#[test]
fn corrupt_zlib_data_is_a_sticky_session_error() {
    let mut buf = BytesMut::new();
    let mut encoder = FrameEncoder::new(Version::V3);
    encoder
        .encode(&syn(1, &[(b":path", b"/")]), &mut buf)
        .unwrap();
    // First deflate byte after the zlib header and dictionary id: 0xff is a
    // final block of the reserved type 3, which no inflater accepts.
    buf[8 + 10 + 6] = 0xff;
    encoder
        .encode(&Frame::Ping(Ping::new(2)), &mut buf)
        .unwrap();
    let mut decoder = FrameDecoder::new(Version::V3, DecodeLimits::default());
    let first = decoder.decode(&mut buf);
    let cause = expect_session_error(first.clone());
    assert!(matches!(
        cause,
        FrameError::HeaderBlock(HeaderBlockError::Decompress(_))
    ));
    assert!(decoder.is_failed());
    assert_eq!(decoder.decode(&mut buf), first);
}

/// A header block compressed with another version's dictionary cannot be
/// inflated: session error.
#[test]
fn wrong_dictionary_is_a_session_error() {
    let mut buf = BytesMut::new();
    // Encoded as SPDY/2 (v2 dictionary), then relabelled version 3.
    FrameEncoder::new(Version::V2)
        .encode(&syn(1, &[(b"url", b"/")]), &mut buf)
        .unwrap();
    buf[1] = 3;
    let mut decoder = FrameDecoder::new(Version::V3, DecodeLimits::default());
    let cause = expect_session_error(decoder.decode(&mut buf));
    assert!(matches!(
        cause,
        FrameError::HeaderBlock(HeaderBlockError::Decompress(_))
    ));
}

/// 2.2.1: implementations "MAY limit the maximum length frame supported".
/// An oversized control frame is refused from its header alone, before any
/// of its payload is buffered.
#[test]
fn control_frame_over_the_limit_is_refused_before_buffering() {
    let limits = DecodeLimits::default().with_max_control_frame_len(10_000);
    let mut decoder = FrameDecoder::new(Version::V3, limits);
    let mut buf = BytesMut::from(&hex("8003 0001 00 ffffff")[..]);
    let cause = expect_session_error(decoder.decode(&mut buf));
    assert_eq!(
        cause,
        FrameError::ControlFrameTooLarge {
            length: 0xff_ffff,
            max: 10_000
        }
    );
    assert!(buf.capacity() < 1024);
}

/// The spec requires accepting control frames of at least 8192 bytes, so a
/// smaller configured limit is raised to that.
#[test]
fn control_frame_limit_never_goes_below_8192() {
    let limits = DecodeLimits::default().with_max_control_frame_len(100);
    assert_eq!(limits.max_control_frame_len(), 8192);
}

/// Fixed-size frames with another length break framing: session error.
/// RST_STREAM "this value is always 8", PING "always 4 bytes long", GOAWAY
/// "always 8 bytes long" (SPDY/2: 4), WINDOW_UPDATE "always 8", NOOP (SPDY/2)
/// "the length is always 0".
#[test]
fn wrong_fixed_lengths_are_session_errors() {
    let cases = [
        (
            Version::V3,
            "8003 0003 00 000004 00000001",
            ControlType::RstStream,
        ),
        (
            Version::V3,
            "8003 0003 00 00000c 00000001 00000001 00000000",
            ControlType::RstStream,
        ),
        (
            Version::V3,
            "8003 0006 00 000008 00000001 00000000",
            ControlType::Ping,
        ),
        (Version::V2, "8002 0006 00 000000", ControlType::Ping),
        (
            Version::V3,
            "8003 0007 00 000004 00000001",
            ControlType::GoAway,
        ),
        (
            Version::V2,
            "8002 0007 00 000006 00000001 0000",
            ControlType::GoAway,
        ),
        (
            Version::V3_1,
            "8003 0009 00 000004 00000001",
            ControlType::WindowUpdate,
        ),
        (Version::V2, "8002 0005 00 000001 00", ControlType::Noop),
        (
            Version::V3,
            "8003 0001 00 000008 00000001 00000000",
            ControlType::SynStream,
        ),
        (
            Version::V3,
            "8003 0002 00 000002 0000",
            ControlType::SynReply,
        ),
        (
            Version::V2,
            "8002 0008 00 000004 00000001",
            ControlType::Headers,
        ),
    ];
    for (version, bytes, kind) in cases {
        let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
        let mut buf = BytesMut::from(&hex(bytes)[..]);
        match expect_session_error(decoder.decode(&mut buf)) {
            FrameError::BadLength { kind: got, .. } => assert_eq!(got, kind, "{bytes}"),
            other => panic!("{bytes}: {other}"),
        }
    }
}

/// 2.6.8: "The legal range for this field is 1 to 2^31 - 1". A zero delta on
/// a stream resets that stream; on stream 0 (the 3.1 session window) it is a
/// session error.
#[test]
fn zero_window_delta() {
    let mut decoder = FrameDecoder::new(Version::V3_1, DecodeLimits::default());
    let mut buf = BytesMut::from(
        &hex("8003 0009 00 000008 00000005 00000000 8003 0006 00 000004 00000002")[..],
    );
    let cause = expect_stream_error(decoder.decode(&mut buf), 5, RstStatus::ProtocolError);
    assert_eq!(cause, FrameError::ZeroWindowDelta);
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(Frame::Ping(Ping::new(2))))
    );

    let mut decoder = FrameDecoder::new(Version::V3_1, DecodeLimits::default());
    let mut buf = BytesMut::from(&hex("8003 0009 00 000008 00000000 80000000")[..]);
    assert_eq!(
        expect_session_error(decoder.decode(&mut buf)),
        FrameError::ZeroWindowDelta
    );
}

/// A DATA frame on stream 0 belongs to no stream: session error.
#[test]
fn data_on_stream_zero_is_a_session_error() {
    for version in Version::ALL {
        let mut decoder = FrameDecoder::new(version, DecodeLimits::default());
        let mut buf = BytesMut::from(&hex("00000000 00 000001 ff")[..]);
        assert_eq!(
            expect_session_error(decoder.decode(&mut buf)),
            FrameError::DataOnStreamZero
        );
    }
}

/// SPDY/2 "Protocol versioning": a SYN_STREAM with an unsupported version
/// gets RST_STREAM UNSUPPORTED_VERSION; "For any other type of control frame,
/// the frame must be ignored."
#[test]
fn other_versions_are_refused_on_syn_stream_and_ignored_otherwise() {
    let mut buf = BytesMut::new();
    FrameEncoder::new(Version::V2)
        .encode(&syn(1, &[(b"url", b"/")]), &mut buf)
        .unwrap();
    FrameEncoder::new(Version::V2)
        .encode(&Frame::Ping(Ping::new(4)), &mut buf)
        .unwrap();
    let mut encoder = FrameEncoder::new(Version::V3);
    let good = syn(3, &[(b":path", b"/")]);
    encoder.encode(&good, &mut buf).unwrap();
    let mut decoder = FrameDecoder::new(Version::V3, DecodeLimits::default());
    let cause = expect_stream_error(decoder.decode(&mut buf), 1, RstStatus::UnsupportedVersion);
    assert_eq!(
        cause,
        FrameError::VersionMismatch {
            found: 2,
            expected: Version::V3
        }
    );
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(Some(Frame::Unknown(Unknown {
            version: 2,
            kind: ControlType::Ping,
            flags: 0,
            length: 4
        })))
    );
    // The v2 block was skipped, not inflated: our v3 context still works.
    assert_eq!(decoder.decode(&mut buf), Ok(Some(good)));
}

/// A SETTINGS count that does not match the frame length is malformed.
#[test]
fn settings_count_mismatch_is_a_session_error() {
    for bytes in [
        "8003 0004 00 00000c ffffffff 00000004 00000064",
        "8003 0004 00 00000c 00000002 00000004 00000064",
        "8003 0004 00 000002 0000",
    ] {
        let mut decoder = FrameDecoder::new(Version::V3, DecodeLimits::default());
        let mut buf = BytesMut::from(&hex(bytes)[..]);
        let cause = expect_session_error(decoder.decode(&mut buf));
        assert!(
            matches!(
                cause,
                FrameError::SettingsCountMismatch { .. } | FrameError::BadLength { .. }
            ),
            "{bytes}: {cause}"
        );
    }
}

/// 2.6.9: "If the server receives an invalid CREDENTIAL frame, it MUST
/// respond with a GOAWAY frame and shutdown the session."
#[test]
fn malformed_credential_is_a_session_error() {
    for bytes in [
        "8003 000a 00 000001 00",
        "8003 000a 00 000006 0001 00000005",
        "8003 000a 00 00000a 0001 00000000 00000009",
    ] {
        let mut decoder = FrameDecoder::new(Version::V3, DecodeLimits::default());
        let mut buf = BytesMut::from(&hex(bytes)[..]);
        assert_eq!(
            expect_session_error(decoder.decode(&mut buf)),
            FrameError::BadCredential,
            "{bytes}"
        );
    }
}

/// A stream error needs a stream to reset; on stream 0 there is none, so a
/// bad header block there ends the session.
#[test]
fn stream_error_on_stream_zero_becomes_a_session_error() {
    let mut buf = BytesMut::new();
    let bad = Frame::SynStream(SynStream::new(
        StreamId::ZERO,
        [(&b""[..], &b"v"[..])].into_iter().collect(),
    ));
    lax_encoder(Version::V3).encode(&bad, &mut buf).unwrap();
    let mut decoder = FrameDecoder::new(Version::V3, DecodeLimits::default());
    let cause = expect_session_error(decoder.decode(&mut buf));
    assert_eq!(cause, FrameError::HeaderBlock(HeaderBlockError::EmptyName));
}
