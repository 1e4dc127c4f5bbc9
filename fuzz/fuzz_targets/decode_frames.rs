//! Feeds arbitrary bytes to one `FrameDecoder`, in chunks of varying sizes,
//! and checks the decoder's documented contract.
//!
//! Input layout: byte 0 selects the version (bits 0-1), the chunking pattern
//! (bits 2-4) and the DATA piece length (bits 5-6); the rest is the wire.
//!
//! The body lives in `targets_common/decode_frames.rs`, shared with the stable
//! replay test `spdy-proto/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../targets_common/decode_frames.rs"]
mod body;

fuzz_target!(|input: &[u8]| body::run(input));
