use bytes::BytesMut;
use flate2::{Compress, Compression, FlushCompress};

use super::{block, dictionary, HeaderBlock, HeaderBlockError};
use crate::frame::Version;

/// Settings of the sending zlib stream. They change only size and speed: any
/// setting produces blocks every peer can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressConfig {
    /// zlib level, 0 (store) to 9 (smallest). Default 6.
    pub level: u32,
    /// Base-2 logarithm of the deflate window, 9 to 15 (values outside are
    /// clamped). The spec suggests a small window since blocks are small;
    /// default 11 (2 KiB), which still covers the whole v3 dictionary.
    pub window_bits: u8,
}

impl Default for CompressConfig {
    fn default() -> CompressConfig {
        CompressConfig {
            level: 6,
            window_bits: 11,
        }
    }
}

/// The sending half of a session's header compression: one zlib deflate
/// stream, shared by every header block this endpoint sends, primed with the
/// version's dictionary and flushed with SYNC_FLUSH after each block.
///
/// The zlib state (over 100 KiB) is built at the first block, so that a
/// session that never sends headers (an idle connection) does not pay for
/// it.
pub struct HeaderCompressor {
    deflate: Option<Compress>,
    config: CompressConfig,
    version: Version,
    scratch: Vec<u8>,
    validate: bool,
    broken: bool,
}

impl std::fmt::Debug for HeaderCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderCompressor")
            .field("version", &self.version)
            .field("total_in", &self.deflate.as_ref().map(Compress::total_in))
            .field("total_out", &self.deflate.as_ref().map(Compress::total_out))
            .field("validate", &self.validate)
            .field("broken", &self.broken)
            .finish()
    }
}

impl HeaderCompressor {
    /// A new stream for `version`.
    pub fn new(version: Version, config: CompressConfig) -> HeaderCompressor {
        HeaderCompressor {
            deflate: None,
            config,
            version,
            scratch: Vec::new(),
            validate: true,
            broken: false,
        }
    }

    /// Builds the zlib stream, primed with the version's dictionary.
    fn start(&mut self) -> Result<(), HeaderBlockError> {
        if self.deflate.is_some() {
            return Ok(());
        }
        let bits = self.config.window_bits.clamp(9, 15);
        let level = Compression::new(self.config.level.min(9));
        let mut deflate = Compress::new_with_window_bits(level, true, bits);
        // Setting a dictionary on a fresh stream cannot fail.
        deflate
            .set_dictionary(dictionary::for_version(self.version))
            .map_err(|e| HeaderBlockError::Compress(e.to_string()))?;
        self.deflate = Some(deflate);
        Ok(())
    }

    /// Whether blocks are checked against the spec's rules before they are
    /// sent (the default). Turning it off lets a test play a peer that sends
    /// invalid blocks.
    pub fn set_validate(&mut self, validate: bool) {
        self.validate = validate;
    }

    /// A generous upper bound on the compressed size of an uncompressed
    /// block of `len` bytes: zlib's conservative deflate bound (stored blocks
    /// of any size, the flush marker and the zlib header, with dictionary id).
    pub(crate) fn bound(len: usize) -> usize {
        len.saturating_add(len / 8 + len / 256 + len / 512 + 64)
    }

    /// Checks `block`, then compresses it and appends the bytes to `dst`,
    /// refusing (before touching the stream) a block whose compressed form
    /// could exceed `max_out` bytes. On error nothing is appended.
    pub fn compress(
        &mut self,
        block: &HeaderBlock,
        max_out: usize,
        dst: &mut BytesMut,
    ) -> Result<(), HeaderBlockError> {
        if self.broken {
            return Err(HeaderBlockError::Compress(
                "stream broken by an earlier error".into(),
            ));
        }
        if self.validate {
            block::validate(block, self.version)?;
        }
        self.scratch.clear();
        block::write(block, self.version, &mut self.scratch)?;
        let bound = Self::bound(self.scratch.len());
        if bound > max_out {
            return Err(HeaderBlockError::TooLong {
                what: "compressed header block",
                len: bound,
            });
        }
        let start = dst.len();
        let result = self
            .start()
            .and_then(|()| self.deflate_into(start, max_out, dst));
        if result.is_err() {
            dst.truncate(start);
            self.broken = true;
        }
        result
    }

    fn deflate_into(
        &mut self,
        start: usize,
        max_out: usize,
        dst: &mut BytesMut,
    ) -> Result<(), HeaderBlockError> {
        let Some(deflate) = self.deflate.as_mut() else {
            return Err(HeaderBlockError::Compress("stream not started".into()));
        };
        let mut room = Self::bound(self.scratch.len()).min(max_out.saturating_add(1));
        let mut consumed = 0;
        let mut written = 0;
        loop {
            dst.resize(start + room, 0);
            let in_before = deflate.total_in();
            let out_before = deflate.total_out();
            deflate
                .compress(
                    &self.scratch[consumed..],
                    &mut dst[start + written..],
                    FlushCompress::Sync,
                )
                .map_err(|e| HeaderBlockError::Compress(e.to_string()))?;
            let took = (deflate.total_in() - in_before) as usize;
            let gave = (deflate.total_out() - out_before) as usize;
            consumed += took;
            written += gave;
            // The flush is complete once all input is in and deflate stopped
            // with output space to spare.
            if consumed == self.scratch.len() && written < room {
                break;
            }
            if written > max_out || (took == 0 && gave == 0) {
                return Err(HeaderBlockError::Compress(format!(
                    "compressed block exceeds {max_out} bytes or deflate stalled"
                )));
            }
            room += room / 2 + 64;
        }
        dst.truncate(start + written);
        if written > max_out {
            return Err(HeaderBlockError::Compress(format!(
                "compressed block of {written} bytes exceeds {max_out}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_block::HeaderDecompressor;

    fn sample(i: usize) -> HeaderBlock {
        let mut block = HeaderBlock::new();
        block.push(":method", "GET");
        block.push(":path", format!("/item/{i}"));
        block.push("user-agent", "spdy-rs test");
        block
    }

    #[test]
    fn blocks_share_one_context_in_both_directions() {
        for version in Version::ALL {
            let mut tx = HeaderCompressor::new(version, CompressConfig::default());
            let mut rx = HeaderDecompressor::new(version, 64 * 1024);
            let mut sizes = Vec::new();
            for i in 0..5 {
                let mut wire = BytesMut::new();
                tx.compress(&sample(i), usize::MAX, &mut wire).unwrap();
                sizes.push(wire.len());
                let plain = rx.decompress(&wire).unwrap();
                let parsed = block::parse(plain, version).unwrap();
                assert_eq!(parsed, sample(i));
            }
            // Later blocks reuse earlier ones through the shared window.
            assert!(sizes[4] < sizes[0], "{version}: {sizes:?}");
        }
    }

    #[test]
    fn invalid_block_leaves_stream_untouched() {
        let mut tx = HeaderCompressor::new(Version::V3, CompressConfig::default());
        let mut rx = HeaderDecompressor::new(Version::V3, 64 * 1024);
        let mut bad = HeaderBlock::new();
        bad.push("UPPER", "x");
        let mut wire = BytesMut::from(&b"keep"[..]);
        assert!(matches!(
            tx.compress(&bad, usize::MAX, &mut wire),
            Err(HeaderBlockError::UppercaseName(_))
        ));
        assert_eq!(&wire[..], b"keep");
        wire.clear();
        tx.compress(&sample(1), usize::MAX, &mut wire).unwrap();
        assert_eq!(
            block::parse(rx.decompress(&wire).unwrap(), Version::V3).unwrap(),
            sample(1)
        );
    }

    #[test]
    fn refuses_blocks_that_may_not_fit() {
        let mut tx = HeaderCompressor::new(Version::V3, CompressConfig::default());
        let mut wire = BytesMut::new();
        let err = tx.compress(&sample(0), 10, &mut wire).unwrap_err();
        assert!(matches!(err, HeaderBlockError::TooLong { .. }));
        assert!(wire.is_empty());
    }

    #[test]
    fn incompressible_block_fits_the_bound() {
        // Pseudo-random bytes do not compress; the bound must still hold.
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 255 + 1) as u8
            })
            .collect();
        let mut block = HeaderBlock::new();
        block.push("x-noise", noise);
        for level in [0, 1, 6, 9] {
            let config = CompressConfig {
                level,
                window_bits: 15,
            };
            let mut tx = HeaderCompressor::new(Version::V3, config);
            let mut rx = HeaderDecompressor::new(Version::V3, 1 << 20);
            let mut wire = BytesMut::new();
            tx.compress(&block, usize::MAX, &mut wire).unwrap();
            assert_eq!(
                block::parse(rx.decompress(&wire).unwrap(), Version::V3).unwrap(),
                block
            );
        }
    }
}
