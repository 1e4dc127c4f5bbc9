//! The physical limit for the benchmark: a plain TCP copy on loopback.
//!
//! `rawtcp server ADDR` sends 256 MiB to each client that connects;
//! `rawtcp client ADDR` reads it and prints one JSON line like `loadgen`.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOTAL: usize = 256 << 20;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("server") => {
            let listener =
                TcpListener::bind(args.get(2).map_or("127.0.0.1:0", String::as_str)).await?;
            println!("listening on {}", listener.local_addr()?);
            let block = vec![0x5a; 256 * 1024];
            loop {
                let (mut tcp, _) = listener.accept().await?;
                let block = block.clone();
                tokio::spawn(async move {
                    let mut left = TOTAL;
                    while left > 0 {
                        let n = left.min(block.len());
                        if tcp.write_all(&block[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                });
            }
        }
        Some("client") => {
            let mut tcp =
                TcpStream::connect(args.get(2).map_or("127.0.0.1:4042", String::as_str)).await?;
            let mut buf = vec![0u8; 256 * 1024];
            let start = Instant::now();
            let mut got = 0;
            while got < TOTAL {
                let n = tcp.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let secs = start.elapsed().as_secs_f64();
            println!("{{\"bytes\":{got},\"requests\":1,\"secs\":{secs}}}");
            Ok(())
        }
        _ => {
            eprintln!("usage: rawtcp server|client ADDR");
            std::process::exit(2);
        }
    }
}
