#!/usr/bin/env bash
# Builds the real Dockerfile with buildah (no Docker engine needed), starts the gateway and a demo
# backend from the built image, and checks from the host: /health, a proxied request, the
# dashboard's index and a drain on SIGTERM. `make docker-test` runs it; it needs root, buildah
# and debootstrap (`make docker-deps`).
#
# No registry is reachable for base images, so the Dockerfile's three bases are made here when
# missing: debian:bookworm-slim by debootstrap from the apt mirror, and the Rust and Node images
# as that base plus this machine's toolchains and CA bundle, under the names the Dockerfile uses.
set -euo pipefail
cd "$(dirname "$0")/../.."

image=${IMAGE:-localhost/api-gateway:test}
export BUILDAH_ISOLATION=chroot
scratch=$(mktemp -d)
pids=()
container=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

have() { buildah inspect --type image "$1" >/dev/null 2>&1; }
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}

if ! have docker.io/library/debian:bookworm-slim; then
  echo "== base: debian:bookworm-slim (debootstrap)"
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  debootstrap --variant=minbase bookworm "$scratch/root" "${mirror:-http://deb.debian.org/debian}" >/dev/null
  # (Debian's buildah has no `import`: the tree goes into an empty container, committed.)
  base=$(buildah from --quiet scratch)
  tar -C "$scratch/root" -c . | tar -C "$(buildah mount "$base")" -x
  buildah umount "$base" >/dev/null
  buildah commit --quiet "$base" docker.io/library/debian:bookworm-slim >/dev/null
  buildah rm "$base" >/dev/null
  rm -rf "$scratch/root"
fi

# A base with one local folder copied in, tagged `name`.
derived() {
  local name=$1 context=$2 containerfile=$3
  cp "$ca" "$context/ca-certificates.crt"
  printf '%s\n' "$containerfile" > "$scratch/Containerfile"
  buildah bud --quiet --layers=false -f "$scratch/Containerfile" -t "$name" "$context" >/dev/null
}

if ! have docker.io/library/rust:1.95-slim-bookworm; then
  echo "== base: rust:1.95-slim-bookworm (this machine's toolchain)"
  mkdir -p "$scratch/rust"
  cp -a "$(rustc --print sysroot)/." "$scratch/rust/toolchain"
  rm -rf "$scratch/rust/toolchain/share/doc"
  derived docker.io/library/rust:1.95-slim-bookworm "$scratch/rust" '
FROM docker.io/library/debian:bookworm-slim
COPY toolchain /usr/local/rust
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/usr/local/cargo \
    CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
  rm -rf "$scratch/rust"
fi

if ! have docker.io/library/node:20-bookworm-slim; then
  echo "== base: node:20-bookworm-slim (this machine's node and npm)"
  mkdir -p "$scratch/node/bin"
  cp "$(command -v node)" "$scratch/node/bin/node"
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  cp -a "$npm_dir" "$scratch/node/npm"
  derived docker.io/library/node:20-bookworm-slim "$scratch/node" '
FROM docker.io/library/debian:bookworm-slim
COPY bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt'
  rm -rf "$scratch/node"
fi

echo "== building the Dockerfile as $image"
started=$(date +%s)
# Docker's image format: OCI has no SHELL, which the build stage sets.
if ! buildah bud --format docker --layers -f Dockerfile -t "$image" . >"$scratch/build.log" 2>&1; then
  tail -n 60 "$scratch/build.log" >&2
  echo "FAIL: the Dockerfile did not build" >&2
  exit 1
fi
echo "   built in $(( $(date +%s) - started )) s"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
proxy=$(free_port); metrics=$(free_port); admin=$(free_port); backend=$(free_port)

# chroot isolation shares the host's network: the listeners are the host's loopback ports.
container=$(buildah from --quiet "$image")
buildah run "$container" -- /usr/local/bin/demo_backend "app=127.0.0.1:$backend" \
  >"$scratch/backend.log" 2>&1 &
pids+=($!)
buildah run \
  --env "GATEWAY_PROXY_ADDR=127.0.0.1:$proxy" \
  --env "GATEWAY_METRICS_ADDR=127.0.0.1:$metrics" \
  --env "GATEWAY_ADMIN_ADDR=127.0.0.1:$admin" \
  --env "GATEWAY_UPSTREAM=127.0.0.1:$backend" \
  "$container" -- /usr/local/bin/gateway -c /etc/gateway/docker.yaml >"$scratch/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)

fail() {
  echo "FAIL: $*" >&2
  echo "--- gateway log" >&2; tail -n 40 "$scratch/gateway.log" >&2 || true
  echo "--- backend log" >&2; tail -n 20 "$scratch/backend.log" >&2 || true
  exit 1
}
for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$proxy/health" >"$scratch/health" 2>/dev/null && break
  kill -0 "$gateway" 2>/dev/null || fail "the gateway exited at start"
  sleep 0.2
done
grep -q '"status":"ok"' "$scratch/health" || fail "/health: $(cat "$scratch/health" 2>/dev/null)"
echo "ok: /health $(cat "$scratch/health")"

body=$(curl -fsS "http://127.0.0.1:$proxy/items/7") || fail "no answer through the proxy"
grep -q '"backend":"app"' <<<"$body" || fail "the proxied answer is not the backend's: $body"
echo "ok: proxied GET /items/7 -> $body"

index=$(curl -fsS "http://127.0.0.1:$admin/") || fail "no dashboard index"
grep -qi '<div id="root">' <<<"$index" || fail "the dashboard index: $index"
echo "ok: dashboard index served from the image"

# SIGTERM to the gateway itself, as a container runtime sends it (buildah run would kill it):
# chroot isolation shares the host's process table, and its environment names its listener.
inside=
for p in $(pgrep -x gateway); do
  if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "GATEWAY_PROXY_ADDR=127.0.0.1:$proxy"; then
    inside=$p
  fi
done
[ -n "$inside" ] || fail "the gateway's process was not found"
kill -TERM "$inside"
for _ in $(seq 1 100); do kill -0 "$gateway" 2>/dev/null || break; sleep 0.1; done
kill -0 "$gateway" 2>/dev/null && fail "still running 10 s after SIGTERM"
grep -q "SIGTERM received, gracefully exiting" "$scratch/gateway.log" \
  || fail "no drain in the log after SIGTERM"
echo "ok: drained and exited on SIGTERM"
