use bytes::BytesMut;
use flate2::{Compress, Compression, FlushCompress};

use super::{block, dictionary, HeaderBlock, HeaderBlockError};
use crate::frame::Version;

/// Settings of the sending zlib stream. They change only size and speed: any
/// setting produces blocks every peer can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressConfig {
    /// zlib level, 0 (store) to 9 (smallest). Default 6.
    ///
    /// Level 0 keeps no zlib state: blocks go out as stored (uncompressed)
    /// deflate blocks written by hand, which any inflater reads. That is
    /// nginx's default (`spdy_headers_comp 0`); it saves the ~250 KiB a
    /// deflate stream holds per connection and leaks nothing through
    /// compressed sizes (CRIME).
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
/// it. At level 0 there is none at all (see [`CompressConfig::level`]).
pub struct HeaderCompressor {
    deflate: Option<Compress>,
    /// Level 0: whether the zlib header has gone out.
    stored_started: bool,
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
            .field("stored", &self.stores())
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
            stored_started: false,
            config,
            version,
            scratch: Vec::new(),
            validate: true,
            broken: false,
        }
    }

    /// Whether blocks are sent as stored blocks, without zlib.
    fn stores(&self) -> bool {
        self.config.level == 0
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
        if self.stores() {
            return self.store(block, max_out, dst);
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

    /// Level 0: appends `block` as stored deflate blocks and the SYNC_FLUSH
    /// marker, preceded by the zlib header at the first block. The plain
    /// block lives only during the call, so nothing stays allocated.
    fn store(
        &mut self,
        block: &HeaderBlock,
        max_out: usize,
        dst: &mut BytesMut,
    ) -> Result<(), HeaderBlockError> {
        let mut plain = Vec::new();
        block::write(block, self.version, &mut plain)?;
        let header = if self.stored_started {
            0
        } else {
            ZLIB_HEADER_LEN
        };
        let len = stored_len(plain.len()).saturating_add(header);
        if len > max_out {
            return Err(HeaderBlockError::TooLong {
                what: "compressed header block",
                len,
            });
        }
        dst.reserve(len);
        if !self.stored_started {
            let dictionary = dictionary::for_version(self.version);
            dst.extend_from_slice(&zlib_header(self.config.window_bits));
            dst.extend_from_slice(&adler32(dictionary).to_be_bytes());
            self.stored_started = true;
        }
        for chunk in plain.chunks(STORED_MAX) {
            put_stored(dst, chunk);
        }
        // Z_SYNC_FLUSH's own marker: an empty stored block, which the peer's
        // decompressor requires at the end of every block.
        put_stored(dst, &[]);
        Ok(())
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

/// Most bytes one stored deflate block carries (its LEN is 16 bits).
const STORED_MAX: usize = 0xffff;

/// CMF, FLG and the 4-byte DICTID.
const ZLIB_HEADER_LEN: usize = 6;

/// Bytes `len` plain bytes take as stored blocks plus the empty stored
/// block of the flush: 5 bytes of header per block.
fn stored_len(len: usize) -> usize {
    let blocks = len.div_ceil(STORED_MAX) + 1;
    len.saturating_add(blocks * 5)
}

/// One non-final stored block (RFC 1951 3.2.4). The stream is byte-aligned
/// before it (after the zlib header or a previous stored block), so the 3
/// header bits BFINAL=0, BTYPE=00 and their padding are one zero byte.
fn put_stored(dst: &mut BytesMut, data: &[u8]) {
    debug_assert!(data.len() <= STORED_MAX);
    let len = data.len() as u16; // callers pass at most STORED_MAX bytes
    dst.extend_from_slice(&[0]);
    dst.extend_from_slice(&len.to_le_bytes());
    dst.extend_from_slice(&(!len).to_le_bytes());
    dst.extend_from_slice(data);
}

/// The zlib header (RFC 1950 2.2): deflate with the configured window,
/// FDICT set (the dictionary id follows), FLEVEL 0 ("fastest"), and the
/// FCHECK that makes CMF·256 + FLG a multiple of 31.
fn zlib_header(window_bits: u8) -> [u8; 2] {
    let cinfo = window_bits.clamp(9, 15) - 8;
    let cmf = (cinfo << 4) | 8;
    let flg = 0x20u8;
    let rest = ((u16::from(cmf) << 8) | u16::from(flg)) % 31;
    let fcheck = ((31 - rest) % 31) as u8;
    [cmf, flg | fcheck]
}

/// Adler-32 (RFC 1950 8.2) of the dictionary: the DICTID of the zlib
/// header, which the peer's inflater checks against its own dictionary.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that cannot overflow `b` before reducing.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
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

    const STORE: CompressConfig = CompressConfig {
        level: 0,
        window_bits: 15,
    };

    #[test]
    fn level_0_writes_stored_blocks_by_hand() {
        for version in Version::ALL {
            let mut tx = HeaderCompressor::new(version, STORE);
            let mut expected = Vec::new();
            let mut wire = BytesMut::new();
            for i in 0..3 {
                let mut plain = Vec::new();
                block::write(&sample(i), version, &mut plain).unwrap();
                if i == 0 {
                    // CMF 0x78 (deflate, 32 KiB window), FLG 0x20 (FDICT,
                    // FCHECK 0), then the dictionary's Adler-32.
                    expected.extend_from_slice(&[0x78, 0x20]);
                    let dict = dictionary::for_version(version);
                    expected.extend_from_slice(&adler32(dict).to_be_bytes());
                }
                let len = plain.len() as u16;
                expected.push(0);
                expected.extend_from_slice(&len.to_le_bytes());
                expected.extend_from_slice(&(!len).to_le_bytes());
                expected.extend_from_slice(&plain);
                expected.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
                tx.compress(&sample(i), usize::MAX, &mut wire).unwrap();
                assert_eq!(&wire[..], &expected[..], "{version} block {i}");
            }
            assert!(tx.deflate.is_none());
            assert_eq!(tx.scratch.capacity(), 0);
        }
    }

    #[test]
    fn zlib_header_is_valid_for_every_window() {
        for bits in 0..=20u8 {
            let [cmf, flg] = zlib_header(bits);
            assert_eq!((u16::from(cmf) * 256 + u16::from(flg)) % 31, 0, "{bits}");
            assert_eq!(cmf & 0x0f, 8, "{bits}: deflate");
            assert_eq!(cmf >> 4, bits.clamp(9, 15) - 8, "{bits}: window");
            assert_eq!(flg & 0x20, 0x20, "{bits}: FDICT");
        }
    }

    #[test]
    fn adler32_agrees_with_zlib() {
        // RFC 1950's checksum of "Wikipedia", a common test vector.
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(b""), 1);
        // zlib reports the dictionary's Adler-32 when it is set; long
        // inputs of 0xff exercise the deferred modulo.
        let long = vec![0xffu8; 100_000];
        let inputs = Version::ALL
            .iter()
            .map(|&v| dictionary::for_version(v))
            .chain([&long[..], &long[..5553]]);
        for input in inputs {
            let mut deflate = Compress::new(Compression::default(), true);
            let zlib = deflate.set_dictionary(input).unwrap();
            assert_eq!(adler32(input), zlib, "{} bytes", input.len());
        }
    }

    #[test]
    fn level_0_refusal_leaves_stream_unstarted() {
        let mut tx = HeaderCompressor::new(Version::V3, STORE);
        let mut rx = HeaderDecompressor::new(Version::V3, 64 * 1024);
        let mut wire = BytesMut::new();
        let err = tx.compress(&sample(0), 20, &mut wire).unwrap_err();
        assert!(matches!(err, HeaderBlockError::TooLong { .. }), "{err}");
        assert!(wire.is_empty());
        // The exact size is allowed: the limit is not a rough bound here.
        let mut plain = Vec::new();
        block::write(&sample(0), Version::V3, &mut plain).unwrap();
        let exact = 6 + 5 + plain.len() + 5;
        let err = tx.compress(&sample(0), exact - 1, &mut wire).unwrap_err();
        assert!(matches!(err, HeaderBlockError::TooLong { .. }), "{err}");
        tx.compress(&sample(0), exact, &mut wire).unwrap();
        assert_eq!(wire.len(), exact);
        assert_eq!(
            block::parse(rx.decompress(&wire).unwrap(), Version::V3).unwrap(),
            sample(0)
        );
    }

    #[test]
    fn level_0_matches_zlib_stored_output() {
        // zlib at level 0 with SYNC_FLUSH writes the same stored block and
        // flush marker; its header differs only in FCHECK (it writes 31
        // where 0 also makes a multiple of 31).
        for version in Version::ALL {
            let mut ours = HeaderCompressor::new(version, STORE);
            let mut zlib = Compress::new_with_window_bits(Compression::none(), true, 15);
            zlib.set_dictionary(dictionary::for_version(version))
                .unwrap();
            for i in 0..3 {
                let mut wire = BytesMut::new();
                ours.compress(&sample(i), usize::MAX, &mut wire).unwrap();
                let mut plain = Vec::new();
                block::write(&sample(i), version, &mut plain).unwrap();
                let mut theirs = Vec::with_capacity(plain.len() + 64);
                zlib.compress_vec(&plain, &mut theirs, FlushCompress::Sync)
                    .unwrap();
                if i == 0 {
                    assert_eq!(&theirs[..2], &[0x78, 0x3f], "{version}");
                    assert_eq!(&wire[..2], &[0x78, 0x20], "{version}");
                    assert_eq!(&wire[2..], &theirs[2..], "{version} block 0");
                } else {
                    assert_eq!(&wire[..], &theirs[..], "{version} block {i}");
                }
            }
        }
    }
}
