//! The proxy-wasm shell (`src/filter/`, compiled only for wasm32) keeps its shape: each
//! callback of a proxy-wasm context at most 25 lines (the work is in named helpers and in
//! the native core), and no host write's result swallowed with `let _ =` (failures are
//! logged through `host::OrWarn`). Read from the sources, since no native test runs the shell.

use std::path::PathBuf;

const MAX_CALLBACK_LINES: usize = 25;

fn shell_sources() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/filter");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap()))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the shell's files: {files:?}");
    files
}

/// `(file:callback, lines)` for every method of an `impl ...Context for` block.
fn callbacks() -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (file, text) in shell_sources() {
        let lines: Vec<&str> = text.lines().collect();
        let mut in_context_impl = false;
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            if line.starts_with("impl ") {
                in_context_impl = line.contains("Context for ");
            }
            let name = line.strip_prefix("    fn ").and_then(|rest| rest.split('(').next());
            if let (true, Some(name), true) = (in_context_impl, name, line.trim_end().ends_with('{')) {
                let end = (i..lines.len()).find(|&j| lines[j] == "    }").expect("the callback's end");
                found.push((format!("{file}:{name}"), end - i + 1));
                i = end;
            }
            i += 1;
        }
    }
    found
}

#[test]
fn every_callback_is_at_most_25_lines() {
    let callbacks = callbacks();
    assert!(callbacks.iter().any(|(name, _)| name == "mod.rs:on_http_response_headers"), "{callbacks:?}");
    assert!(callbacks.len() >= 20, "{callbacks:?}");
    let long: Vec<_> = callbacks.iter().filter(|(_, lines)| *lines > MAX_CALLBACK_LINES).collect();
    assert!(long.is_empty(), "callbacks over {MAX_CALLBACK_LINES} lines: {long:?}");
}

#[test]
fn no_host_call_result_is_swallowed() {
    for (file, text) in shell_sources() {
        for (number, line) in text.lines().enumerate() {
            let swallowed = line.contains("let _ = host::") || line.contains("let _ = proxy_wasm::hostcalls::");
            assert!(!swallowed, "src/filter/{file}:{}: {}", number + 1, line.trim());
        }
    }
}
