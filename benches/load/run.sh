#!/usr/bin/env bash
# Load scenarios of `make bench`: the origin alone, the gateway as a plain proxy, the gateway's
# full pipeline, the same with a Redis-shared limit, and nginx's proxy_pass; then cache hits of
# one 1 KiB object from the gateway's memory and Redis stores beside nginx's proxy_cache. Each
# runs under wrk at a fixed concurrency for a fixed time. Prints one table. Everything listens on 127.0.0.1 only.
#
# Needs: wrk (apt-get install wrk); optional: nginx (fast origin and the comparison), redis-server.
# Tunables: BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_CONNECTIONS (50), BENCH_ROUNDS (3).
# BENCH_BASELINE=<path>[:<path>...] adds the plain and full scenarios of other gateway builds to
# the same rounds (labelled by file name), for a before/after comparison in one sitting.
# Scenarios are measured in interleaved rounds and the median round is reported, so a noisy
# neighbour during one run does not decide a ratio.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GATEWAY=$ROOT/target/release/gateway
DEMO=$ROOT/target/release/examples/demo_backend
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNECTIONS=${BENCH_CONNECTIONS:-50}
ROUNDS=${BENCH_ROUNDS:-3}
WORK=$(mktemp -d)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
[ -x "$GATEWAY" ] || { echo "build first: cargo build --release" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# With two cores or more, the proxy under test gets core 0, the origin and wrk core 1.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  PROXY_CPU=(taskset -c 0); AUX_CPU=(taskset -c 1); PINNING="proxy on core 0, origin and wrk on core 1"
else
  PROXY_CPU=(); AUX_CPU=(); PINNING="no pinning (one core)"
fi

start() { # start <name> <cpu-prefix...> -- <command...>; records the pid in $LAST_PID
  local name=$1; shift
  local prefix=()
  while [ "$1" != "--" ]; do prefix+=("$1"); shift; done
  shift
  "${prefix[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

nginx_conf() { # nginx_conf <file> <body of http{}>
  cat >"$1" <<CONF
worker_processes 1;
daemon off;
pid $WORK/$(basename "$1").pid;
error_log $WORK/$(basename "$1").error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK;
  proxy_temp_path $WORK;
  fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK;
  scgi_temp_path $WORK;
  $2
}
CONF
}

# --- origin -------------------------------------------------------------------------------
ORIGIN=$(free_port)
if command -v nginx >/dev/null; then
  nginx_conf "$WORK/origin.conf" "server { listen 127.0.0.1:$ORIGIN; location / { return 200 'hello from the origin\n'; } location /cached { return 200 '$(head -c 1024 /dev/zero | tr '\0' 'x')'; } }"
  start origin "${AUX_CPU[@]}" -- nginx -c "$WORK/origin.conf" -p "$WORK"
  ORIGIN_KIND="nginx $(nginx -v 2>&1 | sed 's/.*\///')"
else
  start origin "${AUX_CPU[@]}" -- "$DEMO" "origin=127.0.0.1:$ORIGIN"
  ORIGIN_KIND="demo_backend (nginx not installed)"
fi
wait_port "$ORIGIN"

# --- measurement --------------------------------------------------------------------------
peak_rss_mib() { # the largest VmHWM among a pid and its children
  local max=0 pid v
  for pid in "$1" $(pgrep -P "$1" 2>/dev/null); do
    v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${v:-0}" -gt "$max" ] && max=$v
  done
  echo "$(( max / 1024 )) MiB"
}

LABELS=(); URLS=(); PIDS_OF=(); HEADERS=(); KINDS=()
scenario() { # scenario <label> <url> <pid or -> [header] [kind: proxy (default) or cache]
  LABELS+=("$1"); URLS+=("$2"); PIDS_OF+=("$3"); HEADERS+=("${4:-}"); KINDS+=("${5:-proxy}")
}

gateway_config() { # gateway_config <file> <proxy port> <log level> <access log> <extra yaml> [upstream keys]
  cat >"$1" <<YAML
server: {threads: 1, pid_file: $WORK/$(basename "$1").pid, upgrade_sock: $WORK/$(basename "$1").sock, grace_period: 1s, graceful_shutdown_timeout: 1s}
listen: {proxy: "127.0.0.1:$2", metrics: "127.0.0.1:$(free_port)", admin: "127.0.0.1:$(free_port)"}
log: {level: $3, format: json, access_log: $4}
upstreams:
  origin: {backends: [{addr: "127.0.0.1:$ORIGIN"}], connect_timeout: 1s, read_timeout: 10s${6:+, $6}}
$5
YAML
}

echo "origin: $ORIGIN_KIND; $PINNING; wrk -t1 -c$CONNECTIONS -d$DURATION after $WARMUP warm-up, $ROUNDS rounds" >&2

# 1. Direct: what the origin does without a proxy in front.
scenario "direct to origin" "http://127.0.0.1:$ORIGIN/api/items" -

# 2. Gateway, plain proxy: one route, no auth, no limit, no access log.
PORT=$(free_port)
gateway_config "$WORK/plain.yaml" "$PORT" warn false "routes: [{name: api, path: /api, upstream: origin}]"
start gw-plain "${PROXY_CPU[@]}" -- "$GATEWAY" -c "$WORK/plain.yaml"
PLAIN_PID=$LAST_PID; wait_port "$PORT"
scenario "gateway: plain proxy" "http://127.0.0.1:$PORT/api/items" "$PLAIN_PID"

# 2a. The same with outlier detection and a circuit breaker on the upstream (never tripping).
RPORT=$(free_port)
gateway_config "$WORK/resilient.yaml" "$RPORT" warn false "routes: [{name: api, path: /api, upstream: origin}]" \
  "outlier: {consecutive_errors: 5}, circuit_breaker: {max_requests: 10000}"
start gw-resilient "${PROXY_CPU[@]}" -- "$GATEWAY" -c "$WORK/resilient.yaml"
RESILIENT_PID=$LAST_PID; wait_port "$RPORT"
scenario "gateway: plain + outlier + breaker" "http://127.0.0.1:$RPORT/api/items" "$RESILIENT_PID"

# 2b. Pingora itself: the smallest ProxyHttp, no filters (what the gateway is built on).
BARE=$ROOT/target/release/examples/bare_proxy
if [ -x "$BARE" ]; then
  BPORT=$(free_port)
  start bare "${PROXY_CPU[@]}" -- "$BARE" "127.0.0.1:$BPORT" "127.0.0.1:$ORIGIN"
  wait_port "$BPORT"
  scenario "pingora: bare proxy" "http://127.0.0.1:$BPORT/api/items" "$LAST_PID"
fi

# 3. Gateway, full pipeline: route + JWT + a limit that never triggers + security headers +
#    metrics + the access log.
HASH=$(printf 'bench-password\n' | "$GATEWAY" hash-password)
full_routes() { # full_routes <store>
  cat <<YAML
auth:
  jwt: {algorithm: HS256, secret: bench-secret-0123456789abcdefghij, issuer: bench, audience: api}
  users: [{username: bench, password_hash: "$HASH", roles: [user]}]
security:
  headers: {x_frame_options: DENY, x_content_type_options: nosniff}
routes:
  - name: api
    path: /api
    upstream: origin
    auth: {required: true, roles: [user]}
    rate_limit: {store: $1, rate: 10000000/s, burst: 10000000, key: [client_ip, user]}
YAML
}
full_gateway() { # full_gateway <name> <label> <store> <extra yaml> [binary]
  local port
  port=$(free_port)
  gateway_config "$WORK/$1.yaml" "$port" info true "$4
$(full_routes "$3")"
  start "$1" "${PROXY_CPU[@]}" -- "${5:-$GATEWAY}" -c "$WORK/$1.yaml"
  local pid=$LAST_PID
  wait_port "$port"
  local token
  token=$(curl -s -X POST "http://127.0.0.1:$port/auth/login" -d '{"username":"bench","password":"bench-password"}' |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  scenario "$2" "http://127.0.0.1:$port/api/items" "$pid" "Authorization: Bearer $token"
}
full_gateway gw-full "gateway: full pipeline" memory ""

# 3b. The same two scenarios on other builds, when asked.
IFS=':' read -r -a BASELINES <<<"${BENCH_BASELINE:-}"
for bin in "${BASELINES[@]}"; do
  [ -x "$bin" ] || { echo "BENCH_BASELINE: not an executable: $bin" >&2; exit 1; }
  name=$(basename "$bin")
  PORT=$(free_port)
  gateway_config "$WORK/$name-plain.yaml" "$PORT" warn false "routes: [{name: api, path: /api, upstream: origin}]"
  start "$name-plain" "${PROXY_CPU[@]}" -- "$bin" -c "$WORK/$name-plain.yaml"
  BASE_PID=$LAST_PID; wait_port "$PORT"
  scenario "$name: plain proxy" "http://127.0.0.1:$PORT/api/items" "$BASE_PID"
  full_gateway "$name-full" "$name: full pipeline" memory "" "$bin"
done

# 4. The same with the limit shared through a local redis-server (one Lua round trip a request).
if command -v redis-server >/dev/null; then
  RPORT=$(free_port)
  start redis "${AUX_CPU[@]}" -- redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no
  wait_port "$RPORT"
  full_gateway gw-redis "gateway: full, Redis limit" redis "redis: {url: \"redis://127.0.0.1:$RPORT/0\", timeout: 100ms}"
fi

# 5. nginx proxy_pass with upstream keep-alive: the reference for the proxy scenarios.
NGINX_LABEL=""
if command -v nginx >/dev/null; then
  NPORT=$(free_port)
  nginx_conf "$WORK/proxy.conf" "upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server { listen 127.0.0.1:$NPORT; location /api { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  start nginx-proxy "${PROXY_CPU[@]}" -- nginx -c "$WORK/proxy.conf" -p "$WORK"
  wait_port "$NPORT"
  NGINX_LABEL="nginx: proxy_pass"
  scenario "$NGINX_LABEL" "http://127.0.0.1:$NPORT/api/items" "$LAST_PID"
fi

# 6. Cache hits: one 1 KiB object, served by the gateway's memory store, its Redis store, and
#    nginx's proxy_cache (the reference for these rows).
CACHE_MEMORY=64MiB
cache_gateway() { # cache_gateway <name> <label> <cache section> [redis section]
  local port
  port=$(free_port)
  gateway_config "$WORK/$1.yaml" "$port" warn false "${4:-}
cache: $3
routes: [{name: cached, path: /cached, upstream: origin, cache: {enabled: true, ttl: 1h}}]"
  start "$1" "${PROXY_CPU[@]}" -- "$GATEWAY" -c "$WORK/$1.yaml"
  local pid=$LAST_PID
  wait_port "$port"
  if [ "${5:-}" = fill ]; then
    # Fill the store past its bound with distinct 1 KiB objects first, so the peak RSS column
    # is the process with a full cache.
    cat >"$WORK/fill.lua" <<'LUA'
local n = 0
request = function() n = n + 1; return wrk.format(nil, "/cached/fill-" .. n) end
LUA
    "${AUX_CPU[@]}" wrk -t1 -c50 -d8s -s "$WORK/fill.lua" "http://127.0.0.1:$port" >/dev/null
  fi
  curl -s -o /dev/null "http://127.0.0.1:$port/cached/object"
  scenario "$2" "http://127.0.0.1:$port/cached/object" "$pid" "" cache
}
cache_gateway gw-cache-memory "gateway: cache hit, memory store ($CACHE_MEMORY, filled)" "{store: memory, memory_size: $CACHE_MEMORY}" "" fill
if [ -n "${RPORT:-}" ]; then
  cache_gateway gw-cache-redis "gateway: cache hit, Redis store" "{store: redis, memory_size: 0}" \
    "redis: {url: \"redis://127.0.0.1:$RPORT/1\", timeout: 100ms}"
fi
NGINX_CACHE_LABEL=""
if command -v nginx >/dev/null; then
  CPORT=$(free_port)
  mkdir -p "$WORK/nginx-cache"
  nginx_conf "$WORK/cache.conf" "proxy_cache_path $WORK/nginx-cache keys_zone=bench:10m;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server { listen 127.0.0.1:$CPORT; location /cached { proxy_cache bench; proxy_cache_valid 200 1h; proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  start nginx-cache "${PROXY_CPU[@]}" -- nginx -c "$WORK/cache.conf" -p "$WORK"
  wait_port "$CPORT"
  curl -s -o /dev/null "http://127.0.0.1:$CPORT/cached/object"
  NGINX_CACHE_LABEL="nginx: proxy_cache hit"
  scenario "$NGINX_CACHE_LABEL" "http://127.0.0.1:$CPORT/cached/object" "$LAST_PID" "" cache
fi

# Interleaved rounds: every scenario once per round; one file of results per scenario.
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!LABELS[@]}"; do
    args=()
    [ -n "${HEADERS[$i]}" ] && args=(-H "${HEADERS[$i]}")
    "${AUX_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "${args[@]}" "${URLS[$i]}" >/dev/null
    out=$("${AUX_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${args[@]}" "${URLS[$i]}")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    sockerr=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    echo "$rps|$p50|$p99|$(( ${non2xx:-0} + ${sockerr:-0} ))" >>"$WORK/result.$i"
    echo "  round $round: ${LABELS[$i]}: $rps req/s" >&2
  done
done

median_row() { # the round with the median requests/s
  sort -t'|' -k1,1 -g "$1" | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2)'
}

NGINX_RPS=""
NGINX_CACHE_RPS=""
BARE_RPS=""
for i in "${!LABELS[@]}"; do
  [ "${LABELS[$i]}" = "$NGINX_LABEL" ] && NGINX_RPS=$(median_row "$WORK/result.$i" | cut -d'|' -f1)
  [ "${LABELS[$i]}" = "$NGINX_CACHE_LABEL" ] && NGINX_CACHE_RPS=$(median_row "$WORK/result.$i" | cut -d'|' -f1)
  [ "${LABELS[$i]}" = "pingora: bare proxy" ] && BARE_RPS=$(median_row "$WORK/result.$i" | cut -d'|' -f1)
done

ratio() { # ratio <a> <b>: a/b with two decimals, or - without b
  if [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi
}

# --- table --------------------------------------------------------------------------------
printf '\n| scenario | requests/s | p50 | p99 | errors | peak RSS | vs bare pingora | vs nginx (proxy_pass, or proxy_cache for hits) |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for i in "${!LABELS[@]}"; do
  IFS='|' read -r rps p50 p99 errors <<<"$(median_row "$WORK/result.$i")"
  rss="-"
  [ "${PIDS_OF[$i]}" != "-" ] && rss=$(peak_rss_mib "${PIDS_OF[$i]}")
  vs_bare="-"; vs_nginx="-"
  if [ "${KINDS[$i]}" = cache ]; then
    [ "${LABELS[$i]}" != "$NGINX_CACHE_LABEL" ] && vs_nginx=$(ratio "$rps" "$NGINX_CACHE_RPS")
  elif [ "${PIDS_OF[$i]}" != "-" ] && [ "${LABELS[$i]}" != "$NGINX_LABEL" ]; then
    vs_bare=$(ratio "$rps" "$BARE_RPS"); vs_nginx=$(ratio "$rps" "$NGINX_RPS")
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "${LABELS[$i]}" "$rps" "$p50" "$p99" "$errors" "$rss" "$vs_bare" "$vs_nginx"
done
printf '\n%s cores; origin: %s; %s; median of %s rounds of %s at %s connections.\n' \
  "$(nproc)" "$ORIGIN_KIND" "$PINNING" "$ROUNDS" "$DURATION" "$CONNECTIONS"
