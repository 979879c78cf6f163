//! The configuration snippets of examples/identity-and-budgets/README.md load as written.
//! (The prompt examples' snippets are checked in tests/prompt.rs.)

use llm_gateway::config::Config;
use serde_json::{Map, Value};

fn env(name: &str) -> Option<String> {
    (name == "DEMO_OPENAI_API_KEY").then(|| "sk-upstream-demo-key".to_string())
}

fn json_blocks(readme: &str) -> Vec<String> {
    readme.split("```json\n").skip(1).map(|b| b.split("```").next().unwrap().to_string()).collect()
}

#[test]
fn identity_and_budgets_readme_configs_load() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/identity-and-budgets/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let blocks = json_blocks(&readme);
    // The complete configuration first; fragments (`"consumers": {...}`) are merged into it.
    let full: Map<String, Value> = blocks
        .iter()
        .find_map(|b| serde_json::from_str::<Value>(b).ok().filter(|v| v.get("providers").is_some()))
        .and_then(|v| v.as_object().cloned())
        .expect("a complete plugin configuration (with \"providers\")");
    Config::parse(serde_json::to_string(&full).unwrap().as_bytes(), &env)
        .unwrap_or_else(|e| panic!("{path}: the complete configuration: {e}"));
    let mut fragments = 0;
    for block in &blocks {
        if serde_json::from_str::<Value>(block).is_ok() {
            continue;
        }
        let fragment: Map<String, Value> = serde_json::from_str(&format!("{{{block}}}"))
            .unwrap_or_else(|e| panic!("{path}: not JSON, nor JSON members: {e}\n{block}"));
        let mut config = full.clone();
        for (key, value) in fragment {
            match (config.get_mut(&key), value) {
                (Some(Value::Object(into)), Value::Object(add)) => into.extend(add),
                (_, value) => {
                    config.insert(key, value);
                }
            }
        }
        Config::parse(serde_json::to_string(&config).unwrap().as_bytes(), &env)
            .unwrap_or_else(|e| panic!("{path}: fragment {block}: {e}"));
        fragments += 1;
    }
    assert_eq!(fragments, 2, "the consumers and prices fragments");
}
