//! `spdy frames`: decode a captured one-direction SPDY byte stream and print
//! each frame, the way a protocol analyser would.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::BytesMut;
use spdy_proto::frame::{Frame, Version};
use spdy_proto::{DecodeError, DecodeLimits, FrameDecoder};

// `spdy frames <2|3|3.1> [FILE]`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The SPDY version the bytes were written in: 2, 3 or 3.1.
    version: Version,
    /// The capture to decode; standard input if absent.
    file: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> ExitCode {
    let version = args.version;
    let mut input = Vec::new();
    let read = match &args.file {
        Some(path) => std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut input)),
        None => std::io::stdin().read_to_end(&mut input),
    };
    if let Err(e) = read {
        eprintln!("spdy frames: cannot read input: {e}");
        return ExitCode::FAILURE;
    }
    let mut buf = BytesMut::from(&input[..]);
    // Captures may hold frames of any size the spec allows.
    let limits = DecodeLimits::default()
        .with_max_control_frame_len(u32::MAX)
        .with_max_header_block_len(16 << 20);
    let mut decoder = FrameDecoder::new(version, limits);
    let mut count = 0usize;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                count += 1;
                println!("{}", describe(&frame));
            }
            Ok(None) => break,
            Err(err @ DecodeError::Stream { .. }) => println!("! {err}"),
            Err(err) => {
                eprintln!("spdy frames: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    if !buf.is_empty() {
        eprintln!(
            "spdy frames: input ends inside a frame ({} bytes left)",
            buf.len()
        );
        return ExitCode::FAILURE;
    }
    eprintln!("{count} frames");
    ExitCode::SUCCESS
}

fn describe(frame: &Frame) -> String {
    let headers = |block: &spdy_proto::header_block::HeaderBlock| {
        block
            .iter()
            .map(|(n, v)| {
                format!(
                    "{}: {}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(v).replace('\0', ", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match frame {
        Frame::Data(f) => format!(
            "DATA stream={} fin={} len={}",
            f.stream_id,
            f.fin,
            f.data.len()
        ),
        Frame::SynStream(f) => format!(
            "SYN_STREAM stream={} assoc={} pri={} fin={} uni={} [{}]",
            f.stream_id,
            f.associated_to,
            f.priority,
            f.fin,
            f.unidirectional,
            headers(&f.headers)
        ),
        Frame::SynReply(f) => format!(
            "SYN_REPLY stream={} fin={} [{}]",
            f.stream_id,
            f.fin,
            headers(&f.headers)
        ),
        Frame::Headers(f) => format!(
            "HEADERS stream={} fin={} [{}]",
            f.stream_id,
            f.fin,
            headers(&f.headers)
        ),
        Frame::RstStream(f) => format!("RST_STREAM stream={} status={}", f.stream_id, f.status),
        Frame::Settings(f) => {
            let entries: Vec<String> = f
                .entries
                .iter()
                .map(|e| format!("{:?}={}", e.id, e.value))
                .collect();
            format!(
                "SETTINGS clear={} [{}]",
                f.clear_persisted,
                entries.join(", ")
            )
        }
        Frame::Noop(_) => "NOOP".to_owned(),
        Frame::Ping(f) => format!("PING id={}", f.id),
        Frame::GoAway(f) => format!(
            "GOAWAY last_good={} status={}",
            f.last_good_stream_id, f.status
        ),
        Frame::WindowUpdate(f) => {
            format!("WINDOW_UPDATE stream={} delta={}", f.stream_id, f.delta)
        }
        Frame::Credential(f) => format!(
            "CREDENTIAL slot={} proof={}B certs={}",
            f.slot,
            f.proof.len(),
            f.certificates.len()
        ),
        Frame::Unknown(f) => format!(
            "(ignored) control version={} type={} flags={:#04x} len={}",
            f.version,
            f.kind.to_u16(),
            f.flags,
            f.length
        ),
    }
}
