//! Replays the committed fuzzing regression corpus (fuzz/regressions/<target>/) through the
//! same functions the libFuzzer targets run (fuzz/harness/), on stable, in `cargo test`:
//! each crash or oracle disagreement the fuzzer found, plus a few seeds per target.
//! `make fuzz` (scripts/fuzz.sh) runs the fuzzer itself.

#[path = "../fuzz/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

use std::path::Path;

/// Runs every input of one target; the failing file is named in the panic message.
fn replay(target: &str) {
    let run = harness::TARGETS.iter().find(|(name, _)| *name == target).map(|(_, f)| *f).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no regression inputs", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "fuzz regression {} fails (see the panic above)", file.display());
    }
}

#[test]
fn every_target_has_a_regression_folder() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for (target, _) in harness::TARGETS {
        assert!(dir.join(target).is_dir(), "fuzz/regressions/{target} is missing");
    }
}

macro_rules! regression_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*
    };
}

regression_tests!(
    json_scan,
    sse,
    eventstream,
    request_codecs,
    response_codecs,
    stream_codecs,
    auth,
    config,
    template,
    engine,
);
