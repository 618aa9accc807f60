# Sluice: the single entry point. `make help` lists the targets.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/sluice
# The prebuilt libduckdb (fetched by `make setup`); binaries find it through their rpath.
export DUCKDB_LIB_DIR ?= $(CACHE)/duckdb-1.5.6/package
# fakesnow, the Snowflake stand-in the tests start (installed by `make setup`).
export SLUICE_FAKESNOW_VENV ?= $(CACHE)/venv-fakesnow
CARGO ?= cargo
NEXTEST_PROFILE ?= default

.DEFAULT_GOAL := help
.PHONY: help setup build release demo test lint fmt bench bench-full bench-micro fuzz soak clean-demo

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

setup: ## Fetch the prebuilt libduckdb (linked as .libduckdb for plain cargo) and install cargo-nextest if missing
	@dir=$$(tests/scripts/fetch-libduckdb.sh "$(CACHE)") && ln -sfn "$$dir" .libduckdb
	@command -v cargo-nextest >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest

build: setup ## Build the sluice binary (debug)
	$(CARGO) build -p sluice

release: setup ## Build the sluice binary (release): target/release/sluice
	$(CARGO) build --release -p sluice

demo: release ## Live dashboard: throwaway PostgreSQL with shop traffic -> sluice -> ./sluice-data/warehouse.duckdb
	$(CARGO) build --release -p sluice -p sluice-demo --bins --example show
	tests/demo/demo.sh

test: setup ## Run every test (unit, integration, end-to-end) with cargo nextest
	@tests/scripts/install-fakesnow.sh "$(CACHE)" >/dev/null
	$(CARGO) build -p sluice --features failpoints
	$(CARGO) nextest run --workspace --profile $(NEXTEST_PROFILE)

lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p sluice --features failpoints --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: release ## Sluice vs pg_recvlogical and native logical replication: throughput, freshness, RSS (quick, ~2 min)
	@tests/scripts/install-fakesnow.sh "$(CACHE)" >/dev/null
	SLUICE_BIN=$${CARGO_TARGET_DIR:-target}/release/sluice tests/bench/run.sh

bench-full: release ## The benchmark at full size (under 15 min), written to tests/bench/results/full.md and full.png
	@tests/scripts/install-fakesnow.sh "$(CACHE)" >/dev/null
	WL_ROWS=$${WL_ROWS:-1500000} WL_CDC=$${WL_CDC:-650000} WL_TXN=$${WL_TXN:-1000} \
	  BENCH_FRESH_SECONDS=$${BENCH_FRESH_SECONDS:-60} BENCH_LARGE_ROWS=$${BENCH_LARGE_ROWS:-1000000} \
	  BENCH_OUT=tests/bench/results/full.md \
	  SLUICE_BIN=$${CARGO_TARGET_DIR:-target}/release/sluice tests/bench/run.sh

bench-micro: setup ## Criterion micro-benchmarks: the pgoutput decoder and the change log's append and read paths
	$(CARGO) bench -p sluice-pgoutput -p sluice-log-local

fuzz: ## Run the four fuzz targets for FUZZ_SECONDS each (default 60)
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	cd crates/pgoutput && RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -max_total_time=$${FUZZ_SECONDS:-60}
	cd connectors/log-local && RUSTC_BOOTSTRAP=1 cargo fuzz run segment -- -max_total_time=$${FUZZ_SECONDS:-60}
	cd connectors/log-local && RUSTC_BOOTSTRAP=1 cargo fuzz run record -- -max_total_time=$${FUZZ_SECONDS:-60}
	mkdir -p crates/config/fuzz/corpus/config
	cd crates/config && RUSTC_BOOTSTRAP=1 cargo fuzz run config fuzz/corpus/config fuzz/seeds -- \
	  -dict=fuzz/config.dict -max_total_time=$${FUZZ_SECONDS:-60}

soak: release ## SOAK_SECONDS (default 600) of mixed load with sync SIGKILLed every 20-40 s and the source restarted, then verify
	SLUICE_BIN=$${CARGO_TARGET_DIR:-target}/release/sluice tests/soak/soak.sh

clean-demo: ## Remove ./sluice-data (the demo's database, change log and warehouse)
	rm -rf sluice-data
