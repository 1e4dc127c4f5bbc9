//! Arbitrary bytes from a "peer" into a session of either role and any
//! version (or one detecting the version), with an application that accepts,
//! replies, reads and writes. The session must never panic, and everything it
//! sends must decode as valid frames of its version.
//!
//! The body lives in `targets_common/session_input.rs`, shared with the stable
//! replay test `spdy-proto/tests/fuzz_corpus.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../targets_common/session_input.rs"]
mod body;

fuzz_target!(|input: &[u8]| body::run(input));
