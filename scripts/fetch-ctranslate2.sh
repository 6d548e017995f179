#!/usr/bin/env bash
# Installs the prebuilt CTranslate2 library the embedded Whisper engine links
# against, from the official PyPI wheel `ctranslate2` (MIT), so no machine has
# to compile CTranslate2 (about 15 minutes of C++ on 2 cores, once per cargo
# profile). The wheel's x86_64 build carries Intel MKL and oneDNN (int8 with
# AVX-512 VNNI where the CPU has it); its aarch64 build, ruy and OpenBLAS.
#
#   scripts/fetch-ctranslate2.sh [DEST]
#   (default: $AUSCULT_CTRANSLATE2_DIR, else ~/.cache/auscult-ctranslate2/VERSION:
#   outside the checkout, so every clone links the same copy and cargo's
#   fingerprints do not change with the clone's path)
#
# Idempotent. Needs pip and unzip. The version must be the one the `ct2rs`
# crate's C++ bridge is compiled against (its vendored headers), and the wheel
# is checked against a pinned SHA-256. DEST ends up holding:
#   libctranslate2.so  -> the wheel's libctranslate2-<hash>.so.VERSION
#   libgomp-<hash>.so.1.0.0   (GNU OpenMP, found through the library's RUNPATH)
#   libcpu_features.a, libcublas_static.a, libcublasLt_static.a, libculibos.a
#                      (empty: ct2rs 0.10 asks the linker for these with its
#                      `system` feature even on CPU-only builds; the wheel has
#                      cpu_features built in and no CUDA)
# Cargo must be told where DEST is: ct2rs's build script looks for the stub
# archives in CMAKE_LIBRARY_PATH, build.rs for the library in
# AUSCULT_CTRANSLATE2_DIR (default the same folder), and records DEST (and
# $ORIGIN/lib) as the binary's run-time search path. scripts/setup.sh exports
# both; by hand: export CMAKE_LIBRARY_PATH="$DEST".
set -euo pipefail

VERSION="4.8.4"
DEST="${1:-${AUSCULT_CTRANSLATE2_DIR:-$HOME/.cache/auscult-ctranslate2/$VERSION}}"

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64)
        PLATFORM="manylinux_2_28_x86_64"
        SHA256="1037b3f51d18f1546120686670d71fcdaf85a0500fffccc56d8439ded5d284e5"
        ;;
    Linux-aarch64)
        PLATFORM="manylinux_2_28_aarch64"
        SHA256="bd6ed9d10b46b9bc2ee801ea9624acf28bd53ffddfd5e92d23b2340dbc4d6474"
        ;;
    *)
        echo "fetch-ctranslate2: no prebuilt CTranslate2 for $(uname -s)-$(uname -m);" \
            "build it from source instead: cargo build --no-default-features --features whisper-source" >&2
        exit 1
        ;;
esac

if [ -e "$DEST/libctranslate2.so" ] && [ -f "$DEST/libculibos.a" ] \
    && [ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$VERSION" ]; then
    echo "CTranslate2 $VERSION already present in $DEST"
    exit 0
fi

PIP="$(command -v pip3 || command -v pip || true)"
if [ -z "$PIP" ]; then
    echo "fetch-ctranslate2: pip is required" >&2
    exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The library is the same in every CPython build of the wheel; pin one so the
# hash is stable whatever Python this machine has.
"$PIP" download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform "$PLATFORM" --dest "$WORK" "ctranslate2==$VERSION"
WHEEL="$(ls "$WORK"/ctranslate2-*.whl | head -n 1)"
echo "$SHA256  $WHEEL" | sha256sum --check --quiet || {
    echo "fetch-ctranslate2: $WHEEL does not match the pinned SHA-256" >&2
    exit 1
}
unzip -q -o "$WHEEL" 'ctranslate2.libs/*' -d "$WORK/unpacked"

mkdir -p "$DEST"
rm -f "$DEST"/libctranslate2* "$DEST"/libgomp*
cp "$WORK"/unpacked/ctranslate2.libs/* "$DEST"/
LIB="$(cd "$DEST" && ls libctranslate2-*.so.* | head -n 1)"
ln -sf "$LIB" "$DEST/libctranslate2.so"
for stub in cpu_features cublas_static cublasLt_static culibos; do
    ar rcs "$DEST/lib$stub.a"
done
echo "$VERSION" >"$DEST/VERSION"
echo "installed CTranslate2 $VERSION ($LIB) into $DEST"
