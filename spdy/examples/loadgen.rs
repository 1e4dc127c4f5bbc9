//! Benchmark client: runs one workload against a server answering
//! `GET /bytes/N`, prints one JSON line with what it moved and how long it
//! took.
//!
//! `cargo run --release -p spdy --example loadgen -- ADDR VERSION WORKLOAD`
//! where WORKLOAD is `big` (one 256 MiB download), `parallel` (100 x 1 MiB
//! at once) or `small` (10,000 GETs of 100 bytes, 100 in flight).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use spdy::client::{Builder, Client, SendRequest};
use spdy::Version;
use tokio::sync::Semaphore;

async fn get(client: &SendRequest, addr: &str, n: usize) -> usize {
    let req = Request::get(format!("http://{addr}/bytes/{n}"))
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    let mut res = client.send_request(req).await.expect("response");
    let mut got = 0;
    while let Some(chunk) = res.body_mut().data().await {
        got += chunk.expect("body").len();
    }
    assert_eq!(got, n, "short body");
    got
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, version, workload) = match &args[..] {
        [_, a, v, w] => (a.clone(), v.parse::<Version>().expect("version"), w.clone()),
        _ => {
            eprintln!("usage: loadgen ADDR VERSION big|parallel|small");
            std::process::exit(2);
        }
    };
    let builder = Builder::new()
        .version(version)
        .initial_window(4 << 20)
        .session_window(32 << 20);
    let connected = Client::connect(addr.as_str(), builder)
        .await
        .expect("connect");
    let client = connected.as_send_request().clone();
    let start = Instant::now();
    let (bytes, requests) = match workload.as_str() {
        "big" => (get(&client, &addr, 256 << 20).await, 1),
        "parallel" => {
            let tasks: Vec<_> = (0..100)
                .map(|_| {
                    let (client, addr) = (client.clone(), addr.clone());
                    tokio::spawn(async move { get(&client, &addr, 1 << 20).await })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("task");
            }
            (total, 100)
        }
        "small" => {
            let permits = Arc::new(Semaphore::new(100));
            let mut tasks = Vec::with_capacity(10_000);
            for _ in 0..10_000 {
                let permit = permits.clone().acquire_owned().await.expect("semaphore");
                let (client, addr) = (client.clone(), addr.clone());
                tasks.push(tokio::spawn(async move {
                    let n = get(&client, &addr, 100).await;
                    drop(permit);
                    n
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("task");
            }
            (total, 10_000)
        }
        other => panic!("unknown workload {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    println!("{{\"bytes\":{bytes},\"requests\":{requests},\"secs\":{secs}}}");
}
