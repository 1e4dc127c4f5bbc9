use bytes::{BufMut, Bytes, BytesMut};

use super::head::{ControlType, Head, MAX_PAYLOAD_LEN};
use super::{read_u32, EncodeError, FrameError, Version};

/// CREDENTIAL (type 10, SPDY/3): the client proves it holds another
/// certificate, stored in a slot of the server's certificate vector.
///
/// ```text
/// +-+---------------+---------------+
/// |1| 3             |      10       |
/// +---------+-------+---------------+
/// | Flags(8)| Length (24)           |
/// +---------+-------+---------------+
/// | Slot (16)       |               |
/// +-----------------+               |
/// | Proof length (32)               |
/// | Proof                           |
/// | Certificate length (32)         |  repeated until the end of the frame
/// | Certificate                     |
/// ```
///
/// SPDY/3.1 deprecates the frame and SPDY/2 never had it; both still decode
/// it here when it arrives with version 3 (3 and 3.1 are alike on the wire),
/// and the session decides whether to ignore it. "If the server receives an
/// invalid CREDENTIAL frame, it MUST respond with a GOAWAY frame": a proof or
/// certificate that runs past the end of the frame is a session error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The one-based slot index (0 is invalid per spec, but decodes).
    pub slot: u16,
    /// A TLS digitally-signed proof of key possession.
    pub proof: Bytes,
    /// The DER certificate chain, leaf first.
    pub certificates: Vec<Bytes>,
}

impl Credential {
    pub(crate) fn decode(payload: Bytes) -> Result<Credential, FrameError> {
        let slot = match payload.get(..2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => return Err(FrameError::BadCredential),
        };
        let mut at = 2;
        let take = |at: &mut usize| -> Result<Bytes, FrameError> {
            let len = read_u32(&payload, *at).ok_or(FrameError::BadCredential)? as usize;
            let start = *at + 4;
            let end = start
                .checked_add(len)
                .filter(|&end| end <= payload.len())
                .ok_or(FrameError::BadCredential)?;
            *at = end;
            Ok(payload.slice(start..end))
        };
        let proof = take(&mut at)?;
        let mut certificates = Vec::new();
        while at < payload.len() {
            certificates.push(take(&mut at)?);
        }
        Ok(Credential {
            slot,
            proof,
            certificates,
        })
    }

    pub(crate) fn encode(&self, version: Version, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let length = self
            .certificates
            .iter()
            .fold(6 + self.proof.len(), |acc, c| {
                acc.saturating_add(4 + c.len())
            });
        if length > MAX_PAYLOAD_LEN as usize {
            return Err(EncodeError::PayloadTooLarge { length });
        }
        dst.reserve(8 + length);
        Head::Control {
            version: version.wire_number(),
            kind: ControlType::Credential,
            flags: 0,
            length: length as u32,
        }
        .encode(dst);
        dst.put_u16(self.slot);
        dst.put_u32(self.proof.len() as u32);
        dst.put_slice(&self.proof);
        for cert in &self.certificates {
            dst.put_u32(cert.len() as u32);
            dst.put_slice(cert);
        }
        Ok(())
    }
}
