#!/usr/bin/env bash
# Speech benchmark (issue 14): accuracy, latency, capacity and memory of the
# embedded Whisper engine over the full WebSocket path, on this machine.
#
#   [MODEL=tiny.en|base] scripts/bench-asr.sh [auscult-asr-bench options...]
#       (e.g. --max-sessions 8, --no-capacity; see auscult-asr-bench --help)
#
# Targets (real-time 16 kHz streams, 2 cores): >= 8 concurrent streams
# (stretch: 14), each with its last final <= 1.5 s after its audio ends and
# the WER within 1 point of the single-stream WER of the same clips; the
# first partial <= 1.0 s after speech starts; a final <= 1.0 s after each
# utterance ends; single-stream WER <= offline decoding of the same clips
# + 1 point; server RSS <= 400 MB at 8 streams. The bench reports the largest
# stream count that met its step criteria (`max_realtime_sessions`).
#
# MODEL picks what scripts/fetch-model.sh installs (tiny.en, the default, in
# models/whisper-tiny.en; base in models/whisper-base);
# AUSCULT_WHISPER_MODEL_DIR overrides the folder. AUSCULT_WHISPER_WORKERS and
# AUSCULT_WHISPER_THREADS, when set, reach the server from the environment;
# AUSCULT_WHISPER_MAX_STREAMS defaults to 64 so admission does not cap the
# concurrency search. SERVER_ENV (e.g. "MALLOC_ARENA_MAX=2") is added to
# the server's environment only, for allocator and thread experiments.
#
# Builds release binaries, starts `auscult` with AUSCULT_ENGINE=whisper on a
# free loopback port over a temporary data directory, runs `auscult-asr-bench`
# against it (espeak-ng clinical dictation streamed in real time, the server's
# RSS sampled through its pid; see benches/asr/main.rs), then stops the
# server. The bench prints tables and, as its last line, one JSON object;
# both are also kept in benches/results/asr.txt (tiny.en) or
# benches/results/asr-<model>.txt. It takes all the CPU for several minutes:
# run it on an otherwise idle machine.
source "$(dirname "$0")/setup.sh"
cd "$AUSCULT_ROOT"
ensure_build_deps
ensure_apt espeak-ng
if [ -n "${MODEL:-}" ]; then
    case "$MODEL" in
        tiny.en | base) ;;
        *)
            log "MODEL must be tiny.en or base (scripts/fetch-model.sh), not $MODEL"
            exit 1
            ;;
    esac
    export AUSCULT_WHISPER_MODEL_DIR="${AUSCULT_WHISPER_MODEL_DIR:-$AUSCULT_ROOT/models/whisper-$MODEL}"
    "$AUSCULT_ROOT/scripts/fetch-model.sh" "$MODEL" "$AUSCULT_WHISPER_MODEL_DIR"
else
    export AUSCULT_WHISPER_MODEL_DIR="${AUSCULT_WHISPER_MODEL_DIR:-$AUSCULT_ROOT/models/whisper-tiny.en}"
    # tiny.en, unless the folder already holds a model.
    ensure_model
    # Named after the folder: models/whisper-base is "base".
    MODEL="$(basename "$AUSCULT_WHISPER_MODEL_DIR")"
    MODEL="${MODEL#whisper-}"
fi
if [ "$MODEL" = tiny.en ]; then
    RESULTS=asr.txt
else
    RESULTS="asr-$MODEL.txt"
fi

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
    AUSCULT_WHISPER_MAX_STREAMS="${AUSCULT_WHISPER_MAX_STREAMS:-64}" \
    env ${SERVER_ENV:-} "$BIN/auscult" serve 2>"$DATA/server.log" &
SERVER=$!
# The model loads and warms up before the listener opens.
for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$DATA/server.log" >&2; exit 1; }
    sleep 0.1
done

OUT="$AUSCULT_ROOT/benches/results"
mkdir -p "$OUT"
log "benchmarking $AUSCULT_WHISPER_MODEL_DIR; results in benches/results/$RESULTS"
"$BIN/auscult-asr-bench" --url "ws://127.0.0.1:$PORT/v1/stream" \
    --model-dir "$AUSCULT_WHISPER_MODEL_DIR" --server-pid "$SERVER" "$@" | tee "$OUT/$RESULTS"
