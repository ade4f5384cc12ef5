#!/usr/bin/env bash
# THE test command of relais: installs the external tools the tests use when they are missing,
# then checks formatting, lints, and runs every test of the workspace (unit, transcript and
# end-to-end tests against a real `relais serve` on 127.0.0.1).
#
# Usage: scripts/test.sh
# Exits non-zero on the first failure; never prompts (CI runs it through .ci/run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# shellcheck source=scripts/deps.sh
. scripts/deps.sh

step() { printf '\n==> %s\n' "$*"; }

step "tools (swaks, python3, postfix, chromium)"
relais_install_deps
swaks --version 2>&1 | sed -n 1p
python3 --version

# Python must not leave __pycache__ in the source tree; colours only confuse logs.
export PYTHONDONTWRITEBYTECODE=1
export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace --no-fail-fast"
cargo test --workspace --no-fail-fast

step "fuzz targets: built, each run 20 s on its seeds (scripts/fuzz.sh)"
bash scripts/fuzz.sh 20
