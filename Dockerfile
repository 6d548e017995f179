# syntax=docker/dockerfile:1.7
# The Auscult server image: the release binary with the embedded Whisper
# engine, its prebuilt CTranslate2 library and the Whisper model.
#
#   docker build -t auscult .                      # tiny.en (the default)
#   docker build --build-arg WHISPER_MODEL=base -t auscult .
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts
# that keep cargo's registry and target folder between builds.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build
ENV AUSCULT_CTRANSLATE2_DIR=/opt/ctranslate2 \
    CMAKE_LIBRARY_PATH=/opt/ctranslate2 \
    CARGO_TARGET_DIR=/build/target

# What scripts/setup.sh installs to build (a C++ compiler for ct2rs's bridge,
# pkg-config, unzip, pip), the prebuilt CTranslate2 from its PyPI wheel and
# the Whisper model, both checked against pinned SHA-256s. A layer of its own:
# it changes only with these scripts.
ARG WHISPER_MODEL=tiny.en
COPY scripts/setup.sh scripts/fetch-ctranslate2.sh scripts/fetch-model.sh scripts/
RUN . scripts/setup.sh \
    && ensure_build_deps \
    && scripts/fetch-model.sh "$WHISPER_MODEL" /build/models/whisper \
    && rm -rf /var/lib/apt/lists/*

COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY migrations migrations
COPY static static
COPY benches benches
COPY src src
# Dependencies are compiled once and kept in the target cache mount; a source
# change rebuilds only this crate. The binary leaves the mount by `install`.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin auscult \
    && install -D -m 0755 /build/target/release/auscult /out/auscult

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# ca-certificates: TLS to AWS (S3, SQS, Transcribe) and Riva. libstdc++6 and
# libgcc-s1: CTranslate2's C++ runtime (in the slim image today; named so a
# base change cannot drop them). Nothing else: the health check is the binary.
# Versions are not pinned (DL3008): the base tag fixes the Debian release,
# whose point releases carry the security fixes this stage should pick up,
# and exact versions vanish from the archive when they do.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 libgcc-s1 \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid, so the data dir's owner is the same in every task. The data
# dir is made here with its owner and mode: ECS copies both into the Fargate
# bind mount (ephemeral storage) that the task definition mounts on it.
RUN groupadd --system --gid 10001 auscult \
    && useradd --system --uid 10001 --gid auscult --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin auscult \
    && install -d -o auscult -g auscult -m 0700 /var/lib/auscult

# The binary's run-time search path includes $ORIGIN/lib (build.rs): the
# library and the OpenMP runtime it needs go beside it in lib/.
COPY --from=builder /opt/ctranslate2/libctranslate2-*.so.* /opt/ctranslate2/libgomp-*.so.* /opt/auscult/lib/
COPY --from=builder /build/models/whisper /opt/auscult/models/whisper
COPY --from=builder /out/auscult /opt/auscult/auscult

ENV AUSCULT_LISTEN=0.0.0.0:8080 \
    AUSCULT_ADMIN_LISTEN=0.0.0.0:9090 \
    AUSCULT_DATA_DIR=/var/lib/auscult \
    AUSCULT_WHISPER_MODEL_DIR=/opt/auscult/models/whisper \
    AUSCULT_LOG_FORMAT=json
VOLUME ["/var/lib/auscult"]
# 8080: the service (WebSocket, Socket.IO, /v1, the page); 9090: the admin
# listener (/metrics, the detailed /ready), for the private network only.
EXPOSE 8080 9090
USER 10001:10001
# SIGTERM starts the drain: stop accepting, flush, store, close every session
# within AUSCULT_SHUTDOWN_GRACE_SECS (25 s, inside ECS's 30 s stopTimeout).
STOPSIGNAL SIGTERM
# Liveness only (/health); readiness (/ready) is the load balancer's check.
# The start period covers loading and warming the model before the listener
# opens.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/auscult/auscult", "health"]
ENTRYPOINT ["/opt/auscult/auscult"]
CMD ["serve"]
