#!/usr/bin/env bash
# Runs Auscult on its embedded defaults (SQLite, a local folder for objects, the
# local Whisper engine) after installing what it needs. Extra arguments go to
# `auscult`; AUSCULT_* environment variables configure it (see README).
source "$(dirname "$0")/setup.sh"
cd "$AUSCULT_ROOT"
ensure_build_deps
ensure_model
export AUSCULT_WHISPER_MODEL_DIR="${AUSCULT_WHISPER_MODEL_DIR:-$AUSCULT_ROOT/models/whisper-tiny.en}"
log "building (release)"
cargo build --release --bin auscult
exec "$CARGO_TARGET_DIR/release/auscult" "$@"
