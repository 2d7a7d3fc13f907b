#!/usr/bin/env bash
# Runs every liftguard test on a fresh machine: installs and starts what the tests need
# (PostgreSQL running on 127.0.0.1:5432, the pglite TimescaleDB build under tests/pglite,
# cargo-nextest, Debian's chromium), then the whole workspace's tests. Extra arguments go to nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/liftguard-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# PostgreSQL 15 on 127.0.0.1:5432 (trust auth, user postgres).
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi

# Debian's Chromium, driven headless by the dashboard's browser test (tests/tests/dashboard.rs).
if [ -z "${LIFTGUARD_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null
fi

# TimescaleDB (WASM build, served over TCP) for the migration tests.
if [ ! -d tests/pglite/node_modules ]; then
  echo "installing the pglite TimescaleDB harness (npm ci)"
  (cd tests/pglite && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# The end-to-end tests run the real binary: build it (fresh) first.
cargo build -p liftguard --bin liftguard
cargo nextest run --workspace --no-fail-fast "$@"
