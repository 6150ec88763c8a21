# meshpay: the two commands a newcomer needs are `make dev` and `make test` (see README.md).
# Recipes live in scripts/ so they can be read and run on their own.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

.PHONY: help dev test build build-static lint deps contracts contracts-check package clean-stack
.PHONY: fuzz bench

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

dev: ## install what is missing, start Azurite + anvil + PostgreSQL + devhost/meshpay (Ctrl-C stops all)
	@scripts/dev.sh

test: ## install what is missing, start PostgreSQL, run fmt check, clippy and every test
	@scripts/test.sh

build: ## release build without the diagnostics functions; copies the handler to ./meshpay
	cargo build --release --bin meshpay --no-default-features
	cp --remove-destination target/release/meshpay ./meshpay

fuzz: ## the parsers' property tests with many cases (FUZZ_CASES, default 20000) and cases/s
	@scripts/fuzz.sh

bench: ## release build, then API/pipeline/limits/overhead/RSS figures on a local stack (BENCH_ARGS)
	@scripts/bench.sh $(BENCH_ARGS)

build-static: ## the package's handler: static (musl) release build without the diagnostics functions
	cargo build --release --bin meshpay --no-default-features --target x86_64-unknown-linux-musl

lint: ## cargo fmt --check and clippy -D warnings
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

deps: ## npm packages (Azurite, anvil, solc) and PostgreSQL
	@scripts/deps.sh
	@scripts/postgres.sh ensure

contracts: ## recompile contracts/*.sol into the committed contracts/*.json
	@scripts/compile-contracts.sh

contracts-check: ## fail when contracts/*.json differs from a fresh compile
	@scripts/compile-contracts.sh --check

package: build-static ## dist/app (host.json, functions/*/function.json but diagnostics, static meshpay) and dist/meshpay.zip
	@scripts/package.sh

clean-stack: ## stop what make dev started and delete its local data (.dev/)
	@scripts/clean-stack.sh

.PHONY: bench-signing
bench-signing: ## broadcast throughput with Key Vault doubles (90 ms a sign, 429 bursts), 500 payments, 2 wallets
	cargo bench -p meshpay-relay --bench signing --profile dev
.PHONY: bench-notify
bench-notify: ## merchant webhook dispatch draining a backlog of 4,000 deliveries (fan-out, claim, deliveries/s)
	cargo bench -p meshpay-webhooks --bench backlog --profile dev
.PHONY: chaos
chaos: ## fault harness: 5,000 payments under seeded faults, money invariants checked (CHAOS_SEED replays, CHAOS_PAYMENTS)
	@scripts/chaos.sh
