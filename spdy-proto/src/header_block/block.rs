//! The uncompressed layout of a name/value block, and the spec's rules for
//! its names and values.

use bytes::{BufMut, Bytes};

use super::error::printable;
use super::{HeaderBlock, HeaderBlockError};
use crate::frame::Version;

/// Width in bytes of the count and length fields.
fn field_width(version: Version) -> usize {
    if version.is_v2() {
        2
    } else {
        4
    }
}

fn read_field(block: &[u8], at: usize, width: usize) -> Result<usize, HeaderBlockError> {
    let bytes = block
        .get(at..at + width)
        .ok_or(HeaderBlockError::Truncated)?;
    Ok(bytes
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
}

/// Parses a decompressed block, checking every rule the spec gives for
/// names and values. Names and values are slices of `block`.
pub(crate) fn parse(block: Bytes, version: Version) -> Result<HeaderBlock, HeaderBlockError> {
    let width = field_width(version);
    let count = read_field(&block, 0, width)?;
    let mut at = width;
    // Each pair needs at least two length fields, so the count cannot exceed
    // what the block has room for; checking first keeps a lying count from
    // reserving memory.
    if count > (block.len() - at) / (2 * width) {
        return Err(HeaderBlockError::Truncated);
    }
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = read_field(&block, at, width)?;
        at += width;
        let name_end = at.checked_add(name_len).filter(|&end| end <= block.len());
        let name_end = name_end.ok_or(HeaderBlockError::Truncated)?;
        let name = block.slice(at..name_end);
        at = name_end;
        let value_len = read_field(&block, at, width)?;
        at += width;
        let value_end = at.checked_add(value_len).filter(|&end| end <= block.len());
        let value_end = value_end.ok_or(HeaderBlockError::Truncated)?;
        let value = block.slice(at..value_end);
        at = value_end;
        // Lower case is enforced on received SPDY/3 blocks only: the SPDY/2
        // text asks for it but names no error, so old peers get leeway.
        check_pair(&name, &value, version, !version.is_v2())?;
        pairs.push((name, value));
    }
    if at != block.len() {
        return Err(HeaderBlockError::TrailingBytes(block.len() - at));
    }
    check_duplicates(&pairs)?;
    Ok(HeaderBlock::from(pairs))
}

/// Checks a block we are about to send against the same rules, plus lower
/// case in every version.
pub(crate) fn validate(block: &HeaderBlock, version: Version) -> Result<(), HeaderBlockError> {
    for (name, value) in block.pairs() {
        check_pair(name, value, version, true)?;
    }
    check_duplicates(block.pairs())
}

fn check_pair(
    name: &[u8],
    value: &[u8],
    version: Version,
    reject_uppercase: bool,
) -> Result<(), HeaderBlockError> {
    // "The length of each name must be greater than zero. A recipient of a
    // zero-length name MUST issue a stream error ... PROTOCOL_ERROR."
    if name.is_empty() {
        return Err(HeaderBlockError::EmptyName);
    }
    // Names are "8-bit sequences of data, excluding 0".
    if name.contains(&0) {
        return Err(HeaderBlockError::NulInName(printable(name)));
    }
    // "Header names ... must be all lower case."
    if reject_uppercase && name.iter().any(u8::is_ascii_uppercase) {
        return Err(HeaderBlockError::UppercaseName(printable(name)));
    }
    if value.is_empty() {
        // SPDY/2: "The length of each name and value must be greater than
        // zero." SPDY/3: "A header value can either be empty ... or ..."
        if version.is_v2() {
            return Err(HeaderBlockError::EmptyValue(printable(name)));
        }
        return Ok(());
    }
    // "The value never starts nor ends with a NUL character." and (SPDY/2)
    // "Receivers of multiple, in-sequence NUL characters must send a
    // RST_STREAM with code PROTOCOL_ERROR". "Recipients of illegal value
    // fields MUST issue a stream error ... PROTOCOL_ERROR."
    let misplaced = value.first() == Some(&0)
        || value.last() == Some(&0)
        || value.windows(2).any(|w| w == [0, 0]);
    if misplaced {
        return Err(HeaderBlockError::BadNul(printable(name)));
    }
    Ok(())
}

/// "Duplicate header names are not allowed." Sorting makes this O(n log n),
/// so a block with tens of thousands of tiny pairs costs no quadratic time.
fn check_duplicates(pairs: &[(Bytes, Bytes)]) -> Result<(), HeaderBlockError> {
    if pairs.len() < 2 {
        return Ok(());
    }
    let mut names: Vec<&[u8]> = pairs.iter().map(|(n, _)| n.as_ref()).collect();
    names.sort_unstable();
    match names.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(HeaderBlockError::DuplicateName(printable(w[0]))),
        None => Ok(()),
    }
}

/// Bytes the uncompressed block will take.
pub(crate) fn encoded_len(block: &HeaderBlock, version: Version) -> usize {
    let width = field_width(version);
    block.pairs().iter().fold(width, |acc, (n, v)| {
        acc.saturating_add(2 * width + n.len() + v.len())
    })
}

/// Writes the uncompressed block.
pub(crate) fn write(
    block: &HeaderBlock,
    version: Version,
    dst: &mut Vec<u8>,
) -> Result<(), HeaderBlockError> {
    let put = |dst: &mut Vec<u8>, what: &'static str, len: usize| -> Result<(), HeaderBlockError> {
        if version.is_v2() {
            let n = u16::try_from(len).map_err(|_| HeaderBlockError::TooLongForV2 { what, len })?;
            dst.put_u16(n);
        } else {
            let n = u32::try_from(len).map_err(|_| HeaderBlockError::TooLong { what, len })?;
            dst.put_u32(n);
        }
        Ok(())
    };
    dst.reserve(encoded_len(block, version));
    put(dst, "pair count", block.len())?;
    for (name, value) in block.pairs() {
        put(dst, "name length", name.len())?;
        dst.extend_from_slice(name);
        put(dst, "value length", value.len())?;
        dst.extend_from_slice(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_of(pairs: &[(&str, &str)]) -> HeaderBlock {
        pairs
            .iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    fn raw(version: Version, pairs: &[(&[u8], &[u8])]) -> Bytes {
        let block: HeaderBlock = pairs
            .iter()
            .map(|&(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        let mut out = Vec::new();
        write(&block, version, &mut out).unwrap();
        Bytes::from(out)
    }

    #[test]
    fn v3_known_answer() {
        let mut out = Vec::new();
        write(&block_of(&[(":method", "GET")]), Version::V3, &mut out).unwrap();
        let expected: &[u8] = b"\0\0\0\x01\0\0\0\x07:method\0\0\0\x03GET";
        assert_eq!(out, expected);
        assert_eq!(
            encoded_len(&block_of(&[(":method", "GET")]), Version::V3),
            expected.len()
        );
    }

    #[test]
    fn v2_known_answer() {
        let mut out = Vec::new();
        write(&block_of(&[("method", "GET")]), Version::V2, &mut out).unwrap();
        assert_eq!(out, b"\0\x01\0\x06method\0\x03GET");
    }

    #[test]
    fn parse_round_trips_and_slices() {
        for version in Version::ALL {
            let block = block_of(&[("a", "1"), ("b", "x\0y")]);
            let mut out = Vec::new();
            write(&block, version, &mut out).unwrap();
            assert_eq!(parse(Bytes::from(out), version).unwrap(), block);
        }
    }

    /// v3 section 2.6.10: zero-length names are a stream error.
    #[test]
    fn rejects_empty_name() {
        let bytes = raw(Version::V3, &[(b"", b"v")]);
        assert_eq!(parse(bytes, Version::V3), Err(HeaderBlockError::EmptyName));
    }

    /// v3 section 2.6.10: "Duplicate header names are not allowed."
    #[test]
    fn rejects_duplicate_names() {
        let bytes = raw(Version::V3, &[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]);
        assert_eq!(
            parse(bytes, Version::V3),
            Err(HeaderBlockError::DuplicateName("a".into()))
        );
    }

    /// v3 section 2.6.10: names "must be all lower case".
    #[test]
    fn rejects_uppercase_in_v3_but_reads_it_in_v2() {
        let bytes = raw(Version::V3, &[(b"Host", b"x")]);
        assert_eq!(
            parse(bytes, Version::V3),
            Err(HeaderBlockError::UppercaseName("Host".into()))
        );
        let bytes = raw(Version::V2, &[(b"Host", b"x")]);
        assert!(parse(bytes, Version::V2).is_ok());
        assert!(validate(&block_of(&[("Host", "x")]), Version::V2).is_err());
    }

    /// v3 section 2.6.10: "The value never starts nor ends with a NUL";
    /// v2: no "multiple, in-sequence NUL characters".
    #[test]
    fn rejects_misplaced_nul_in_values() {
        for value in [&b"\0a"[..], b"a\0", b"a\0\0b", b"\0"] {
            for version in Version::ALL {
                let bytes = raw(version, &[(b"x", value)]);
                assert_eq!(
                    parse(bytes, version),
                    Err(HeaderBlockError::BadNul("x".into())),
                    "{value:?} in {version}"
                );
            }
        }
    }

    #[test]
    fn rejects_nul_in_name() {
        let bytes = raw(Version::V3, &[(b"a\0b", b"v")]);
        assert!(matches!(
            parse(bytes, Version::V3),
            Err(HeaderBlockError::NulInName(_))
        ));
    }

    /// v2: "The length of each name and value must be greater than zero";
    /// v3 allows an empty value.
    #[test]
    fn empty_value_is_an_error_only_in_v2() {
        assert!(parse(raw(Version::V3, &[(b"x", b"")]), Version::V3).is_ok());
        assert_eq!(
            parse(raw(Version::V2, &[(b"x", b"")]), Version::V2),
            Err(HeaderBlockError::EmptyValue("x".into()))
        );
    }

    #[test]
    fn lengths_past_the_block_are_truncation() {
        let good = raw(Version::V3, &[(b"name", b"value")]);
        for cut in 0..good.len() {
            assert_eq!(
                parse(good.slice(..cut), Version::V3),
                Err(HeaderBlockError::Truncated),
                "cut at {cut}"
            );
        }
        // A count far larger than the block could hold.
        let lying = Bytes::from_static(b"\xff\xff\xff\xff\0\0\0\x01a\0\0\0\x01b");
        assert_eq!(parse(lying, Version::V3), Err(HeaderBlockError::Truncated));
        // A name length of 4 GiB - 1.
        let huge = Bytes::from_static(b"\0\0\0\x01\xff\xff\xff\xffa");
        assert_eq!(parse(huge, Version::V3), Err(HeaderBlockError::Truncated));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = raw(Version::V2, &[(b"a", b"b")]).to_vec();
        bytes.push(7);
        assert_eq!(
            parse(Bytes::from(bytes), Version::V2),
            Err(HeaderBlockError::TrailingBytes(1))
        );
    }

    #[test]
    fn v2_fields_are_16_bits() {
        let long = "v".repeat(70_000);
        let block = block_of(&[("x", &long)]);
        assert!(matches!(
            write(&block, Version::V2, &mut Vec::new()),
            Err(HeaderBlockError::TooLongForV2 {
                what: "value length",
                len: 70_000
            })
        ));
        assert!(write(&block, Version::V3, &mut Vec::new()).is_ok());
    }
}
