use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};

use super::{dictionary, HeaderBlockError};
use crate::frame::Version;

/// How far past the size limit a block may inflate (while its excess is
/// discarded) before it counts as a decompression bomb.
const BOMB_FACTOR: usize = 4;

/// The last bytes of every block flushed with Z_SYNC_FLUSH: an empty stored
/// block's LEN and NLEN.
const SYNC_FLUSH_MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The receiving half of a session's header compression: one zlib inflate
/// stream, shared by every header block the peer sends, primed with the
/// version's dictionary.
///
/// Each call consumes one frame's compressed block completely, even when the
/// result is too large, so that the stream stays in step with the peer's
/// compressor and a bad block costs one stream, not the session.
///
/// The zlib state (some 40 KiB with its window) is built at the first
/// block, so that a session that never receives headers does not pay for
/// it.
pub struct HeaderDecompressor {
    inflate: Option<Decompress>,
    dictionary: &'static [u8],
    max_len: usize,
    broken: bool,
}

impl std::fmt::Debug for HeaderDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDecompressor")
            .field("total_in", &self.inflate.as_ref().map(Decompress::total_in))
            .field(
                "total_out",
                &self.inflate.as_ref().map(Decompress::total_out),
            )
            .field("max_len", &self.max_len)
            .field("broken", &self.broken)
            .finish()
    }
}

impl HeaderDecompressor {
    /// A new stream for `version` that accepts blocks of at most `max_len`
    /// bytes once decompressed.
    pub fn new(version: Version, max_len: usize) -> HeaderDecompressor {
        HeaderDecompressor {
            inflate: None,
            dictionary: dictionary::for_version(version),
            max_len,
            broken: false,
        }
    }

    /// Inflates one compressed block and returns the decompressed bytes.
    ///
    /// A block that decompresses to more than the limit is still fully
    /// inflated (the excess is thrown away) and reported as
    /// [`HeaderBlockError::TooLarge`], unless it keeps going past several
    /// times the limit ([`HeaderBlockError::Bomb`]). After a
    /// [`Decompress`](HeaderBlockError::Decompress) or `Bomb` error the stream
    /// is unusable and every later call fails.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Bytes, HeaderBlockError> {
        if self.broken {
            return Err(HeaderBlockError::Decompress(
                "stream broken by an earlier error".into(),
            ));
        }
        let result = self.inflate_block(input);
        if matches!(&result, Err(e) if e.breaks_session()) {
            self.broken = true;
        }
        result
    }

    fn inflate_block(&mut self, input: &[u8]) -> Result<Bytes, HeaderBlockError> {
        // SPDY/2 and SPDY/3(.1) 2.6.10.1: "SPDY uses a SYNC_FLUSH between
        // each compressed frame", and a sync flush ends with an empty stored
        // block, 00 00 FF FF. A block that does not was cut short (or made
        // with another flush): inflating it would leave the shared stream
        // in the middle of a symbol, and every later block of the session
        // would be read out of step. SPDY/3 2.4.1: an error that "corrupts
        // the session compression state" is a session error.
        if !input.ends_with(&SYNC_FLUSH_MARKER) {
            return Err(HeaderBlockError::Decompress(
                "header block does not end with a SYNC_FLUSH".into(),
            ));
        }
        let limit = self.max_len;
        let dictionary = self.dictionary;
        let inflate = self.inflate.get_or_insert_with(|| Decompress::new(true));
        // Header blocks compress about 3 to 10 times; start there, grow as
        // needed, and never hold more than the limit plus one growth step.
        let first = input
            .len()
            .saturating_mul(4)
            .max(256)
            .min(limit.saturating_add(1));
        let mut out: Vec<u8> = Vec::with_capacity(first);
        let mut discarded = 0usize;
        let start_in = inflate.total_in();
        loop {
            let consumed = (inflate.total_in() - start_in) as usize;
            let before_out = inflate.total_out();
            let before_in = inflate.total_in();
            if out.len() == out.capacity() {
                // Exact growth: `reserve` could double past the limit.
                out.reserve_exact(out.capacity().clamp(256, 64 * 1024));
            }
            let status =
                match inflate.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync) {
                    Ok(status) => status,
                    Err(e) => match e.needs_dictionary() {
                        // zlib asks for the preset dictionary after reading the
                        // stream header; give it and carry on from total_in().
                        Some(_) => {
                            inflate
                                .set_dictionary(dictionary)
                                .map_err(|e| HeaderBlockError::Decompress(e.to_string()))?;
                            continue;
                        }
                        None => return Err(HeaderBlockError::Decompress(e.to_string())),
                    },
                };
            let progressed = inflate.total_out() != before_out || inflate.total_in() != before_in;
            if out.len() > limit {
                discarded = discarded.saturating_add(out.len());
                out.clear();
                if discarded > limit.saturating_mul(BOMB_FACTOR) {
                    return Err(HeaderBlockError::Bomb { limit });
                }
            }
            let all_in = (inflate.total_in() - start_in) as usize == input.len();
            // Done when all input is consumed and inflate stopped for lack of
            // input rather than of output space.
            if all_in && out.len() < out.capacity() {
                break;
            }
            if status == Status::StreamEnd && !all_in {
                return Err(HeaderBlockError::Decompress(
                    "data after the end of the zlib stream".into(),
                ));
            }
            if !progressed && out.len() < out.capacity() {
                // No progress with room to write: the input ends mid-symbol.
                // With SYNC_FLUSH after every block this cannot happen for a
                // well-behaved peer; the leftover bits would be read as the
                // start of the next block, so the stream is out of step.
                return Err(HeaderBlockError::Decompress(
                    "header block does not end on a flush boundary".into(),
                ));
            }
        }
        if discarded > 0 {
            return Err(HeaderBlockError::TooLarge { limit });
        }
        Ok(Bytes::from(out))
    }
}
