//! Shared by the binary's integration tests: a running `spdy serve`, and
//! running the binary to completion.
// Each test file uses its own part of this.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::timeout;

/// The longest any one step may take.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A running `spdy serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:port`, as printed.
    pub addr: String,
    pub log: Arc<Mutex<String>>,
    /// Notified at each line of standard error.
    logged: Arc<Notify>,
}

impl Server {
    /// Sends SIGTERM (with the shell's `kill`).
    pub fn terminate(&self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(Command::new(env!("CARGO_BIN_EXE_spdy")), dir, extra).await
    }

    /// Like [`start`](Self::start), with RLIMIT_NOFILE (soft and hard)
    /// set to `nofile` by the shell first.
    pub async fn start_with_fd_limit(dir: &Path, extra: &[&str], nofile: u32) -> Server {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_spdy"),
        ]);
        Server::spawn(command, dir, extra).await
    }

    async fn spawn(mut command: Command, dir: &Path, extra: &[&str]) -> Server {
        let mut child = command
            .arg("serve")
            .arg(dir)
            .args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn spdy serve");
        let log = Arc::new(Mutex::new(String::new()));
        let logged = Arc::new(Notify::new());
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let (sink, notify) = (log.clone(), logged.clone());
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                {
                    let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
                notify.notify_waiters();
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = timeout(LIMIT, stdout.next_line())
            .await
            .expect("spdy serve printed no address in time")
            .unwrap();
        let Some(line) = line else {
            let status = timeout(LIMIT, child.wait()).await;
            let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
            panic!("spdy serve exited ({status:?}) without an address: {log}");
        };
        let addr = line
            .strip_prefix("listening on http://")
            .or_else(|| line.strip_prefix("listening on https://"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_owned();
        Server {
            child,
            addr,
            log,
            logged,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log(&self) -> String {
        // (A test that failed while holding the lock leaves it poisoned.)
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most `limit`) until the log satisfies `done`.
    pub async fn wait_for_log(&self, limit: Duration, done: impl Fn(&str) -> bool) {
        let waited = timeout(limit, async {
            loop {
                let notified = self.logged.notified();
                if done(&self.log()) {
                    return;
                }
                notified.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the server's log did not show what was awaited in {limit:?}:\n{}",
            self.log()
        );
    }

    /// The server's resident set size, KiB (VmRSS in /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("the server is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn stop(mut self) {
        self.child.start_kill().unwrap();
        timeout(LIMIT, self.child.wait())
            .await
            .expect("spdy serve did not exit")
            .unwrap();
    }
}

/// Runs the binary to completion (killed if it outlives LIMIT).
pub async fn spdy(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_spdy"))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    timeout(LIMIT, output)
        .await
        .unwrap_or_else(|_| panic!("spdy {args:?} timed out"))
        .unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
