# Entry points. The scripts in scripts/ do the work; see each for details.
SHELL := bash
PY := .venv/bin/python

.PHONY: help bootstrap build image demo up down test fmt

help:
	@echo "make build   build the release .wasm and print its size"
	@echo "make image   build, then package the .wasm as an OCI image layout (Istio / Envoy Gateway format)"
	@echo "make demo    bootstrap, build, (re)start the demo stack, run the tour; leaves it running"
	@echo "make up      bootstrap, build, start the demo stack (if not running)"
	@echo "make down    stop the demo stack"
	@echo "make test    everything CI runs: fmt, clippy (native and wasm32), cargo test (and with --features tiktoken), build, integration"
	@echo "             (the first run also builds Limitador into ~/.cache/llm-gateway: about 20 min)"
	@echo "make fmt     cargo fmt"
	@echo "make fuzz    coverage-guided fuzzing of every parser and codec (nightly; FUZZ_SECONDS per target)"

bootstrap:
	@bash scripts/bootstrap.sh

build:
	@bash scripts/build.sh

image: build
	@bash scripts/image.sh

demo:
	@bash scripts/bootstrap.sh
	@bash scripts/build.sh
	@bash scripts/down.sh
	@bash scripts/up.sh
	$(PY) integration/tour.py

up:
	@bash scripts/bootstrap.sh
	@bash scripts/build.sh
	@bash scripts/up.sh

down:
	@bash scripts/down.sh

test:
	@bash scripts/bootstrap.sh
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 --lib -- -D warnings
	cargo clippy --target wasm32-wasip1 --lib --features callback-profile -- -D warnings
	cargo test
	# Exact token counts (feature tiktoken, off by default): linted, and the library and the
	# tests using it run.
	cargo clippy --features tiktoken --all-targets -- -D warnings
	cargo test --features tiktoken --lib --test estimate --test admission
	@bash scripts/build.sh
	@bash scripts/limitador.sh >/dev/null
	$(PY) -m pytest -q integration

fmt:
	cargo fmt

# Benchmarks (not part of `make test`). See BENCHMARKS.md.
.PHONY: bench bench-native bench-estimators bench-fallback
bench:          ## side by side in real Envoy (and LiteLLM): bench/results/latest.{json,md}
	@bash bench/run.sh

bench-estimators: ## token estimators (fast, upper-bound, exact, auto) in real Envoy: bench/results/estimators.md
	.venv/bin/python bench/estimators.py

bench-fallback: ## what one fallback and the per-attempt design cost in real Envoy: bench/results/fallback.md
	.venv/bin/python bench/fallback.py

bench-native:   ## criterion micro-benchmarks of the native core: benches/core.rs, benches/translate.rs
	cargo bench --bench core --bench translate

# Fuzzing (not part of `make test`, which replays fuzz/regressions/ in tests/fuzz_regressions.rs).
.PHONY: fuzz
fuzz:           ## cargo-fuzz, each target FUZZ_SECONDS (default 60): fuzz/results/latest.md
	@bash scripts/fuzz.sh
