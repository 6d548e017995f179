#!/usr/bin/env bash
# Speech benchmark (issue 3): accuracy, latency and capacity of the embedded
# Whisper engine over the full WebSocket path.
#
#   scripts/bench-asr.sh [auscult-asr-bench options...]   (e.g. --max-sessions 8)
#
# Builds release binaries, starts `auscult` with AUSCULT_ENGINE=whisper on a
# free loopback port over a temporary data directory, runs `auscult-asr-bench`
# against it (espeak-ng clinical dictation streamed in real time; see
# benches/asr/main.rs), then stops the server. The bench prints a table and,
# as its last line, one JSON object; both are also kept in
# benches/results/asr.txt. It takes all the CPU for a few minutes: run it on
# an otherwise idle machine.
source "$(dirname "$0")/setup.sh"
cd "$AUSCULT_ROOT"
ensure_build_deps
ensure_apt espeak-ng
ensure_model
export AUSCULT_WHISPER_MODEL_DIR="${AUSCULT_WHISPER_MODEL_DIR:-$AUSCULT_ROOT/models/whisper-tiny.en}"

log "building release binaries"
cargo build --release --bin auscult --bin auscult-asr-bench
BIN="$CARGO_TARGET_DIR/release"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DATA="$(mktemp -d)"
SERVER=""
cleanup() {
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER"
        wait "$SERVER" || log "server exited with $? (log: $DATA/server.log)"
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT

log "starting auscult (whisper) on 127.0.0.1:$PORT"
AUSCULT_ENGINE=whisper AUSCULT_DATA_DIR="$DATA" AUSCULT_LISTEN="127.0.0.1:$PORT" \
    AUSCULT_MAX_SESSIONS=64 AUSCULT_MAX_SESSIONS_PER_USER=64 RUST_LOG=warn \
    "$BIN/auscult" serve 2>"$DATA/server.log" &
SERVER=$!
# The model loads and warms up before the listener opens.
for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/server.log" >&2; exit 1; }
    sleep 0.1
done

OUT="$AUSCULT_ROOT/benches/results"
mkdir -p "$OUT"
"$BIN/auscult-asr-bench" --url "ws://127.0.0.1:$PORT/v1/stream" \
    --model-dir "$AUSCULT_WHISPER_MODEL_DIR" "$@" | tee "$OUT/asr.txt"
