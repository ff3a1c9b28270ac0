//! The runner of mutu's fuzz tests, included by each of them (`#[path]`): a
//! target's corpus (`tests/fuzz-corpus/<target>/`) first, then random cases
//! of its strategy, counted; a failing case (a panic included) is shrunk to
//! the smallest input that still fails, and the test fails naming it.
//!
//! `MUTU_FUZZ_CASES` sets the number of random cases of each target
//! ([`DEFAULT_CASES`] without it): `make fuzz` asks for enough of them.

// Each fuzz test uses what it needs of these.
#![allow(dead_code)]

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

/// Random cases of a target in a plain `cargo test`: a few seconds for the
/// whole suite in a debug build.
pub const DEFAULT_CASES: u32 = 256;

/// Random cases of each target: `MUTU_FUZZ_CASES`, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("MUTU_FUZZ_CASES")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The directory of the corpus of `target`.
pub fn corpus_dir(target: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fuzz-corpus")
        .join(target)
}

/// The files of the corpus of `target`, by name, with their text; the corpus
/// must exist and hold at least one file.
pub fn corpus(target: &str) -> Vec<(String, String)> {
    let dir = corpus_dir(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut files: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let text = std::fs::read_to_string(e.path())
                .unwrap_or_else(|err| panic!("corpus {}: {err}", e.path().display()));
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// The non-empty lines of the corpus of `target` that are not comments (`#`),
/// each with its file and line number: for corpora of one input per line.
pub fn corpus_lines(target: &str) -> Vec<(String, String)> {
    corpus(target)
        .into_iter()
        .flat_map(|(file, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
                .map(|(i, l)| (format!("{file}:{}", i + 1), l.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs `check` on every named seed, then on [`cases`] random values of
/// `strategy`, and prints the number of executions: `fuzz TARGET: N
/// executions, no panic`. Fails with the seed, or the smallest random input,
/// that fails a property or panics.
pub fn fuzz<S>(
    target: &str,
    seeds: Vec<(String, S::Value)>,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let runs = AtomicU64::new(0);
    for (name, seed) in seeds {
        runs.fetch_add(1, Ordering::Relaxed);
        let shown = format!("{seed:?}");
        match catch_unwind(AssertUnwindSafe(|| check(seed))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("fuzz {target}: seed {name} fails: {e}\ninput: {shown}"),
            Err(_) => panic!("fuzz {target}: seed {name} panics\ninput: {shown}"),
        }
    }
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // A failure is shown with its smallest input, to become a named test
        // and a corpus file; nothing is written beside the sources.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |value| {
        runs.fetch_add(1, Ordering::Relaxed);
        check(value)
    });
    match result {
        Ok(()) => println!(
            "fuzz {target}: {} executions, no panic",
            runs.load(Ordering::Relaxed)
        ),
        Err(TestError::Fail(why, input)) => {
            panic!("fuzz {target}: {why}\nsmallest failing input: {input:#?}")
        }
        Err(TestError::Abort(why)) => panic!("fuzz {target}: aborted: {why}"),
    }
}
