//! SPDY/2, SPDY/3 and SPDY/3.1 clients and servers for tokio.
//!
//! Not written yet: this crate will hold the connection driver and the
//! `http`-based client and server API. Today it only re-exports the wire
//! layer, [`spdy_proto`], which is complete for all three versions.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use spdy_proto as proto;
