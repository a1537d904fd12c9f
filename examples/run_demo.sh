#!/usr/bin/env bash
# `make run`: three demo backends, Prometheus when it is installed, then the gateway on
# conf/gateway.yaml in the foreground; Ctrl-C stops everything. The gateway starts only once
# every backend listens, and a backend address that is taken stops the run with its error.
set -euo pipefail
cd "$(dirname "$0")/.."

backends=(users-1=127.0.0.1:9001 users-2=127.0.0.1:9002 orders=127.0.0.1:9003)
scratch=$(mktemp -d)
children=()
stop() {
  for p in "${children[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap stop EXIT INT TERM

./target/debug/examples/demo_backend "${backends[@]}" >"$scratch/backends.log" 2>&1 &
children+=($!)
until grep -q "demo backends ready" "$scratch/backends.log"; do
  if ! kill -0 "${children[0]}" 2>/dev/null; then
    cat "$scratch/backends.log" >&2
    echo "make run: the demo backends could not start" >&2
    exit 1
  fi
  sleep 0.1
done
grep "listening on" "$scratch/backends.log"

# Prometheus for the dashboard's PromQL page, scraping the metrics listener, when installed.
if command -v prometheus >/dev/null; then
  cat >"$scratch/prometheus.yml" <<'YAML'
global: {scrape_interval: 5s}
scrape_configs:
  - job_name: gateway
    static_configs: [{targets: ["127.0.0.1:9090"]}]
YAML
  prometheus --config.file="$scratch/prometheus.yml" --storage.tsdb.path="$scratch/prometheus" \
    --web.listen-address=127.0.0.1:9091 >"$scratch/prometheus.log" 2>&1 &
  children+=($!)
  export GATEWAY_PROMETHEUS_URL=http://127.0.0.1:9091
  echo "prometheus: http://127.0.0.1:9091/ (scraping the gateway every 5 s)"
else
  echo "prometheus not installed: the dashboard's PromQL page stays off (apt-get install prometheus)"
fi

echo "dashboard: http://127.0.0.1:9080/ (sign in as admin / password123)"
./target/debug/gateway --demo -c conf/gateway.yaml
