use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::head::{ControlType, Head, HEAD_LEN, MAX_PAYLOAD_LEN};
use crate::frame::{Data, EncodeError, Frame, Version};
use crate::header_block::{CompressConfig, HeaderCompressor};

/// Writes frames of one SPDY version.
///
/// The encoder owns the sending zlib stream of the session, so one encoder
/// serves one direction of one session, and header-carrying frames must go
/// on the wire in the order they were encoded.
///
/// Errors leave the output buffer as it was. Only values the wire cannot
/// carry fail, plus header blocks that break the spec's rules (unless
/// validation is turned off); stream states are the session's business.
#[derive(Debug)]
pub struct FrameEncoder {
    version: Version,
    headers: HeaderCompressor,
}

impl FrameEncoder {
    /// An encoder for `version` with default compression settings.
    pub fn new(version: Version) -> FrameEncoder {
        FrameEncoder::with_compression(version, CompressConfig::default())
    }

    /// An encoder for `version` with the given compression settings.
    pub fn with_compression(version: Version, config: CompressConfig) -> FrameEncoder {
        FrameEncoder {
            version,
            headers: HeaderCompressor::new(version, config),
        }
    }

    /// The session's version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether header blocks are checked before they are sent (default on).
    /// Off lets a test play a peer that sends invalid blocks.
    pub fn set_validate_headers(&mut self, validate: bool) {
        self.headers.set_validate(validate);
    }

    /// Appends `frame` to `dst`.
    ///
    /// A DATA frame's payload is copied into `dst` here; use
    /// [`encode_data`](Self::encode_data) to send it without a copy.
    /// [`Frame::Unknown`] is written as its header followed by `length` zero
    /// bytes, which lets tests send frame types the version lacks.
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let v = self.version;
        match frame {
            Frame::Data(data) => {
                let head = data.head()?;
                dst.reserve(HEAD_LEN + data.data.len());
                dst.put_slice(&head);
                dst.put_slice(&data.data);
            }
            Frame::SynStream(f) => f.encode(v, &mut self.headers, dst)?,
            Frame::SynReply(f) => f.encode(v, &mut self.headers, dst)?,
            Frame::Headers(f) => f.encode(v, &mut self.headers, dst)?,
            Frame::RstStream(f) => f.encode(v, dst),
            Frame::Settings(f) => f.encode(v, dst)?,
            Frame::Noop(f) => {
                self.require(ControlType::Noop, v == Version::V2)?;
                f.encode(v, dst);
            }
            Frame::Ping(f) => f.encode(v, dst),
            Frame::GoAway(f) => f.encode(v, dst),
            Frame::WindowUpdate(f) => {
                self.require(ControlType::WindowUpdate, v != Version::V2)?;
                f.encode(v, dst)?;
            }
            Frame::Credential(f) => {
                // Deprecated by 3.1, absent from 2.
                self.require(ControlType::Credential, v == Version::V3)?;
                f.encode(v, dst)?;
            }
            Frame::Unknown(f) => {
                if f.length > MAX_PAYLOAD_LEN {
                    return Err(EncodeError::PayloadTooLarge {
                        length: f.length as usize,
                    });
                }
                Head::Control {
                    version: f.version,
                    kind: f.kind,
                    flags: f.flags,
                    length: f.length,
                }
                .encode(dst);
                dst.put_bytes(0, f.length as usize);
            }
        }
        Ok(())
    }

    /// A DATA frame as its 8-byte header plus the caller's payload, to be
    /// written (vectored) without copying the payload.
    pub fn encode_data(&self, data: Data) -> Result<EncodedData, EncodeError> {
        Ok(EncodedData {
            head: data.head()?,
            head_pos: 0,
            payload: data.data,
        })
    }

    fn require(&self, kind: ControlType, defined: bool) -> Result<(), EncodeError> {
        if defined {
            Ok(())
        } else {
            Err(EncodeError::NotInVersion {
                kind,
                version: self.version,
            })
        }
    }
}

/// An encoded DATA frame: its header and the payload `Bytes`, not joined.
///
/// It is a [`Buf`] whose [`chunks_vectored`](Buf::chunks_vectored) yields
/// both parts, so a writer can send the frame with one vectored write and no
/// copy of the payload.
#[derive(Debug, Clone)]
pub struct EncodedData {
    head: [u8; HEAD_LEN],
    head_pos: usize,
    payload: Bytes,
}

impl EncodedData {
    /// The frame header.
    pub fn head(&self) -> &[u8; HEAD_LEN] {
        &self.head
    }

    /// The payload.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
}

impl Buf for EncodedData {
    fn remaining(&self) -> usize {
        HEAD_LEN - self.head_pos + self.payload.len()
    }

    fn chunk(&self) -> &[u8] {
        if self.head_pos < HEAD_LEN {
            &self.head[self.head_pos..]
        } else {
            &self.payload
        }
    }

    fn advance(&mut self, cnt: usize) {
        let from_head = cnt.min(HEAD_LEN - self.head_pos);
        self.head_pos += from_head;
        self.payload.advance(cnt - from_head);
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for part in [&self.head[self.head_pos..], &self.payload[..]] {
            if part.is_empty() {
                continue;
            }
            let Some(slot) = dst.get_mut(n) else { break };
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }
}
