use bytes::{Buf, BytesMut};

use super::DecodeError;
use crate::frame::head::{ControlType, Head, HEAD_LEN, MAX_PAYLOAD_LEN};
use crate::frame::{
    read_u32, Credential, Data, Frame, FrameError, GoAway, GoAwayStatus, Headers, Noop, Ping,
    RstStatus, RstStream, Settings, StreamId, SynReply, SynStream, Unknown, Version, WindowUpdate,
    FLAG_FIN,
};
use crate::header_block::{HeaderBlockError, HeaderDecompressor};

/// The smallest control frame every implementation must accept (SPDY/3
/// section 2.2.1: "all implementations MUST be able to receive control frames
/// of at least 8192 octets in length").
pub const MIN_CONTROL_FRAME_LEN: u32 = 8192;

/// Limits on what a [`FrameDecoder`] buffers for a peer. The peer controls
/// every length field, so each is capped here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    max_control_frame_len: u32,
    max_header_block_len: usize,
    data_piece_len: usize,
}

impl Default for DecodeLimits {
    /// 64 KiB control frames, 64 KiB decompressed header blocks, and DATA
    /// delivered in pieces once 16 KiB of a frame are buffered.
    fn default() -> DecodeLimits {
        DecodeLimits {
            max_control_frame_len: 64 * 1024,
            max_header_block_len: 64 * 1024,
            data_piece_len: 16 * 1024,
        }
    }
}

impl DecodeLimits {
    /// Largest control frame payload accepted; a longer one is a session
    /// error. Clamped to 8192 ..= 2^24 - 1 (the spec's minimum and the
    /// field's maximum).
    pub fn with_max_control_frame_len(mut self, len: u32) -> DecodeLimits {
        self.max_control_frame_len = len.clamp(MIN_CONTROL_FRAME_LEN, MAX_PAYLOAD_LEN);
        self
    }

    /// Largest header block accepted once *decompressed*. A bigger block is
    /// still inflated, to keep the zlib context in step, and its stream is
    /// refused with FRAME_TOO_LARGE; a block inflating past four times this
    /// size ends the session (decompression bomb).
    pub fn with_max_header_block_len(mut self, len: usize) -> DecodeLimits {
        self.max_header_block_len = len;
        self
    }

    /// How much of an unfinished DATA frame must be buffered before it is
    /// handed out as a piece. DATA frames may be up to 16 MiB long; handing
    /// them out in pieces means the read buffer never has to hold one whole.
    /// At least 1.
    pub fn with_data_piece_len(mut self, len: usize) -> DecodeLimits {
        self.data_piece_len = len.max(1);
        self
    }

    /// See [`with_max_control_frame_len`](Self::with_max_control_frame_len).
    pub fn max_control_frame_len(&self) -> u32 {
        self.max_control_frame_len
    }

    /// See [`with_max_header_block_len`](Self::with_max_header_block_len).
    pub fn max_header_block_len(&self) -> usize {
        self.max_header_block_len
    }

    /// See [`with_data_piece_len`](Self::with_data_piece_len).
    pub fn data_piece_len(&self) -> usize {
        self.data_piece_len
    }
}

#[derive(Debug)]
enum State {
    /// Waiting for the 8-byte header of the next frame.
    Head,
    /// Inside a DATA frame whose header has been read.
    Data {
        stream_id: StreamId,
        remaining: usize,
        fin: bool,
    },
    /// Discarding the payload of a frame that is ignored.
    Skip { remaining: usize },
    /// A session error happened; nothing more can be decoded.
    Failed(DecodeError),
}

/// Reads frames of one SPDY version out of a byte buffer.
///
/// Feed it the bytes received so far; each call to [`decode`](Self::decode)
/// takes at most one frame off the front of the buffer. The decoder owns the
/// receiving zlib stream of the session, so one decoder serves one direction
/// of one session, for its whole life.
///
/// Memory: a control frame is buffered whole, up to
/// [`DecodeLimits::max_control_frame_len`]; DATA frames and ignored frames
/// are never buffered beyond what has arrived.
#[derive(Debug)]
pub struct FrameDecoder {
    version: Version,
    limits: DecodeLimits,
    headers: HeaderDecompressor,
    state: State,
}

impl FrameDecoder {
    /// A decoder for a session of `version`.
    pub fn new(version: Version, limits: DecodeLimits) -> FrameDecoder {
        FrameDecoder {
            version,
            limits,
            headers: HeaderDecompressor::new(version, limits.max_header_block_len),
            state: State::Head,
        }
    }

    /// The session's version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The limits in force.
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Whether a frame's header has been read and some of its payload is
    /// still to come (a DATA frame, or one being skipped): bytes of it are
    /// delivered as they arrive, so the buffer alone does not tell.
    pub fn is_mid_frame(&self) -> bool {
        matches!(self.state, State::Data { .. } | State::Skip { .. })
    }

    /// The DATA frame being received, if its header has been read and its
    /// payload has not all arrived: its stream, the payload bytes still to
    /// come, and its FIN flag.
    pub fn data_in_progress(&self) -> Option<(StreamId, usize, bool)> {
        match self.state {
            State::Data {
                stream_id,
                remaining,
                fin,
            } => Some((stream_id, remaining, fin)),
            _ => None,
        }
    }

    /// Discards the rest of the DATA frame being received as it arrives,
    /// instead of handing it out: for a frame its reader has already
    /// answered (a stream that does not exist), so that its payload is
    /// neither waited for nor buffered.
    pub fn skip_data(&mut self) {
        if let State::Data { remaining, .. } = self.state {
            self.state = State::Skip { remaining };
        }
    }

    /// Whether a session error stopped the decoder for good.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Decodes the next frame from the front of `buf`.
    ///
    /// - `Ok(None)`: more bytes are needed; everything usable was consumed.
    /// - `Ok(Some(frame))`: one frame (or one piece of a long DATA frame).
    /// - `Err(DecodeError::Stream { .. })`: the frame was consumed and its
    ///   stream must be reset; call again for the next frame.
    /// - `Err(DecodeError::Session { .. })`: the session must end; every
    ///   later call returns the same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            match self.state {
                State::Failed(ref err) => return Err(err.clone()),
                State::Skip { remaining } => {
                    let n = remaining.min(buf.len());
                    buf.advance(n);
                    if n < remaining {
                        self.state = State::Skip {
                            remaining: remaining - n,
                        };
                        return Ok(None);
                    }
                    self.state = State::Head;
                }
                State::Data {
                    stream_id,
                    remaining,
                    fin,
                } => {
                    if buf.len() >= remaining {
                        self.state = State::Head;
                        let data = buf.split_to(remaining).freeze();
                        return Ok(Some(Frame::Data(Data {
                            stream_id,
                            fin,
                            data,
                        })));
                    }
                    if buf.len() < self.limits.data_piece_len {
                        return Ok(None);
                    }
                    let data = buf.split().freeze();
                    self.state = State::Data {
                        stream_id,
                        remaining: remaining - data.len(),
                        fin,
                    };
                    return Ok(Some(Frame::Data(Data {
                        stream_id,
                        fin: false,
                        data,
                    })));
                }
                State::Head => {
                    let Some(bytes) = buf.first_chunk::<HEAD_LEN>() else {
                        return Ok(None);
                    };
                    match Head::parse(bytes) {
                        Head::Data {
                            stream_id,
                            flags,
                            length,
                        } => {
                            if stream_id.is_zero() {
                                return Err(self.session_error(FrameError::DataOnStreamZero));
                            }
                            buf.advance(HEAD_LEN);
                            self.state = State::Data {
                                stream_id,
                                remaining: length as usize,
                                fin: flags & FLAG_FIN != 0,
                            };
                        }
                        Head::Control {
                            version,
                            kind,
                            flags,
                            length,
                        } => return self.decode_control(buf, version, kind, flags, length),
                    }
                }
            }
        }
    }

    fn decode_control(
        &mut self,
        buf: &mut BytesMut,
        version: u16,
        kind: ControlType,
        flags: u8,
        length: u32,
    ) -> Result<Option<Frame>, DecodeError> {
        let len = length as usize;
        if version != self.version.wire_number() {
            return self.wrong_version(buf, version, kind, flags, length);
        }
        if !self.is_defined(kind) {
            return Ok(Some(self.skip(buf, version, kind, flags, length)));
        }
        if length > self.limits.max_control_frame_len {
            return Err(self.session_error(FrameError::ControlFrameTooLarge {
                length,
                max: self.limits.max_control_frame_len,
            }));
        }
        if buf.len() < HEAD_LEN + len {
            buf.reserve(HEAD_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(HEAD_LEN);
        let payload = buf.split_to(len).freeze();
        let v = self.version;
        let result = match kind {
            ControlType::SynStream => {
                SynStream::decode(v, flags, &payload, &mut self.headers).map(Frame::SynStream)
            }
            ControlType::SynReply => {
                SynReply::decode(v, flags, &payload, &mut self.headers).map(Frame::SynReply)
            }
            ControlType::Headers => {
                Headers::decode(v, flags, &payload, &mut self.headers).map(Frame::Headers)
            }
            ControlType::RstStream => RstStream::decode(&payload).map(Frame::RstStream),
            ControlType::Settings => Settings::decode(v, flags, &payload).map(Frame::Settings),
            ControlType::Noop => Noop::decode(&payload).map(Frame::Noop),
            ControlType::Ping => Ping::decode(&payload).map(Frame::Ping),
            ControlType::GoAway => GoAway::decode(v, &payload).map(Frame::GoAway),
            ControlType::WindowUpdate => WindowUpdate::decode(&payload).map(Frame::WindowUpdate),
            ControlType::Credential => Credential::decode(payload.clone()).map(Frame::Credential),
            // Turned away by `is_defined` above; reported as ignored anyway.
            ControlType::Unknown(_) => Ok(Frame::Unknown(Unknown {
                version,
                kind,
                flags,
                length,
            })),
        };
        result
            .map(Some)
            .map_err(|cause| self.classify(kind, &payload, cause))
    }

    /// Whether `kind` exists in this session's version. CREDENTIAL is read
    /// in 3.1 too, since 3 and 3.1 cannot be told apart on the wire.
    fn is_defined(&self, kind: ControlType) -> bool {
        match kind {
            ControlType::Noop => self.version == Version::V2,
            ControlType::WindowUpdate | ControlType::Credential => self.version != Version::V2,
            ControlType::Unknown(_) => false,
            _ => true,
        }
    }

    /// SPDY/2, "Protocol versioning": "If an endpoint receives a SYN_STREAM
    /// frame with an unsupported version, the endpoint must return a
    /// RST_STREAM frame with the status code UNSUPPORTED_VERSION. For any
    /// other type of control frame, the frame must be ignored." The block of
    /// such a SYN_STREAM belongs to another compression context, so it is
    /// skipped, not inflated.
    fn wrong_version(
        &mut self,
        buf: &mut BytesMut,
        version: u16,
        kind: ControlType,
        flags: u8,
        length: u32,
    ) -> Result<Option<Frame>, DecodeError> {
        if kind != ControlType::SynStream {
            return Ok(Some(self.skip(buf, version, kind, flags, length)));
        }
        let cause = FrameError::VersionMismatch {
            found: version,
            expected: self.version,
        };
        if length < 4 {
            return Err(self.session_error(cause));
        }
        let Some(id) = read_u32(buf, HEAD_LEN) else {
            return Ok(None);
        };
        let stream_id = StreamId::from_wire(id);
        if stream_id.is_zero() {
            return Err(self.session_error(cause));
        }
        buf.advance(HEAD_LEN);
        self.state = State::Skip {
            remaining: length as usize,
        };
        Err(DecodeError::Stream {
            stream_id,
            status: RstStatus::UnsupportedVersion,
            kind,
            cause,
        })
    }

    /// Starts skipping an ignored frame's payload and reports its header.
    fn skip(
        &mut self,
        buf: &mut BytesMut,
        version: u16,
        kind: ControlType,
        flags: u8,
        length: u32,
    ) -> Frame {
        buf.advance(HEAD_LEN);
        self.state = State::Skip {
            remaining: length as usize,
        };
        Frame::Unknown(Unknown {
            version,
            kind,
            flags,
            length,
        })
    }

    /// The one place that decides, for every decoding failure, between a
    /// stream error and a session error.
    ///
    /// Stream errors (SPDY/3 section 2.4.2) are problems confined to one
    /// stream when framing and the compression context are intact: a
    /// well-formed, fully inflated header block whose names or values break
    /// the rules (PROTOCOL_ERROR, per section 2.6.10), a block over our size
    /// limit (FRAME_TOO_LARGE, section 2.6.3), a WINDOW_UPDATE for a stream
    /// with a zero delta. Everything else breaks framing or compression and
    /// is a session error (section 2.4.1: "any error which prevents further
    /// processing of the framing layer or which corrupts the session
    /// compression state"): a block that fails to inflate, does not end with
    /// the SYNC_FLUSH every block ends with (2.6.10.1), or whose counts do
    /// not match its bytes ([`HeaderBlockError::breaks_session`]).
    fn classify(&mut self, kind: ControlType, payload: &[u8], cause: FrameError) -> DecodeError {
        let stream_id = match kind {
            ControlType::SynStream
            | ControlType::SynReply
            | ControlType::Headers
            | ControlType::WindowUpdate => read_u32(payload, 0).map(StreamId::from_wire),
            _ => None,
        };
        let status = match &cause {
            FrameError::HeaderBlock(e) if e.breaks_session() => None,
            FrameError::HeaderBlock(HeaderBlockError::TooLarge { .. }) => {
                Some(RstStatus::FrameTooLarge)
            }
            FrameError::HeaderBlock(_) | FrameError::ZeroWindowDelta => {
                Some(RstStatus::ProtocolError)
            }
            _ => None,
        };
        match (stream_id, status) {
            (Some(stream_id), Some(status)) if !stream_id.is_zero() => DecodeError::Stream {
                stream_id,
                status: status.for_version(self.version),
                kind,
                cause,
            },
            _ => self.session_error(cause),
        }
    }

    fn session_error(&mut self, cause: FrameError) -> DecodeError {
        let err = DecodeError::Session {
            status: GoAwayStatus::ProtocolError,
            cause,
        };
        self.state = State::Failed(err.clone());
        err
    }
}
