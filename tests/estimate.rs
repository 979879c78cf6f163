#![cfg(feature = "tiktoken")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Token estimators against exact `o200k_base` counts (run with `--features tiktoken
//! -- --nocapture` to see the table). The corpus is what this repository holds: prose
//! (Markdown), code (Rust), provider payloads (JSON and SSE fixtures), and a few
//! non-English paragraphs below, each cut into prompt-sized chunks of about 2 KB.

use llm_gateway::quota::estimate::{estimate_tokens, exact::o200k_tokens, upper_bound_tokens};
use std::path::{Path, PathBuf};

const MULTILINGUAL: &[&str] = &[
    "Die Gateway-Konfiguration legt fest, welche Verbraucher welches Budget haben. Jede Anfrage \
     reserviert vor dem Aufruf die geschätzten Eingabe-Token und die maximal möglichen Ausgabe-Token; \
     nach dem Ende des Streams wird die Reservierung auf den tatsächlichen Verbrauch abgerechnet.",
    "Конфигурация шлюза определяет, какой потребитель какой бюджет получает. Каждый запрос перед \
     вызовом резервирует оценку входных токенов и максимально возможное число выходных токенов; \
     после завершения потока резерв списывается по фактическому расходу.",
    "网关配置决定每个使用者的预算。每个请求在调用之前先预留估算的输入令牌和可能产生的最大输出令牌；\
     流结束后，预留按实际用量结算。这样即使并发请求很多，也不会超出预算。",
    "ゲートウェイの設定は、どの利用者にどの予算を割り当てるかを決めます。各リクエストは呼び出しの前に、\
     推定した入力トークンと出力トークンの上限を予約し、ストリームの終了後に実際の使用量で精算します。",
    "La configuration de la passerelle fixe le budget de chaque consommateur. Chaque requête réserve, \
     avant l'appel, les jetons d'entrée estimés et le maximum de jetons de sortie ; à la fin du flux, \
     la réservation est réglée sur la consommation réelle. 😀 Ça marche même avec des émojis.",
];

fn files(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| ext.contains(&e)) {
            out.push(path);
        }
    }
}

fn chunks(text: &str, size: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if current.len() >= size {
            out.push(std::mem::take(&mut current));
        }
    }
    if current.len() > 64 {
        out.push(current);
    }
    out
}

struct Stats {
    name: &'static str,
    errors: Vec<f64>,
}

impl Stats {
    fn row(&self) -> String {
        let n = self.errors.len() as f64;
        let mean = self.errors.iter().sum::<f64>() / n;
        let mut abs: Vec<f64> = self.errors.iter().map(|e| e.abs()).collect();
        abs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mae = abs.iter().sum::<f64>() / n;
        let p90 = abs[((n * 0.9) as usize).min(abs.len() - 1)];
        format!("{:<14} bias {:>+7.1}%  mean |err| {:>6.1}%  p90 |err| {:>6.1}%", self.name, mean, mae, p90)
    }

    fn mean_abs(&self) -> f64 {
        self.errors.iter().map(|e| e.abs()).sum::<f64>() / self.errors.len() as f64
    }
}

#[test]
fn estimators_against_o200k() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut corpus: Vec<(&str, Vec<String>)> = Vec::new();
    for (category, dir, ext) in [
        ("prose", root.to_path_buf(), &["md"][..]),
        ("code", root.join("src"), &["rs"][..]),
        ("payloads", root.join("tests/fixtures"), &["json", "sse"][..]),
    ] {
        let mut paths = Vec::new();
        if category == "prose" {
            for name in ["README.md", "tests/fixtures/jwt/README.md", "tests/fixtures/openai/README.md"] {
                paths.push(root.join(name));
            }
            // Debian's license texts, where present: long English prose.
            for extra in ["/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"] {
                if Path::new(extra).exists() {
                    paths.push(PathBuf::from(extra));
                }
            }
        } else {
            files(&dir, ext, &mut paths);
        }
        let texts: Vec<String> =
            paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()).flat_map(|t| chunks(&t, 2048)).collect();
        corpus.push((category, texts));
    }
    corpus.push(("multilingual", MULTILINGUAL.iter().map(|s| s.to_string()).collect()));

    let mut fast_total = 0.0;
    let mut fast_n = 0.0;
    for (category, texts) in &corpus {
        if texts.is_empty() {
            continue;
        }
        let mut fast = Stats { name: "fast", errors: Vec::new() };
        let mut quarter = Stats { name: "bytes/4", errors: Vec::new() };
        let mut upper = Stats { name: "upper bound", errors: Vec::new() };
        for text in texts {
            let exact = o200k_tokens(text).unwrap() as f64;
            let err = |estimate: u64| (estimate as f64 - exact) / exact * 100.0;
            fast.errors.push(err(estimate_tokens(text.as_bytes())));
            quarter.errors.push(err(llm_gateway::usage::estimate_tokens(text.len())));
            let bound = upper_bound_tokens(text.len());
            assert!(bound as f64 >= exact, "upper bound {bound} < exact {exact} for {category}");
            upper.errors.push(err(bound));
        }
        println!("{category} ({} chunks)", texts.len());
        for s in [&fast, &quarter, &upper] {
            println!("  {}", s.row());
        }
        fast_total += fast.mean_abs() * texts.len() as f64;
        fast_n += texts.len() as f64;
    }
    let overall = fast_total / fast_n;
    println!("fast estimator, mean |err| over all chunks: {overall:.1}%");
    assert!(overall < 15.0, "the fast estimator drifted: {overall:.1}%");
}
