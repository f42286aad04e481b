#!/usr/bin/env bash
# The whole test suite. CI (.ci/run) calls exactly this.
# Installs what a fresh machine lacks, fetches the default model into the store, then runs nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# Tests that need the real Gemma 3 270M find it through the model store; in this script they
# must not skip, so make sure it is there and tell them.
cargo build --release -p hanlin-cli
./target/release/hanlin pull gemma3:270m
./scripts/fetch-assets.sh
export HANLIN_REQUIRE_MODELS=1

# The gateway's conformance story runs on PostgreSQL too, and must not skip here.
HANLIN_TEST_POSTGRES_URL="$(./scripts/ensure-postgres.sh)"
export HANLIN_TEST_POSTGRES_URL
export HANLIN_REQUIRE_POSTGRES=1

cargo nextest run --workspace --release --no-fail-fast "$@"

# The HTTP API through the official openai Python SDK (and plain HTTP for Ollama's API),
# against the release binary built above.
./tests/python/run.sh
