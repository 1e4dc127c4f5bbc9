//! SPDY frames: one module per frame type, each with its byte layout for every
//! version.
//!
//! Every frame starts with the 8-byte common header ([`head`]). Control frames
//! carry a version and a type; DATA frames carry a stream id. The frame
//! modules here only know bytes: which frames are legal in which stream state
//! is the session's business, and which malformed input is a stream error or a
//! session error is decided by the [`codec`](crate::codec).

mod credential;
mod data;
mod error;
mod goaway;
pub mod head;
mod headers;
mod noop;
mod ping;
mod rst_stream;
mod settings;
mod status;
mod stream_id;
mod syn_reply;
mod syn_stream;
mod unknown;
mod version;
mod window_update;

pub use credential::Credential;
pub use data::Data;
pub use error::{EncodeError, FrameError};
pub use goaway::GoAway;
pub use head::{ControlType, Head};
pub use headers::Headers;
pub use noop::Noop;
pub use ping::Ping;
pub use rst_stream::RstStream;
pub use settings::{
    Setting, SettingId, Settings, FLAG_CLEAR_SETTINGS, FLAG_PERSISTED, FLAG_PERSIST_VALUE,
};
pub use status::{GoAwayStatus, RstStatus};
pub use stream_id::{StreamId, StreamIdTooLarge};
pub use syn_reply::SynReply;
pub use syn_stream::{SynStream, FLAG_UNIDIRECTIONAL};
pub use unknown::Unknown;
pub use version::{ParseVersionError, Version};
pub use window_update::WindowUpdate;

/// One SPDY frame, as decoded from or encoded to the wire.
///
/// A frame type that the version does not define (NOOP outside SPDY/2,
/// WINDOW_UPDATE in SPDY/2, CREDENTIAL outside SPDY/3 and 3.1, or any type
/// number no spec assigns) decodes as [`Frame::Unknown`]: the specs say a
/// receiver ignores control frames it does not understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A DATA frame (control bit 0): a piece of a stream's body.
    Data(Data),
    /// SYN_STREAM (type 1): opens a stream.
    SynStream(SynStream),
    /// SYN_REPLY (type 2): accepts a stream opened by the peer.
    SynReply(SynReply),
    /// RST_STREAM (type 3): ends a stream abnormally.
    RstStream(RstStream),
    /// SETTINGS (type 4): session parameters.
    Settings(Settings),
    /// NOOP (type 5, SPDY/2 only): does nothing.
    Noop(Noop),
    /// PING (type 6): round-trip measurement and liveness.
    Ping(Ping),
    /// GOAWAY (type 7): no new streams on this session.
    GoAway(GoAway),
    /// HEADERS (type 8): more headers (or trailers) for an open stream.
    Headers(Headers),
    /// WINDOW_UPDATE (type 9, SPDY/3 and 3.1): flow-control credit.
    WindowUpdate(WindowUpdate),
    /// CREDENTIAL (type 10, SPDY/3; deprecated in 3.1): a client certificate.
    Credential(Credential),
    /// A control frame whose type this version does not define; skipped.
    Unknown(Unknown),
}

impl Frame {
    /// The stream this frame belongs to, or `None` for session-wide frames
    /// (SETTINGS, NOOP, PING, GOAWAY, CREDENTIAL, unknown types).
    ///
    /// A WINDOW_UPDATE for stream 0 (the SPDY/3.1 session window) returns
    /// `Some(StreamId::ZERO)`.
    pub fn stream_id(&self) -> Option<StreamId> {
        match self {
            Frame::Data(f) => Some(f.stream_id),
            Frame::SynStream(f) => Some(f.stream_id),
            Frame::SynReply(f) => Some(f.stream_id),
            Frame::RstStream(f) => Some(f.stream_id),
            Frame::Headers(f) => Some(f.stream_id),
            Frame::WindowUpdate(f) => Some(f.stream_id),
            Frame::Settings(_)
            | Frame::Noop(_)
            | Frame::Ping(_)
            | Frame::GoAway(_)
            | Frame::Credential(_)
            | Frame::Unknown(_) => None,
        }
    }
}

macro_rules! impl_from_for_frame {
    ($($variant:ident),* $(,)?) => {
        $(impl From<$variant> for Frame {
            fn from(frame: $variant) -> Frame {
                Frame::$variant(frame)
            }
        })*
    };
}

impl_from_for_frame!(
    Data,
    SynStream,
    SynReply,
    RstStream,
    Settings,
    Noop,
    Ping,
    GoAway,
    Headers,
    WindowUpdate,
    Credential,
    Unknown,
);

/// Flag bit shared by DATA, SYN_STREAM, SYN_REPLY and HEADERS: the sender
/// will send nothing more on this stream (it half-closes its side).
pub const FLAG_FIN: u8 = 0x01;

/// Reads a big-endian `u32` at `at`. Callers check the length first; the
/// codec never hands a frame module a payload shorter than its fixed part.
pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Writes a control frame whose payload is `fixed` followed by a compressed
/// header block, then fills in the length. On error `dst` is left as it was.
pub(crate) fn encode_with_block(
    version: Version,
    kind: ControlType,
    flags: u8,
    fixed: &[u8],
    block: &crate::header_block::HeaderBlock,
    compressor: &mut crate::header_block::HeaderCompressor,
    dst: &mut bytes::BytesMut,
) -> Result<(), EncodeError> {
    use bytes::BufMut;
    let start = dst.len();
    dst.put_bytes(0, head::HEAD_LEN);
    dst.extend_from_slice(fixed);
    let room = head::MAX_PAYLOAD_LEN as usize - fixed.len();
    if let Err(e) = compressor.compress(block, room, dst) {
        dst.truncate(start);
        return Err(e.into());
    }
    let length = (dst.len() - start - head::HEAD_LEN) as u32;
    let mut slot = &mut dst[start..start + head::HEAD_LEN];
    Head::Control {
        version: version.wire_number(),
        kind,
        flags,
        length,
    }
    .encode(&mut slot);
    Ok(())
}
