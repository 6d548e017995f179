#!/usr/bin/env bash
# Load benchmark: how many concurrent sessions one instance holds.
#
#   scripts/bench-load.sh [SESSION_COUNTS...]      (default: 250 500 1000 1500 2000)
#   TRANSPORT=socketio scripts/bench-load.sh 1000  (Socket.IO over an Engine.IO WebSocket)
#
# For each count it starts a fresh release `auscult` with the no-ASR `loadtest`
# engine on a loopback port, runs `auscult-load` (16 kHz s16le, 100 ms frames,
# real time, DURATION seconds, ramp-up RAMP seconds) with storage verification,
# and stops the server with SIGTERM. Results go to benches/results/:
# load.jsonl (one JSON object per count), load.txt (the tables), load.svg (p99
# ack latency and server RSS against session count); with TRANSPORT=socketio,
# load-socketio.jsonl, load-socketio.txt and load-socketio.svg.
source "$(dirname "$0")/setup.sh"
cd "$AUSCULT_ROOT"
ensure_build_deps

DURATION="${DURATION:-60}"
RAMP="${RAMP:-20}"
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(250 500 1000 1500 2000)
TRANSPORT="${TRANSPORT:-ws}"
OUT="$AUSCULT_ROOT/benches/results"
NAME=load
[ "$TRANSPORT" = ws ] || NAME="load-$TRANSPORT"
mkdir -p "$OUT"
: > "$OUT/$NAME.jsonl"
: > "$OUT/$NAME.txt"

# The loadtest engine needs no speech model: skip building CTranslate2
# (FEATURES="" builds the default, Whisper included; the session path is the same).
FEATURES="${FEATURES---no-default-features}"
log "building release binaries ($FEATURES)"
cargo build --release $FEATURES --bin auscult --bin auscult-load
BIN="$CARGO_TARGET_DIR/release"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PORT=$((20000 + RANDOM % 20000))
for n in "${COUNTS[@]}"; do
    DATA="$(mktemp -d)"
    log "$n sessions × ${DURATION}s (data in $DATA)"
    AUSCULT_FSYNC_INTERVAL_MS="${AUSCULT_FSYNC_INTERVAL_MS:-1000}" AUSCULT_ENGINE=loadtest AUSCULT_DATA_DIR="$DATA" AUSCULT_LISTEN="127.0.0.1:$PORT" \
        AUSCULT_MAX_SESSIONS=$((n + 100)) AUSCULT_MAX_SESSIONS_PER_USER=$((n + 100)) RUST_LOG=warn \
        "$BIN/auscult" serve 2>"$DATA/server.log" &
    SERVER=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    URL="ws://127.0.0.1:$PORT/v1/stream"
    [ "$TRANSPORT" = ws ] || URL="ws://127.0.0.1:$PORT"
    "$BIN/auscult-load" --url "$URL" --transport "$TRANSPORT" --sessions "$n" \
        --ramp-secs "$RAMP" --duration-secs "$DURATION" --rate 16000 --frame-ms 100 \
        --server-pid "$SERVER" --data-dir "$DATA" | tee "$DATA/load.out"
    { echo "== $n sessions ($TRANSPORT)"; head -n -1 "$DATA/load.out"; } >> "$OUT/$NAME.txt"
    tail -n 1 "$DATA/load.out" >> "$OUT/$NAME.jsonl"
    kill -TERM "$SERVER"
    wait "$SERVER" || log "server exited with $? (see $DATA/server.log)"
    rm -rf "$DATA"
done

python3 "$AUSCULT_ROOT/benches/load/plot.py" "$OUT/$NAME.jsonl" "$OUT/$NAME.svg"
log "results: $OUT/$NAME.txt, $OUT/$NAME.jsonl, $OUT/$NAME.svg"
cat "$OUT/$NAME.txt"
