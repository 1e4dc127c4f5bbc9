//! Codec benchmarks: DATA decoding, DATA encoding (zero copy and copy), and
//! SYN_STREAM encoding and decoding with a browser-like request header set,
//! many frames sharing one compression context.
//!
//! Run with `cargo bench -p spdy-proto --bench codec`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use spdy_proto::frame::{Data, SynStream};
use spdy_proto::header_block::HeaderBlock;
use spdy_proto::{DecodeLimits, Frame, FrameDecoder, FrameEncoder, StreamId, Version};

const FRAMES: usize = 64;

fn stream(id: u32) -> StreamId {
    StreamId::new(id).expect("31-bit stream id")
}

/// `FRAMES` DATA frames of `len` bytes each, on alternating streams.
fn data_wire(len: usize) -> Bytes {
    let mut encoder = FrameEncoder::new(Version::V3_1);
    let mut wire = BytesMut::new();
    for i in 0..FRAMES {
        let payload = vec![(i % 251) as u8; len];
        let frame = Frame::Data(Data::new(stream(1 + 2 * (i as u32 % 4)), payload, false));
        encoder.encode(&frame, &mut wire).expect("encode DATA");
    }
    wire.freeze()
}

fn decode_data(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_data");
    for (name, len) in [("64x16KiB", 16 * 1024), ("64x1KiB", 1024)] {
        let wire = data_wire(len);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (
                        FrameDecoder::new(Version::V3_1, DecodeLimits::default()),
                        BytesMut::from(&wire[..]),
                    )
                },
                |(mut decoder, mut buf)| {
                    let mut frames = 0;
                    while let Some(frame) = decoder.decode(&mut buf).expect("valid DATA") {
                        black_box(&frame);
                        frames += 1;
                    }
                    assert_eq!(frames, FRAMES);
                    buf
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn encode_data(c: &mut Criterion) {
    const LEN: usize = 16 * 1024;
    let mut group = c.benchmark_group("encode_data_16KiB");
    group.throughput(Throughput::Bytes((LEN + 8) as u64));
    let data = Data::new(stream(1), vec![0x5a; LEN], false);
    let encoder = FrameEncoder::new(Version::V3_1);
    group.bench_function("encode_data_zero_copy", |b| {
        b.iter(|| {
            let encoded = encoder
                .encode_data(black_box(&data).clone())
                .expect("encode");
            black_box(encoded.remaining());
            encoded
        });
    });
    let mut encoder = FrameEncoder::new(Version::V3_1);
    let frame = Frame::Data(data);
    let mut dst = BytesMut::with_capacity(LEN + 8);
    group.bench_function("encode_copy", |b| {
        b.iter(|| {
            dst.clear();
            encoder.encode(black_box(&frame), &mut dst).expect("encode");
            black_box(dst.len());
        });
    });
    group.finish();
}

const COOKIE: &str = "_ga=GA1.2.1804930384.1712412345; _gid=GA1.2.1187335412.1712498765; \
    sessionid=8f3c2a9e7b1d4f6a0c5e9b2d7a4f1c8e; csrftoken=Xq7LmN2pR9sT4vW8yZ1aB3cD5eF6gH0j; \
    prefs=lang%3Den%26theme%3Ddark%26tz%3DEurope%2FParis; _fbp=fb.1.1712412345678.1234567890; \
    cart=3f9a1c7e-2b4d-4e8f-9a6c-1d3e5f7a9b2c; consent=v2:analytics,ads";

/// A browser-like GET for `path`, with SPDY/2 or SPDY/3 header names.
fn request(version: Version, i: usize) -> HeaderBlock {
    let path = format!("/static/app/chunk-{i}.js?v=20240406{:04}", i % 9973);
    let (method, url, ver, host, scheme) = match version {
        Version::V2 => ("method", "url", "version", "host", "scheme"),
        _ => (":method", ":path", ":version", ":host", ":scheme"),
    };
    let mut block = HeaderBlock::with_capacity(11);
    block.push(method, "GET");
    block.push(url, path);
    block.push(ver, "HTTP/1.1");
    block.push(host, "www.example.com");
    block.push(scheme, "https");
    block.push(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/33.0.1750.117 Safari/537.36",
    );
    block.push("accept", "*/*");
    block.push("accept-encoding", "gzip,deflate,sdch");
    block.push("accept-language", "en-US,en;q=0.8,fr;q=0.6");
    block.push("cookie", COOKIE);
    block.push("referer", "https://www.example.com/products/index.html");
    block
}

/// Distinct SYN_STREAMs, cycled through by the benchmarks.
fn syn_streams(version: Version) -> Vec<Frame> {
    (0..1024)
        .map(|i| {
            let mut syn = SynStream::new(stream(1 + 2 * i as u32), request(version, i));
            syn.priority = 1;
            syn.fin = true;
            Frame::SynStream(syn)
        })
        .collect()
}

fn syn_stream(c: &mut Criterion) {
    for version in [Version::V3_1, Version::V2] {
        let mut group = c.benchmark_group(format!("syn_stream_v{version}"));
        group.throughput(Throughput::Elements(1));
        let frames = syn_streams(version);

        // Encode only: one encoder (one deflate context) for every frame.
        let mut encoder = FrameEncoder::new(version);
        let mut dst = BytesMut::with_capacity(4096);
        let mut i = 0;
        group.bench_function("encode", |b| {
            b.iter(|| {
                dst.clear();
                encoder
                    .encode(&frames[i % frames.len()], &mut dst)
                    .expect("encode");
                i += 1;
                black_box(dst.len());
            });
        });

        // Decode only: the frames as one encoder wrote them in sequence; the
        // paired decoder reads them in order and is replaced (outside the
        // timed part) when the sequence wraps around.
        let mut encoder = FrameEncoder::new(version);
        let wire: Vec<Bytes> = frames
            .iter()
            .map(|frame| {
                let mut dst = BytesMut::new();
                encoder.encode(frame, &mut dst).expect("encode");
                dst.freeze()
            })
            .collect();
        let new_decoder = || FrameDecoder::new(version, DecodeLimits::default());
        {
            let mut decoder = new_decoder();
            for (frame, bytes) in frames.iter().zip(&wire) {
                let decoded = decoder.decode(&mut BytesMut::from(&bytes[..]));
                assert_eq!(decoded.as_ref(), Ok(&Some(frame.clone())));
            }
        }
        group.bench_function("decode", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let n = left.min(wire.len());
                    left -= n;
                    let mut decoder = new_decoder();
                    let mut bufs: Vec<BytesMut> =
                        wire[..n].iter().map(|w| BytesMut::from(&w[..])).collect();
                    let start = Instant::now();
                    for buf in &mut bufs {
                        black_box(decoder.decode(buf).expect("decode"));
                    }
                    total += start.elapsed();
                }
                total
            });
        });

        // Both directions per frame: encode, then decode on the paired
        // decoder, one compression context each way for the whole run.
        let mut encoder = FrameEncoder::new(version);
        let mut decoder = new_decoder();
        let mut buf = BytesMut::with_capacity(4096);
        let mut i = 0;
        group.bench_function("encode+decode", |b| {
            b.iter(|| {
                encoder
                    .encode(&frames[i % frames.len()], &mut buf)
                    .expect("encode");
                i += 1;
                black_box(decoder.decode(&mut buf).expect("decode"));
            });
        });
        group.finish();
    }
}

criterion_group!(benches, decode_data, encode_data, syn_stream);
criterion_main!(benches);
