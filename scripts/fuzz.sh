#!/usr/bin/env bash
# Fuzzes each parser target in fuzz/ (README "Fuzzing") for SECONDS (default
# 60), one at a time, prints every target's executions and crashes, and exits
# non-zero if any crashed. Needs the nightly toolchain (libFuzzer, AddressSanitizer);
# installs cargo-fuzz when it is missing.
#
#   scripts/fuzz.sh [SECONDS] [LIBFUZZER_FLAG...]
#   scripts/fuzz.sh 600 -runs=1000000      stops at whichever comes first
#   FUZZ_TARGETS="range wav" scripts/fuzz.sh
#
# New corpus entries go to fuzz/corpus/<target> (ignored by git; the checked-in
# seeds are in fuzz/seeds/<target>), crashing inputs to fuzz/artifacts/<target>.
# Replay one with `cargo +nightly fuzz run <target> <file>`.
source "$(dirname "$0")/setup.sh"

budget="${1:-60}"
shift $(($# > 0 ? 1 : 0))
# A target dir of its own: sanitizer builds cannot share the main crate's artifacts.
fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
    log "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$AUSCULT_ROOT/fuzz"
read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr '\n' ' ')}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

log "building ${#targets[@]} targets"
cargo +nightly fuzz build --target-dir "$fuzz_target_dir"

failed=0
rows=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    before="$(find "artifacts/$target" -type f | wc -l)"
    log "fuzzing $target for ${budget}s"
    started="$(date +%s)"
    status=0
    cargo +nightly fuzz run --target-dir "$fuzz_target_dir" "$target" \
        "corpus/$target" "${seeds[@]}" -- -max_total_time="$budget" "$@" \
        >"$logs/$target.log" 2>&1 || status=$?
    took=$(($(date +%s) - started))
    # libFuzzer ends with `Done N runs in S second(s)` (-runs) or `#N DONE`
    # (-max_total_time); after a crash the last `#N` status line is the count.
    runs="$(grep -oE 'Done [0-9]+ runs' "$logs/$target.log" | tail -n 1 | grep -oE '[0-9]+' || true)"
    if [ -z "$runs" ]; then
        runs="$(grep -oE '^#[0-9]+' "$logs/$target.log" | tail -n 1 | tr -d '#' || true)"
    fi
    crashes=$(($(find "artifacts/$target" -type f | wc -l) - before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # failed without writing an input (a build or setup error)
    fi
    if [ "$crashes" -gt 0 ]; then
        failed=1
        log "$target failed; the end of its output:"
        tail -n 40 "$logs/$target.log" >&2
    fi
    rows+=("$(printf '%-16s %12s %8s %8s' "$target" "${runs:-?}" "$crashes" "${took}s")")
done

printf '%-16s %12s %8s %8s\n' target executions crashes time
printf '%s\n' "${rows[@]}"
exit "$failed"
