//! The SPDY wire protocol without IO: frames, header blocks and (later) the
//! session state machine, for SPDY/2, SPDY/3 and SPDY/3.1.
//!
//! # Layout
//!
//! - [`frame`]: one module per frame type. Each knows its own byte layout in
//!   every version and nothing about sessions.
//! - [`header_block`]: the name/value block carried by SYN_STREAM, SYN_REPLY
//!   and HEADERS, and the zlib streams (one per direction, primed with the
//!   version's dictionary) that compress it.
//! - [`codec`]: [`FrameDecoder`] turns a byte buffer that may hold partial
//!   frames into typed frames; [`FrameEncoder`] turns frames back into bytes.
//!   The decoder decides, in one place, whether each malformed input is a
//!   *stream* error (answer with RST_STREAM) or a *session* error (answer with
//!   GOAWAY and close), as the specs require.
//!
//! The crate never touches a socket, a clock or a task: callers feed it bytes
//! and take bytes out. This keeps it deterministic and testable without a
//! network, and lets any runtime drive it.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use spdy_proto::frame::{Frame, Ping, Version};
//! use spdy_proto::{DecodeLimits, FrameDecoder, FrameEncoder};
//!
//! let mut encoder = FrameEncoder::new(Version::V3_1);
//! let mut wire = BytesMut::new();
//! encoder.encode(&Frame::Ping(Ping::new(1)), &mut wire).unwrap();
//!
//! let mut decoder = FrameDecoder::new(Version::V3_1, DecodeLimits::default());
//! let frame = decoder.decode(&mut wire).unwrap();
//! assert_eq!(frame, Some(Frame::Ping(Ping::new(1))));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod codec;
pub mod frame;
pub mod header_block;
pub mod session;

pub use codec::{DecodeError, DecodeLimits, EncodeError, EncodedData, FrameDecoder, FrameEncoder};
pub use frame::{Frame, StreamId, Version};
