# syntax=docker/dockerfile:1
# kpulse container image: a release build on the pinned Rust toolchain, copied into distroless.
#
#   docker build -t kpulse:dev .
#
# glibc, not musl: the binary links only glibc and libgcc (TLS is rustls with ring, no OpenSSL),
# which distroless/cc provides together with CA certificates and tzdata. The builder is Debian 12
# (bookworm) like the runtime image, so the glibc versions match.

FROM rust:1.95.0-slim-bookworm AS build
# The image's toolchain is the one rust-toolchain.toml pins; use it as is (the release build
# needs neither rustfmt nor clippy, which the toolchain file would otherwise download).
ENV RUSTUP_TOOLCHAIN=1.95.0 \
    CARGO_TERM_COLOR=never
WORKDIR /src
# Cargo.toml names the bench and e2e targets, so their sources must exist for the manifest to load.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY src ./src
COPY benches ./benches
COPY e2e ./e2e
# Cache mounts keep the registry and compiled dependencies between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kpulse \
 && cp target/release/kpulse /kpulse

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="kpulse" \
      org.opencontainers.image.description="Event-driven Kubernetes alerting operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /kpulse /usr/local/bin/kpulse
# nonroot (65532), as the chart's securityContext expects; the root filesystem can be read-only:
# kpulse writes nothing to disk (its state goes to the ConfigMap kpulse-state).
USER 65532:65532
# 8080: /healthz /readyz /status; 9090: /metrics and POST /test-channel.
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/kpulse"]
CMD ["run"]
