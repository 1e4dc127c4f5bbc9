//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! fuzz targets' own bodies on the stable toolchain, so that a change which
//! breaks a target's contract on an input the fuzzer once found interesting
//! fails CI, not only a nightly fuzzing run.
//!
//! The bodies are not copied: each target and this test include the same
//! file from `fuzz/targets_common/`. The seeds generator lives there too;
//! `cargo test -p spdy-proto --test fuzz_corpus -- --ignored regenerate_seeds`
//! rewrites the `seed-*` files.

#[path = "../../fuzz/targets_common/decode_frames.rs"]
mod decode_frames;
#[path = "../../fuzz/targets_common/roundtrip_headers.rs"]
mod roundtrip_headers;
#[path = "../../fuzz/targets_common/seeds.rs"]
mod seeds;
#[path = "../../fuzz/targets_common/session_input.rs"]
mod session_input;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 3] = [
    ("decode_frames", decode_frames::run),
    ("roundtrip_headers", roundtrip_headers::run),
    ("session_input", session_input::run),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

thread_local! {
    /// Set while a target runs: its panics are collected and reported
    /// once, with the input's name, instead of a backtrace each.
    static REPLAYING: Cell<bool> = const { Cell::new(false) };
}

fn quiet_panics_while_replaying() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !REPLAYING.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Runs `run` on every input and returns a line per input whose run
/// panicked (a broken assertion in the target body).
fn replay<'a>(run: Target, inputs: impl Iterator<Item = (String, &'a [u8])>) -> Vec<String> {
    quiet_panics_while_replaying();
    let mut failures = Vec::new();
    for (name, input) in inputs {
        REPLAYING.with(|r| r.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| run(input)));
        REPLAYING.with(|r| r.set(false));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            failures.push(format!("{name}: {message}"));
        }
    }
    failures
}

#[test]
fn committed_corpora_pass_every_target() {
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.expect("corpus directory entry").path();
                let data = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                (format!("{target}/{}", path.display()), data)
            })
            .collect();
        files.sort();
        // An empty or missing corpus would make this test pass vacuously.
        assert!(
            files.len() >= 10,
            "{} holds only {} files",
            dir.display(),
            files.len()
        );
        failures.extend(replay(
            run,
            files.iter().map(|(name, data)| (name.clone(), &data[..])),
        ));
    }
    assert!(
        failures.is_empty(),
        "{} corpus inputs broke a target:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The generator's current output passes too, so a seed that a change of
/// the encoder would alter is still checked before it is regenerated.
#[test]
fn generated_seeds_pass_every_target() {
    let seeds = seeds::all();
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        let mine: Vec<&seeds::Seed> = seeds.iter().filter(|s| s.target == target).collect();
        assert!(mine.len() >= 10, "only {} seeds for {target}", mine.len());
        failures.extend(replay(
            run,
            mine.iter()
                .map(|s| (format!("{target}/{}", s.name), &s.input[..])),
        ));
    }
    assert!(
        failures.is_empty(),
        "{} seeds broke a target:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The replay must turn a target's failed assertion into a test failure,
/// not swallow it with the panic.
#[test]
fn replay_reports_a_failing_target() {
    fn always_fails(_: &[u8]) {
        panic!("target assertion");
    }
    let failures = replay(always_fails, [("x".to_string(), &b"abc"[..])].into_iter());
    assert_eq!(failures, vec!["x: target assertion".to_string()]);
}

/// Rewrites `fuzz/corpus/<target>/seed-*` from the generator. Files the
/// fuzzer added (named by hash) are left alone.
#[test]
#[ignore = "writes files; run by hand after changing the generator"]
fn regenerate_seeds() {
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("create corpus directory");
        for entry in std::fs::read_dir(&dir).expect("read corpus directory") {
            let path = entry.expect("corpus directory entry").path();
            let is_seed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            if is_seed {
                std::fs::remove_file(&path).expect("remove old seed");
            }
        }
    }
    for seed in seeds::all() {
        let path = corpus_dir(seed.target).join(format!("seed-{}", seed.name));
        std::fs::write(&path, &seed.input)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}
