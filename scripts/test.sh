#!/usr/bin/env bash
# Runs every check and test on a fresh machine: installs what the tests need
# (Debian packages, the Whisper model, a running Postgres, moto for the S3
# tests, the FUSE fault filesystem for the fsync tests, python-socketio for
# the Socket.IO tests, Chromium, Node.js, playwright-core and socket.io-client
# for the browser and Socket.IO tests, hadolint and checkov for the
# deployment tests), then rustfmt, clippy and the test suite.
source "$(dirname "$0")/setup.sh"
cd "$AUSCULT_ROOT"
ensure_build_deps
ensure_apt espeak-ng sox strace
ensure_model
ensure_postgres
ensure_moto
ensure_faultfs
ensure_python_socketio
ensure_browser_e2e
ensure_deploy_tools
export AUSCULT_WHISPER_MODEL_DIR="${AUSCULT_WHISPER_MODEL_DIR:-$AUSCULT_ROOT/models/whisper-tiny.en}"

log "cargo fmt --check"
cargo fmt --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast "$@"
fi
