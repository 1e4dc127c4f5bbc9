//! The name/value header block of SYN_STREAM, SYN_REPLY and HEADERS, and its
//! compression.
//!
//! ```text
//! SPDY/2 (16-bit fields)              SPDY/3 and 3.1 (32-bit fields)
//! +--------------------------+        +--------------------------+
//! | Number of pairs (16)     |        | Number of pairs (32)     |
//! +--------------------------+        +--------------------------+
//! | Length of name (16)      |        | Length of name (32)      |
//! | Name                     |        | Name                     |
//! | Length of value (16)     |        | Length of value (32)     |
//! | Value                    |        | Value                    |
//! | (repeats)                |        | (repeats)                |
//! ```
//!
//! The whole block, count included, is compressed with zlib. Each direction
//! of a session has one zlib stream shared by all its header blocks, primed
//! with the version's [`dictionary`] and flushed with SYNC_FLUSH after each
//! block. Because the stream is shared, every compressed block must be fully
//! processed, even for a frame that is then rejected: skipping one would
//! corrupt all later ones.
//!
//! A name appears once; several values for a name travel as one value with the
//! parts separated by NUL bytes ([`HeaderBlock::append`] builds such values,
//! [`HeaderBlock::values`] splits them).

mod block;
mod compress;
mod decompress;
pub mod dictionary;
mod error;

pub use compress::{CompressConfig, HeaderCompressor};
pub use decompress::HeaderDecompressor;
pub use error::HeaderBlockError;

pub(crate) use block::{
    encoded_len as block_len, parse as parse_block, validate as validate_block,
};

use bytes::Bytes;

/// The decoded name/value pairs of one header block, in wire order.
///
/// Names and values are raw bytes: the specs allow any octet but NUL in names
/// and use NUL as a separator in values; mapping to `http` types (and their
/// stricter character rules) is the job of the layer above. Decoded names and
/// values are slices of one buffer, so decoding a block allocates once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    pairs: Vec<(Bytes, Bytes)>,
}

impl HeaderBlock {
    /// An empty block.
    pub fn new() -> HeaderBlock {
        HeaderBlock::default()
    }

    /// An empty block with room for `n` pairs.
    pub fn with_capacity(n: usize) -> HeaderBlock {
        HeaderBlock {
            pairs: Vec::with_capacity(n),
        }
    }

    /// Adds a pair at the end, as is. Adding a name twice makes an invalid
    /// block (the encoder refuses it); use [`append`](Self::append) for more
    /// values of one name.
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.pairs.push((name.into(), value.into()));
    }

    /// Adds a value for `name`: a new pair if the name is absent, otherwise
    /// the value is joined to the existing one with a NUL separator, which is
    /// how SPDY carries repeated headers.
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        match self.pairs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                let mut joined = Vec::with_capacity(existing.len() + 1 + value.len());
                joined.extend_from_slice(existing);
                joined.push(0);
                joined.extend_from_slice(&value);
                *existing = Bytes::from(joined);
            }
            None => self.pairs.push((name, value)),
        }
    }

    /// The value of the first pair named `name` (NUL separators included).
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&Bytes> {
        let name = name.as_ref();
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The NUL-separated parts of the value of `name`; empty if absent.
    pub fn values<'a>(&'a self, name: impl AsRef<[u8]>) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get(name)
            .map(|v| v.split(|&b| b == 0))
            .into_iter()
            .flatten()
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Bytes, &Bytes)> {
        self.pairs.iter().map(|(n, v)| (n, v))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs, consuming the block.
    pub fn into_pairs(self) -> Vec<(Bytes, Bytes)> {
        self.pairs
    }

    pub(crate) fn pairs(&self) -> &[(Bytes, Bytes)] {
        &self.pairs
    }
}

impl<N: Into<Bytes>, V: Into<Bytes>> FromIterator<(N, V)> for HeaderBlock {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> HeaderBlock {
        HeaderBlock {
            pairs: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

impl From<Vec<(Bytes, Bytes)>> for HeaderBlock {
    fn from(pairs: Vec<(Bytes, Bytes)>) -> HeaderBlock {
        HeaderBlock { pairs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_joins_values_with_nul() {
        let mut block = HeaderBlock::new();
        block.append("set-cookie", "a=1");
        block.append("set-cookie", "b=2");
        block.append("x", "y");
        assert_eq!(block.len(), 2);
        assert_eq!(block.get("set-cookie").unwrap().as_ref(), b"a=1\0b=2");
        let parts: Vec<&[u8]> = block.values("set-cookie").collect();
        assert_eq!(parts, vec![&b"a=1"[..], &b"b=2"[..]]);
        assert_eq!(block.values("absent").count(), 0);
    }
}
