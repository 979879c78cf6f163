#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of every parser and codec: `make fuzz`.
#
#   FUZZ_SECONDS=60     seconds per target (default 60)
#   FUZZ_TARGETS="a b"  only these targets (default: all, see fuzz/Cargo.toml)
#   FUZZ_WORK=dir       corpora and crash artifacts (default: $LLM_GATEWAY_CACHE/fuzz-work,
#                       outside the clone, kept between runs so corpora grow)
#   LLM_GATEWAY_CACHE   tool cache (default ~/.cache/llm-gateway): cargo-fuzz is installed
#                       there once, so a fresh clone (CI) reuses it
#
# Installs what it needs idempotently: the nightly toolchain (rustup, minimal profile) and
# cargo-fuzz (cargo install --locked into the cache). Seeds each target's corpus from
# tests/fixtures, envoy/*.yaml and fuzz/regressions/, runs the targets one after another
# (one job each: the machine is small), and writes fuzz/results/latest.md: executions,
# coverage (libFuzzer's cov/ft), corpus size and findings per target. A finding is a
# crash, a timeout, an out-of-memory or an oracle disagreement; its input is left in the
# work directory's artifacts/ folder: add it to fuzz/regressions/<target>/ with the fix.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
CACHE=${LLM_GATEWAY_CACHE:-$HOME/.cache/llm-gateway}
WORK=${FUZZ_WORK:-$CACHE/fuzz-work}
ALL_TARGETS=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^llm-gateway-fuzz$')
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
REPORT=fuzz/results/latest.md

# --- tools -------------------------------------------------------------------------------
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
export CARGO_INSTALL_ROOT=$CACHE/cargo-fuzz
if [[ ! -x $CARGO_INSTALL_ROOT/bin/cargo-fuzz ]]; then
  mkdir -p "$CARGO_INSTALL_ROOT"
  cargo install cargo-fuzz --locked
fi
export PATH=$CARGO_INSTALL_ROOT/bin:$PATH
# The fuzz build has its own target dir (instrumented, nightly): never the root crate's.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}

# --- seeds -------------------------------------------------------------------------------
seed() {
  python3 - "$ROOT" "$WORK/seeds" <<'PY'
import glob, json, os, re, sys
root, out = sys.argv[1], sys.argv[2]
fx = os.path.join(root, "tests/fixtures")
SEP = b"\n@@\n"
n = {}

def put(target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    n[target] = n.get(target, 0) + 1
    with open(os.path.join(d, f"seed-{n[target]:04}"), "wb") as f:
        f.write(data)

def files(pattern):
    return sorted(glob.glob(os.path.join(fx, pattern)))

def read(p):
    with open(p, "rb") as f:
        return f.read()

def plugin_configs():
    """The JSON plugin configs embedded in envoy/*.yaml (the block after `value: |`)."""
    for path in sorted(glob.glob(os.path.join(root, "envoy/*.yaml"))):
        text = open(path).read()
        for m in re.finditer(r"value: \|\n(( +).*\n(?:\2.*\n)*)", text):
            try:
                yield json.loads(m.group(1))
            except ValueError:
                pass

for p in files("*/*.json") + files("*/golden/*.json"):
    put("json_scan", read(p))
for p in files("*/*.sse"):
    put("sse", read(p))
for p in files("bedrock/*.eventstream"):
    put("eventstream", b"\x00" + read(p))
    put("eventstream", b"\x01" + read(p))
for p in files("openai/request_*.json"):
    put("request_codecs", b"\x00" + read(p))
for p in files("anthropic/request_*.json"):
    put("request_codecs", b"\x01" + read(p))
providers = [("openai", "chat_completion*.json deepseek*.json"), ("anthropic", "response_*.json"),
             ("gemini", "generate_content_*.json"), ("bedrock", "converse_*.json")]
for i, (d, pats) in enumerate(providers):
    for pat in pats.split():
        for p in files(f"{d}/{pat}"):
            put("response_codecs", bytes([i]) + read(p))
    for j, p in enumerate(files(f"{d}/error_*")):
        put("response_codecs", bytes([i | (j % 8) << 2]) + read(p))
streams = [("openai", "*.sse"), ("anthropic", "stream_*.sse"), ("gemini", "stream_*.sse"), ("bedrock", "*.eventstream")]
for i, (d, pat) in enumerate(streams):
    for p in files(f"{d}/{pat}"):
        for client in (0, 1):
            put("stream_codecs", bytes([i | client << 2 | 8 | 16]) + read(p))
claims = {"sub": "alice", "iss": "https://idp.fuzz.invalid", "aud": "llm-gateway", "exp": 1795735200, "plan": "small"}
put("auth", b"\x00Bearer sk-fuzz-alice")
put("auth", b"\x03sk-fuzz-carol")
put("auth", b"\x04bearer  x.y.z" + SEP + b"sk-fuzz-alice")
put("auth", b"\x01" + json.dumps(claims).encode())
put("auth", b"\x02" + b'{"alg":"HS256","kid":"hs"}' + SEP + json.dumps(dict(claims, aud=["x", "llm-gateway"])).encode())
put("auth", b"\x00" + b"f77894fdfa58e447c57e077eaa9708e8e009c84dc6aba2db80461275e9b85be7")
configs = list(plugin_configs())
for c in configs:
    put("config", json.dumps(c).encode())
for p in sorted(glob.glob(os.path.join(root, "examples/*/README.md"))):
    for block in re.findall(r"```json\n(.*?)```", open(p).read(), re.S):
        if '"providers"' in block:
            put("config", block.encode())
selection = {"llm_gateway_template": {"name": "t", "version": "1",
             "variables": {"text": "mail bob@example.com, card 4111 1111 1111 1111", "n": 2.5, "flag": True}}}
for text in ["You write {{style}} summaries of {{text}}.", "{{text}}", "{{ text }} {{n}}{{flag}}", "{{", "}}{{style"]:
    for p in files("openai/request_*.json")[:3]:
        body = json.loads(read(p))
        put("template", text.encode() + SEP + json.dumps(dict(body, **selection)).encode())
    put("template", text.encode() + SEP + b'{"text":"hello","stream":true}')
req_openai = files("openai/request_*.json")
req_anthropic = files("anthropic/request_*.json")
responses = {0: read(os.path.join(fx, "openai/chat_completion.json")),
             1: read(os.path.join(fx, "anthropic/response_text.json"))}
for k, p in enumerate(req_openai):
    for model in range(8):
        for variant in ((0, 1, 2) if model == 0 else (model % 3,)):
            flags = variant | (1 << 2)  # the demo key
            put("engine", bytes([flags, 0, model, 0, 0x80 | 7]) + read(p) + SEP + responses[0])
            put("engine", bytes([flags | 16, 0, model, 1 << 3, 0x80 | 13]) + read(p) + SEP
                + read(os.path.join(fx, "openai/chat_stream_include_usage.sse")))
for p in req_anthropic:
    for model in (3, 4, 5, 0):
        put("engine", bytes([1 | 2 << 2, 1, model, 0, 0x80 | 31]) + read(p) + SEP + responses[1])
        put("engine", bytes([1 | 2 << 2 | 16, 1, model, 1 << 3, 0x80 | 5]) + read(p) + SEP
            + read(os.path.join(fx, "anthropic/stream_basic.sse")))
put("engine", bytes([4, 4, 0, 0, 0x80]) + b'{"text":"hi"}' + SEP + responses[0])
put("engine", bytes([0, 5, 0, 0, 0]))
print(" ".join(f"{k}={v}" for k, v in sorted(n.items())))
PY
}

mkdir -p "$WORK"
rm -rf "$WORK/seeds"
echo "seeds: $(seed)"

# --- run ---------------------------------------------------------------------------------
cd fuzz
# Builds every target (instrumented, with debug assertions: overflow checks are findings too).
cargo +nightly fuzz build -O --debug-assertions 2>&1 | tail -3
START=$(date -u +%Y-%m-%dT%H:%MZ)
ROWS=()
FINDINGS=0
for t in $TARGETS; do
  corpus=$WORK/corpus/$t
  artifacts=$WORK/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  cp -n "$WORK/seeds/$t"/* "$corpus"/ 2>/dev/null || true
  cp -n "$ROOT/fuzz/regressions/$t"/* "$corpus"/ 2>/dev/null || true
  before=$(ls "$artifacts" | wc -l)
  log=$WORK/$t.log
  echo "== $t: ${SECONDS_PER_TARGET}s"
  # -max_len: the fixtures are up to ~8 KB; -timeout: a hang is a finding (seconds).
  cargo +nightly fuzz run -O --debug-assertions "$t" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || true
  stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$stats")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
  size=$(ls "$corpus" | wc -l)
  after=$(ls "$artifacts" | wc -l)
  found=$((after - before))
  FINDINGS=$((FINDINGS + found))
  summary=$(grep -m1 -E '^(==[0-9]+== ERROR|thread .* panicked|SUMMARY)' "$log" | cut -c1-160 || true)
  echo "   execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=$size findings=$found ${summary}"
  ROWS+=("| \`$t\` | ${execs:-?} | ${cov:-?} | ${ft:-?} | $size | $found ${summary:+(${summary//|/\\|})} |")
done
cd "$ROOT"

{
  echo "# Fuzzing results"
  echo
  echo "Run $START on $(nproc) cores ($(cargo +nightly --version | cut -d' ' -f2-)), one job per target:"
  echo
  echo '```'
  echo "FUZZ_SECONDS=$SECONDS_PER_TARGET bash scripts/fuzz.sh   # make fuzz"
  echo '```'
  echo
  echo "Executions are libFuzzer's \`number_of_executed_units\`; cov (coverage points) and ft"
  echo "(features) are from its last status line; corpus is the corpus size after the run"
  echo "(corpora are kept between runs in \`$(sed "s|$HOME|~|" <<<"$WORK")\`); findings are new crash,"
  echo "timeout or oracle-failure artifacts. Every finding so far, its fix and its regression"
  echo "input: [findings.md](findings.md)."
  echo
  echo "| target | executions | cov | ft | corpus | findings |"
  echo "| --- | ---: | ---: | ---: | ---: | --- |"
  printf '%s\n' "${ROWS[@]}"
} >"$REPORT"
echo "report: $REPORT (findings: $FINDINGS; inputs in $WORK/artifacts)"
[[ $FINDINGS -eq 0 ]]
