# Multi-stage build of the gateway image: Rust build (dependencies cached in their own layer),
# the dashboard build, and a slim Debian runtime as a non-root user.
#
#   docker build -t api-gateway .        (make docker)
#   docker run --add-host=host.docker.internal:host-gateway -p 8080:8080 -p 9090:9090 api-gateway

# Debian stable's packages take security fixes under the same name; pinned versions would break
# the build as soon as the mirror moves on.
FROM rust:1.95-slim-bookworm AS build
# cmake: zlib-ng; perl and make: the vendored OpenSSL; protobuf-compiler: the etcd client.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake perl make gcc g++ pkg-config protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Dependencies first: this layer stays cached until Cargo.toml or Cargo.lock change. Cargo reads
# every target the manifest declares, so each [[bench]] and [[example]] gets a placeholder, named
# from the manifest itself.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches examples \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && awk '/^\[\[bench\]\]/ { dir = "benches" } /^\[\[example\]\]/ { dir = "examples" } \
            /^name = / && dir { gsub(/"/, "", $3); print dir "/" $3 ".rs"; dir = "" }' Cargo.toml \
       | while read -r stub; do echo 'fn main() {}' > "$stub"; done \
    && cargo build --release --locked --bin gateway \
    && rm -rf src benches examples
COPY src ./src
COPY benches ./benches
COPY examples ./examples
# The stub build left its own artefacts: make sure the real sources are newer.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin gateway --example demo_backend

# The dashboard: static files the admin listener serves (admin.dashboard_dir in conf/docker.yaml).
FROM node:20-bookworm-slim AS dashboard
WORKDIR /dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard ./
RUN npm run build

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
    && mkdir -p /run/gateway \
    && chown 10001:10001 /run/gateway
COPY --from=build /src/target/release/gateway /usr/local/bin/gateway
COPY --from=build /src/target/release/examples/demo_backend /usr/local/bin/demo_backend
COPY --from=dashboard /dashboard/dist /usr/share/gateway/dashboard
COPY conf /etc/gateway
# Listeners from the environment (see conf/docker.yaml): the proxy and metrics listen on every
# interface, the admin listener on loopback unless GATEWAY_ADMIN_ADDR says otherwise.
ENV GATEWAY_PROXY_ADDR=0.0.0.0:8080 \
    GATEWAY_METRICS_ADDR=0.0.0.0:9090 \
    GATEWAY_ADMIN_ADDR=127.0.0.1:9080
EXPOSE 8080 9090 9080
# The gateway user (numeric, so the runtime need not look the name up).
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/health"]
STOPSIGNAL SIGTERM
# The gateway is PID 1: it drains on SIGTERM within server.grace_period.
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["-c", "/etc/gateway/docker.yaml"]
