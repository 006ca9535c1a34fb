# syntax=docker/dockerfile:1
#
# matrix-federation-exporter container image.
#
#   docker build --build-arg MFE_GIT_REVISION="$(git rev-parse --short HEAD)" -t matrix-federation-exporter .
#   docker run -p 9448:9448 \
#     -v "$PWD/config.yml:/etc/matrix-federation-exporter/config.yml:ro" matrix-federation-exporter
#
# The configuration is read from /etc/matrix-federation-exporter/config.yml (deploy/README.md); the image ships
# examples/config.yml there, so mount your own file over it. Any other flag can be appended to `docker run`
# after the image name (they replace CMD, so repeat --config.file when you add some).

# ---------------------------------------------------------------- build
# The toolchain the project is developed with; Cargo.toml's rust-version is the minimum it supports.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Shown by matrix_federation_exporter_build_info{revision}; "unknown" when not given.
ARG MFE_GIT_REVISION=unknown
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The runbook is built into the binary (GET /runbook).
COPY docs/runbook.md ./docs/runbook.md
# Only the library and the binary are built (no tests, examples or dev-dependencies). The cache mounts keep the
# crates.io downloads and compiled dependencies between builds; the binary is copied out of the cached target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    MFE_GIT_REVISION="$MFE_GIT_REVISION" cargo build --release --locked --bin matrix-federation-exporter \
    && install -D -m 0755 target/release/matrix-federation-exporter /out/matrix-federation-exporter

# ---------------------------------------------------------------- run
# Same Debian release as the build image, so the glibc the binary links against is there.
FROM debian:bookworm-slim
# ca-certificates: tls.trust_store "system" (the default) judges certificates against the OS store, as Synapse
# does. curl: only for HEALTHCHECK. The runtime image has no HTTP client; curl costs a few MB, and is easier to
# review than a bash /dev/tcp one-liner (the alternative that adds nothing). Kubernetes ignores HEALTHCHECK and
# uses the probes in deploy/kubernetes/ instead.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# A fixed non-root UID/GID, so Kubernetes' runAsNonRoot can verify it and mounted files can be owned by it.
RUN groupadd --system --gid 10001 mfe \
    && useradd --system --uid 10001 --gid mfe --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mfe
COPY --from=build /out/matrix-federation-exporter /usr/local/bin/matrix-federation-exporter
COPY examples/config.yml /etc/matrix-federation-exporter/config.yml
USER 10001:10001
EXPOSE 9448
# /-/healthy answers 200 as long as the HTTP server runs. Change the port here too if you change
# --web.listen-address; with a web config that turns on TLS or basic auth, /-/healthy needs those as well, so
# override this check (docker run --health-cmd=...) or switch it off (--no-healthcheck).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "--output", "/dev/null", "http://127.0.0.1:9448/-/healthy"]
ENTRYPOINT ["matrix-federation-exporter"]
CMD ["--config.file=/etc/matrix-federation-exporter/config.yml"]
