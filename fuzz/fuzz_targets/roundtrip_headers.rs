//! Builds SYN_STREAM and HEADERS frames from fuzz bytes, encodes them with
//! one `FrameEncoder` and decodes them with its paired `FrameDecoder` (one
//! shared zlib context per direction). Whenever encoding succeeds, decoding
//! must give back the same frame; when it fails, the output is untouched.
//!
//! The body lives in `targets_common/roundtrip_headers.rs`, shared with the stable
//! replay test `spdy-proto/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../targets_common/roundtrip_headers.rs"]
mod body;

fuzz_target!(|input: &[u8]| body::run(input));
