//! What the native test files share (`mod common;`): fixture loading, golden files, and
//! feeding a stream at every split point.
//!
//! Golden files live in `tests/fixtures/<set>/golden/` and are named
//! `<fixture stem>.<stage>.<ext>`: `ir.txt` (the canonical IR, Debug-printed), `upstream.json`
//! (the request the gateway sends the provider), `client.json` / `client.sse` (what the client
//! receives). Cross-dialect pairs (`tests/pairs.rs`) are `<set>_<fixture stem>.to_<dialect>.<ext>`
//! in `tests/fixtures/pairs/golden/`. `BLESS=1 cargo test` rewrites every golden a test
//! compares; review the diff before committing it.
// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::fmt::Debug;
use std::path::PathBuf;

/// `tests/fixtures/`.
pub fn fixtures_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One folder of fixtures, `tests/fixtures/<set>/`, with its goldens in `golden/`.
#[derive(Clone, Copy)]
pub struct Fixtures(pub &'static str);

impl Fixtures {
    pub fn dir(self) -> PathBuf {
        fixtures_root().join(self.0)
    }

    /// The bytes of fixture `name`; a missing fixture fails the test, naming it.
    pub fn read(self, name: &str) -> Vec<u8> {
        let path = self.dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    }

    /// The fixture as text.
    pub fn text(self, name: &str) -> String {
        String::from_utf8(self.read(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }

    /// The names of the fixtures starting with `prefix` and ending with `ext`, sorted; none
    /// fails the test (a renamed folder must not turn a test into one that checks nothing).
    pub fn names(self, prefix: &str, ext: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir())
            .unwrap_or_else(|e| panic!("fixtures {}: {e}", self.0))
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(prefix) && n.ends_with(ext))
            .collect();
        names.sort();
        assert!(!names.is_empty(), "no fixtures {}/{prefix}*{ext}", self.0);
        names
    }

    /// Compares `actual` with golden file `golden/<name>` (`BLESS=1` writes it instead).
    pub fn golden(self, name: &str, actual: &str) {
        let path = self.dir().join("golden").join(name);
        if std::env::var_os("BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("golden {}: {e} (BLESS=1 cargo test writes it)", path.display()));
        assert_eq!(actual, expected, "golden {}/{name} differs (review, then BLESS=1 rewrites it)", self.0);
    }

    /// Compares JSON bytes with a pretty-printed golden: the bytes must be canonical compact
    /// JSON (what serde_json writes, so the golden still pins them byte for byte), the golden
    /// holds them pretty-printed for review.
    pub fn golden_json(self, name: &str, actual: &[u8]) {
        let value: serde_json::Value =
            serde_json::from_slice(actual).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        assert_eq!(serde_json::to_vec(&value).unwrap(), actual, "{name}: not canonical compact JSON");
        self.golden(name, &format!("{}\n", serde_json::to_string_pretty(&value).unwrap()));
    }
}

/// JSON bytes pretty-printed, with a final newline (the form of `.json` goldens).
pub fn pretty_json(bytes: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON: {e}"));
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}

/// A fixture's name without its extension (`request_basic.json` -> `request_basic`).
pub fn stem(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

/// Feeds `input` to `decode` whole, split in two at every byte, and one byte at a time;
/// asserts each feeding gives what the whole gives, and returns that.
pub fn same_at_every_split<T: PartialEq + Debug>(input: &[u8], decode: impl Fn(&[&[u8]]) -> T) -> T {
    let whole = decode(&[input]);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(decode(&[a, b]), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode(&bytes), whole, "1-byte chunks");
    whole
}

/// Runs `f` and returns, with its result, what the library logged meanwhile on this thread
/// (`"DEBUG message"` lines): the decisions the core explains only in its log. Test threads
/// run in parallel, so each collects its own records.
pub fn logged<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    CAPTURE_INSTALLED.call_once(|| {
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
    CAPTURED.with(|lines| *lines.borrow_mut() = Some(Vec::new()));
    let result = f();
    let lines = CAPTURED.with(|lines| lines.borrow_mut().take()).unwrap_or_default();
    (result, lines)
}

struct Capture;

static CAPTURE: Capture = Capture;
static CAPTURE_INSTALLED: std::sync::Once = std::sync::Once::new();

thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        CAPTURED.with(|lines| {
            if let Some(lines) = lines.borrow_mut().as_mut() {
                lines.push(format!("{} {}", record.level(), record.args()));
            }
        });
    }

    fn flush(&self) {}
}
