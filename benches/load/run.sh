#!/usr/bin/env bash
# Load scenarios of `make bench`. Proxies: the origin alone, pingora's bare proxy, pingora set up
# as the gateway sets it up (tuned_proxy), the gateway as a plain proxy (also with outlier
# detection and a breaker, and with tracing at 1%), its full pipeline (memory and Redis limit
# stores, warm and cold RS256 tokens), nginx's proxy_pass and Pingap (the other Pingora gateway:
# a plain location, and one with its JWT, limit, response-headers plugins and an access log).
# Protocols: HTTPS (TLS 1.3, keep-alive) and HTTP/2 over TLS, the gateway beside nginx with the
# same certificate. Cache hits of one 1 KiB object from the gateway's memory and Redis stores
# beside nginx's proxy_cache and Pingap's memory cache. Middlewares: three header edits beside the plain proxy, gzip of a
# 64 KiB JSON answer beside nginx's gzip. Everything listens on 127.0.0.1 only.
#
# Every scenario runs at each concurrency of BENCH_CONNECTIONS, in interleaved rounds; ratios are
# taken round by round (each scenario against its reference measured in the same round) and
# reported as the median with the spread between rounds. The table ends with the targets the
# project tracks (docs/benchmarks.md).
#
# Needs: wrk (apt-get install wrk); optional: nginx (fast origin and the comparisons),
# redis-server (Redis rows), h2load (apt-get install nghttp2-client; HTTP/2 rows), openssl
# (the certificate of the HTTPS rows), Pingap (BENCH_PINGAP, default target/bench-peers/bin/pingap,
# which `make bench-peers` installs from crates.io; without it, its rows are skipped).
# Tunables: BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_CONNECTIONS ("64 256"),
# BENCH_ROUNDS (4), BENCH_ONLY (a regular expression: only scenarios whose label matches, plus
# the references they are compared with).
# BENCH_BASELINE=<path>[:<path>...] adds the plain and full scenarios of other gateway builds to
# the same rounds (labelled by file name), for a before/after comparison in one sitting.
set -euo pipefail

ROOT=${BENCH_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
GATEWAY=$ROOT/target/release/gateway
DEMO=$ROOT/target/release/examples/demo_backend
BARE=$ROOT/target/release/examples/bare_proxy
TUNED=$ROOT/target/release/examples/tuned_proxy
MINT=$ROOT/target/release/examples/mint_tokens
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
read -r -a CONCURRENCY <<<"${BENCH_CONNECTIONS:-64 256}"
ROUNDS=${BENCH_ROUNDS:-4}
PINGAP=${BENCH_PINGAP:-$ROOT/target/bench-peers/bin/pingap}
ONLY=${BENCH_ONLY:-}
# shellcheck source=benches/load/common.sh
. "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
[ -x "$GATEWAY" ] || { echo "build first: make bench-load builds what it needs" >&2; exit 1; }

seconds() { # 10s -> 10, 1m -> 60
  case $1 in *m) echo $(( ${1%m} * 60 )) ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac
}

# With two cores or more, the proxy under test gets core 0, the origin and the client core 1.
if [ "$(nproc)" -ge 2 ] && have taskset; then
  PROXY_CPU=(taskset -c 0); AUX_CPU=(taskset -c 1); PINNING="proxy on core 0, origin and client on core 1"
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

# --- scenarios ----------------------------------------------------------------------------
# Each scenario: a label, the client (wrk or h2load), the URL, the pid whose peak RSS is shown
# (- for none), its kind (proxy, https, h2, cache: which nginx row it is compared with), an
# optional request header and an optional wrk Lua script.
LABELS=(); CLIENTS=(); URLS=(); PIDS_OF=(); KINDS=(); HEADERS=(); SCRIPTS=()
scenario() { # scenario <label> <client> <url> <pid or -> <kind> [header] [script]
  LABELS+=("$1"); CLIENTS+=("$2"); URLS+=("$3"); PIDS_OF+=("$4"); KINDS+=("$5")
  HEADERS+=("${6:-}"); SCRIPTS+=("${7:-}")
}
wanted() { # wanted <label>: whether BENCH_ONLY selects it (references are always kept)
  [ -z "$ONLY" ] && return 0
  case $1 in "pingora: "*|nginx:*|"pingap: plain proxy"|"pingap: jwt + limit + headers + log") return 0 ;; esac
  case $1 in "gateway: plain proxy"|"gateway: full pipeline") return 0 ;; esac
  [[ $1 =~ $ONLY ]]
}

# --- origin -------------------------------------------------------------------------------
ORIGIN=$(free_port)
if have nginx; then
  # /cached answers say how long they may be kept (Pingap caches an answer without
  # Cache-Control for one second only).
  KIB=$(head -c 1024 /dev/zero | tr '\0' 'x')
  nginx_conf "$WORK/origin.conf" "server { listen 127.0.0.1:$ORIGIN; location / { return 200 '$KIB'; }
    location /cached { add_header Cache-Control max-age=3600; return 200 '$KIB'; } }"
  start origin "${AUX_CPU[@]}" -- nginx -c "$WORK/origin.conf" -p "$WORK"
  ORIGIN_KIND="nginx $(nginx -v 2>&1 | sed 's/.*\///'), 1 KiB answers"
else
  start origin "${AUX_CPU[@]}" -- "$DEMO" "origin=127.0.0.1:$ORIGIN"
  ORIGIN_KIND="demo_backend (nginx not installed)"
fi
wait_port "$ORIGIN"

gateway() { # gateway <name> <config file> [binary]: starts it pinned; its pid in $LAST_PID
  start "$1" "${PROXY_CPU[@]}" -- "${3:-$GATEWAY}" -c "$2"
}

# 1. Direct: what the origin does without a proxy in front.
wanted "direct to origin" && scenario "direct to origin" wrk "http://127.0.0.1:$ORIGIN/api/items" - proxy

# 2. Pingora itself: the smallest ProxyHttp, no filters (what the gateway is built on).
if [ -x "$BARE" ]; then
  BPORT=$(free_port)
  start bare "${PROXY_CPU[@]}" -- "$BARE" "127.0.0.1:$BPORT" "127.0.0.1:$ORIGIN"
  wait_port "$BPORT"
  scenario "pingora: bare proxy" wrk "http://127.0.0.1:$BPORT/api/items" "$LAST_PID" proxy
fi

# 2a. Pingora set up as the gateway sets it up (mimalloc, no modules, one runtime per thread,
# its pool size and idle timeout), no filters: what the gateway's features cost on top of it.
if [ -x "$TUNED" ]; then
  TPORT=$(free_port)
  start tuned "${PROXY_CPU[@]}" -- "$TUNED" "127.0.0.1:$TPORT" "127.0.0.1:$ORIGIN"
  wait_port "$TPORT"
  scenario "pingora: tuned as the gateway" wrk "http://127.0.0.1:$TPORT/api/items" "$LAST_PID" proxy
fi

# 3. Gateway, plain proxy: one route, no auth, no limit, no access log.
PORT=$(free_port)
gateway_config "$WORK/plain.yaml" "$PORT" warn false "$PLAIN_ROUTES"
gateway gw-plain "$WORK/plain.yaml"; PLAIN_PID=$LAST_PID; wait_port "$PORT"
scenario "gateway: plain proxy" wrk "http://127.0.0.1:$PORT/api/items" "$PLAIN_PID" proxy

# 3a. The same with outlier detection and a circuit breaker on the upstream (never tripping).
if wanted "gateway: plain + outlier + breaker"; then
  PORT=$(free_port)
  gateway_config "$WORK/resilient.yaml" "$PORT" warn false "$PLAIN_ROUTES" \
    "outlier: {consecutive_errors: 5}, circuit_breaker: {max_requests: 10000}"
  gateway gw-resilient "$WORK/resilient.yaml"; pid=$LAST_PID; wait_port "$PORT"
  scenario "gateway: plain + outlier + breaker" wrk "http://127.0.0.1:$PORT/api/items" "$pid" proxy
fi

# 3b. The same with OpenTelemetry tracing at 1% (spans go to the origin, which answers 200).
if wanted "gateway: plain + tracing 1%"; then
  PORT=$(free_port)
  gateway_config "$WORK/tracing.yaml" "$PORT" warn false "$PLAIN_ROUTES
tracing: {otlp_endpoint: \"http://127.0.0.1:$ORIGIN/v1/traces\", sample_ratio: 0.01}"
  gateway gw-tracing "$WORK/tracing.yaml"; pid=$LAST_PID; wait_port "$PORT"
  scenario "gateway: plain + tracing 1%" wrk "http://127.0.0.1:$PORT/api/items" "$pid" proxy
fi

# 3c. The plain route with three header edits (middlewares), against the plain proxy.
if wanted "gateway: plain + 3 header edits"; then
  PORT=$(free_port)
  gateway_config "$WORK/edits.yaml" "$PORT" warn false "$EDIT_ROUTES"
  gateway gw-edits "$WORK/edits.yaml"; pid=$LAST_PID; wait_port "$PORT"
  scenario "gateway: plain + 3 header edits" wrk "http://127.0.0.1:$PORT/api/items" "$pid" proxy
fi

# 4. Gateway, full pipeline: route + JWT + role + a token bucket keyed by address, user and path
#    that never triggers + security headers + metrics + the access log.
HASH=$(printf 'bench-password\n' | "$GATEWAY" hash-password)
full_gateway() { # full_gateway <name> <label> <store> <extra yaml> [binary]
  local port pid token
  port=$(free_port)
  gateway_config "$WORK/$1.yaml" "$port" info true "$4
$(full_yaml "$3" "$HS256_JWT")"
  gateway "$1" "$WORK/$1.yaml" "${5:-}"; pid=$LAST_PID
  wait_port "$port"
  token=$(curl -s -X POST "http://127.0.0.1:$port/auth/login" -d '{"username":"bench","password":"bench-password"}' |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  scenario "$2" wrk "http://127.0.0.1:$port/api/items" "$pid" proxy "Authorization: Bearer $token"
  LAST_TOKEN=$token
}
full_gateway gw-full "gateway: full pipeline" memory ""
FULL_TOKEN=$LAST_TOKEN

# 4a. The same two scenarios on other builds, when asked.
IFS=':' read -r -a BASELINES <<<"${BENCH_BASELINE:-}"
for bin in "${BASELINES[@]}"; do
  [ -x "$bin" ] || { echo "BENCH_BASELINE: not an executable: $bin" >&2; exit 1; }
  name=$(basename "$bin")
  PORT=$(free_port)
  gateway_config "$WORK/$name-plain.yaml" "$PORT" warn false "$PLAIN_ROUTES"
  gateway "$name-plain" "$WORK/$name-plain.yaml" "$bin"; pid=$LAST_PID; wait_port "$PORT"
  scenario "$name: plain proxy" wrk "http://127.0.0.1:$PORT/api/items" "$pid" proxy
  full_gateway "$name-full" "$name: full pipeline" memory "" "$bin"
done

# 4b. The full pipeline with the limit shared through a local redis-server.
RPORT=""
if have redis-server; then
  RPORT=$(free_port)
  start redis "${AUX_CPU[@]}" -- redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no
  REDIS_PID=$LAST_PID
  wait_port "$RPORT"
  wanted "gateway: full, Redis limit" &&
    full_gateway gw-redis "gateway: full, Redis limit" redis "redis: {url: \"redis://127.0.0.1:$RPORT/0\", timeout: 100ms}"
fi

# 4c. The full pipeline with RS256 tokens from an issuer, warm (one token) and cold (10 000
#     distinct tokens in turn and no verified-token cache, so every request checks a signature).
if wanted "gateway: full, RS256" && [ -x "$MINT" ] && have openssl; then
  openssl genrsa -out "$WORK/issuer.key" 2048 2>/dev/null
  openssl rsa -in "$WORK/issuer.key" -pubout -out "$WORK/issuer.pub" 2>/dev/null
  "$MINT" "$WORK/issuer.key" 10000 bench api >"$WORK/tokens"
  cat >"$WORK/tokens.lua" <<LUA
local tokens, n = {}, 0
for line in io.lines("$WORK/tokens") do tokens[#tokens + 1] = line end
request = function()
  n = n % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[n] })
end
LUA
  rs256() { # rs256 <name> <label> <token cache> [script]
    local port
    port=$(free_port)
    gateway_config "$WORK/$1.yaml" "$port" info true "$(full_yaml memory \
      "{algorithm: RS256, public_key_file: $WORK/issuer.pub, private_key_file: $WORK/issuer.key, issuer: bench, audience: api, verified_cache: $3}")"
    gateway "$1" "$WORK/$1.yaml"; local pid=$LAST_PID; wait_port "$port"
    if [ -n "${4:-}" ]; then
      scenario "$2" wrk "http://127.0.0.1:$port/api/items" "$pid" proxy "" "$4"
    else
      scenario "$2" wrk "http://127.0.0.1:$port/api/items" "$pid" proxy "Authorization: Bearer $(head -n 1 "$WORK/tokens")"
    fi
  }
  rs256 gw-rs256-warm "gateway: full, RS256 warm" 65536
  rs256 gw-rs256-cold "gateway: full, RS256 cold (10 000 tokens)" 0 "$WORK/tokens.lua"
fi

# 5. nginx proxy_pass with upstream keep-alive: the reference for the proxy scenarios.
if have nginx; then
  PORT=$(free_port)
  nginx_conf "$WORK/proxy.conf" "upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server { listen 127.0.0.1:$PORT; location /api { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  start nginx-proxy "${PROXY_CPU[@]}" -- nginx -c "$WORK/proxy.conf" -p "$WORK"
  wait_port "$PORT"
  scenario "nginx: proxy_pass" wrk "http://127.0.0.1:$PORT/api/items" "$LAST_PID" proxy
fi

# 5a. Pingap, the other Pingora gateway: one worker thread, a location to the origin; then the
#     same location with its JWT plugin (HS256, the gateway's token and secret), a per-address
#     rate limit that never triggers, two response headers and its access log.
pingap_conf() { # pingap_conf <file> <port> <path> <location lines> [server lines] [more sections]
  cat >"$1" <<TOML
[basic]
threads = 1
log_level = "WARN"
pid_file = "$WORK/$(basename "$1").pid"
upgrade_sock = "$WORK/$(basename "$1").sock"
[upstreams.origin]
addrs = ["127.0.0.1:$ORIGIN"]
[locations.main]
upstream = "origin"
path = "$3"
$4
[servers.web]
addr = "127.0.0.1:$2"
locations = ["main"]
threads = 1
${5:-}
${6:-}
TOML
}
pingap() { # pingap <name> <config file>: starts it pinned; its pid in $LAST_PID
  start "$1" "${PROXY_CPU[@]}" -- "$PINGAP" -c "$2"
}
PINGAP_NOTE="Pingap: not installed at $PINGAP (make bench-peers installs it), its rows are skipped"
if [ -x "$PINGAP" ]; then
  PINGAP_NOTE="Pingap: $("$PINGAP" -V 2>/dev/null | awk '{print $NF}')"
  PORT=$(free_port)
  pingap_conf "$WORK/pingap-plain.toml" "$PORT" /api ""
  pingap pingap-plain "$WORK/pingap-plain.toml"; wait_port "$PORT"
  scenario "pingap: plain proxy" wrk "http://127.0.0.1:$PORT/api/items" "$LAST_PID" proxy
  PORT=$(free_port)
  pingap_conf "$WORK/pingap-full.toml" "$PORT" /api 'plugins = ["benchJwt", "benchLimit", "benchHeaders"]' \
    'access_log = "combined"' "[plugins.benchJwt]
category = \"jwt\"
header = \"Authorization\"
algorithm = \"HS256\"
secret = \"$(sed 's/.*secret: \([^,]*\),.*/\1/' <<<"$HS256_JWT")\"
[plugins.benchLimit]
category = \"limit\"
tag = \"ip\"
type = \"rate\"
max = 10000000
interval = \"1s\"
[plugins.benchHeaders]
category = \"response_headers\"
add_headers = [\"X-Frame-Options:DENY\", \"X-Content-Type-Options:nosniff\"]"
  pingap pingap-full "$WORK/pingap-full.toml"; pid=$LAST_PID; wait_port "$PORT"
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $FULL_TOKEN" "http://127.0.0.1:$PORT/api/items")
  [ "$status" = 200 ] || { echo "Pingap's JWT plugin refused the bench token ($status)" >&2; exit 1; }
  scenario "pingap: jwt + limit + headers + log" wrk "http://127.0.0.1:$PORT/api/items" "$pid" proxy "Authorization: Bearer $FULL_TOKEN"
fi
echo "$PINGAP_NOTE" >&2

# 6. HTTPS (TLS 1.3, keep-alive) and HTTP/2 over TLS: the gateway's TLS listener beside nginx with
#    the same ECDSA P-256 certificate, both proxying to the origin over plain HTTP/1.1.
if have openssl && have nginx && { wanted "HTTPS" || wanted "HTTP/2"; }; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/tls.key" -out "$WORK/tls.pem" 2>/dev/null
  PORT=$(free_port); TPORT=$(free_port)
  gateway_config "$WORK/tls.yaml" "$PORT" warn false "$PLAIN_ROUTES" "" \
    "proxy_tls: {addr: \"127.0.0.1:$TPORT\", certificates: [{cert: $WORK/tls.pem, key: $WORK/tls.key}]}"
  gateway gw-tls "$WORK/tls.yaml"; pid=$LAST_PID; wait_port "$TPORT"
  NPORT=$(free_port); N2PORT=$(free_port)
  nginx_conf "$WORK/tls.conf" "upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  ssl_certificate $WORK/tls.pem; ssl_certificate_key $WORK/tls.key; ssl_protocols TLSv1.2 TLSv1.3;
  server { listen 127.0.0.1:$NPORT ssl; location /api { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
  server { listen 127.0.0.1:$N2PORT ssl http2; location /api { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  start nginx-tls "${PROXY_CPU[@]}" -- nginx -c "$WORK/tls.conf" -p "$WORK"
  npid=$LAST_PID; wait_port "$N2PORT"
  if wanted "HTTPS"; then
    scenario "gateway: HTTPS" wrk "https://127.0.0.1:$TPORT/api/items" "$pid" https
    scenario "nginx: HTTPS proxy_pass" wrk "https://127.0.0.1:$NPORT/api/items" "$npid" https
  fi
  if wanted "HTTP/2" && have h2load; then
    scenario "gateway: HTTP/2 over TLS" h2load "https://127.0.0.1:$TPORT/api/items" "$pid" h2
    scenario "nginx: HTTP/2 over TLS proxy_pass" h2load "https://127.0.0.1:$N2PORT/api/items" "$npid" h2
  fi
fi

# 7. Cache hits: one 1 KiB object, served by the gateway's memory store, its Redis store, and
#    nginx's proxy_cache (the reference for these rows).
CACHE_MEMORY=64MiB
fill_cache() { # fill_cache <port>: distinct 1 KiB objects past the store's bound, so the peak
  # RSS column is the process with a full cache
  cat >"$WORK/fill.lua" <<'LUA'
local n = 0
request = function() n = n + 1; return wrk.format(nil, "/cached/fill-" .. n) end
LUA
  "${AUX_CPU[@]}" wrk -t1 -c50 -d8s -s "$WORK/fill.lua" "http://127.0.0.1:$1" >/dev/null
}
cache_gateway() { # cache_gateway <name> <label> <cache section> [redis section] [fill]
  local port
  port=$(free_port)
  gateway_config "$WORK/$1.yaml" "$port" warn false "${4:-}
cache: $3
routes: [{name: cached, path: /cached, upstream: origin, cache: {enabled: true, ttl: 1h}}]"
  gateway "$1" "$WORK/$1.yaml"; local pid=$LAST_PID; wait_port "$port"
  [ "${5:-}" = fill ] && fill_cache "$port"
  curl -s -o /dev/null "http://127.0.0.1:$port/cached/object"
  scenario "$2" wrk "http://127.0.0.1:$port/cached/object" "$pid" cache
}
if wanted "cache hit"; then
  cache_gateway gw-cache-memory "gateway: cache hit, memory store ($CACHE_MEMORY, filled)" \
    "{store: memory, memory_size: $CACHE_MEMORY}" "" fill
  if [ -n "$RPORT" ]; then
    cache_gateway gw-cache-redis "gateway: cache hit, Redis store" \
      "{store: redis, memory_size: 0}" "redis: {url: \"redis://127.0.0.1:$RPORT/1\", timeout: 100ms}"
    cache_gateway gw-cache-tier "gateway: cache hit, Redis store + 16 MiB tier" \
      "{store: redis, memory_size: 16MiB}" "redis: {url: \"redis://127.0.0.1:$RPORT/2\", timeout: 100ms}"
  fi
  if [ -x "$PINGAP" ]; then
    PORT=$(free_port)
    # Its memory store bounded like the gateway's (unbounded, it takes a quarter of the
    # machine's memory), and filled the same way.
    pingap_conf "$WORK/pingap-cache.toml" "$PORT" /cached 'plugins = ["benchCache"]' "" "[plugins.benchCache]
category = \"cache\"
directory = \"memory://?max_size=$CACHE_MEMORY\"
max_ttl = \"1h\""
    pingap pingap-cache "$WORK/pingap-cache.toml"; pid=$LAST_PID; wait_port "$PORT"
    fill_cache "$PORT"
    curl -s -o /dev/null "http://127.0.0.1:$PORT/cached/object"
    scenario "pingap: cache hit, memory" wrk "http://127.0.0.1:$PORT/cached/object" "$pid" cache
  fi
  if have nginx; then
    PORT=$(free_port)
    mkdir -p "$WORK/nginx-cache"
    nginx_conf "$WORK/cache.conf" "proxy_cache_path $WORK/nginx-cache keys_zone=bench:10m;
    upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
    server { listen 127.0.0.1:$PORT; location /cached { proxy_cache bench; proxy_cache_valid 200 1h; proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
    start nginx-cache "${PROXY_CPU[@]}" -- nginx -c "$WORK/cache.conf" -p "$WORK"
    wait_port "$PORT"
    curl -s -o /dev/null "http://127.0.0.1:$PORT/cached/object"
    scenario "nginx: proxy_cache hit" wrk "http://127.0.0.1:$PORT/cached/object" "$LAST_PID" cache
  fi
fi

# 8. gzip (level 6) of a 64 KiB JSON answer from the origin: the gateway's compression
#    middleware beside nginx's gzip on a proxy_pass (the reference for these rows).
if have nginx && wanted "gzip"; then
  mkdir -p "$WORK/www/json"
  python3 -c '
import json
items = []
while len(json.dumps(items)) < 65536:
    i = len(items)
    items.append({"id": i, "name": "item %d" % i, "tags": ["a", "b"], "price": i * 1.5})
print(json.dumps(items), end="")' >"$WORK/www/json/items"
  JPORT=$(free_port)
  nginx_conf "$WORK/json.conf" "server { listen 127.0.0.1:$JPORT; location /json { root $WORK/www; default_type application/json; } }"
  start json-origin "${AUX_CPU[@]}" -- nginx -c "$WORK/json.conf" -p "$WORK"
  wait_port "$JPORT"
  PORT=$(free_port)
  ORIGIN=$JPORT gateway_config "$WORK/gzip.yaml" "$PORT" warn false "routes:
  - {name: json, path: /json, upstream: origin, plugins: [{name: compression, settings: {algorithms: [gzip], gzip_level: 6}}]}"
  gateway gw-gzip "$WORK/gzip.yaml"; pid=$LAST_PID; wait_port "$PORT"
  scenario "gateway: gzip 64 KiB JSON" wrk "http://127.0.0.1:$PORT/json/items" "$pid" gzip "Accept-Encoding: gzip"
  NPORT=$(free_port)
  nginx_conf "$WORK/gzip.conf" "upstream json { server 127.0.0.1:$JPORT; keepalive 64; }
  gzip on; gzip_comp_level 6; gzip_types application/json; gzip_proxied any; gzip_min_length 1024;
  server { listen 127.0.0.1:$NPORT; location /json { proxy_pass http://json; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  start nginx-gzip "${PROXY_CPU[@]}" -- nginx -c "$WORK/gzip.conf" -p "$WORK"
  wait_port "$NPORT"
  scenario "nginx: gzip proxy_pass" wrk "http://127.0.0.1:$NPORT/json/items" "$LAST_PID" gzip "Accept-Encoding: gzip"
fi

# --- measurement --------------------------------------------------------------------------
measure() { # measure <i> <connections> <seconds or duration>: prints "rps p50 p99 errors"
  local i=$1 c=$2 d=$3 args=() out
  if [ "${CLIENTS[$i]}" = h2load ]; then
    [ -n "${HEADERS[$i]}" ] && args=(-H "${HEADERS[$i]}")
    out=$("${AUX_CPU[@]}" h2load -t1 -c"$c" -m1 -D "$(seconds "$d")" --warm-up-time="$(seconds "$WARMUP")" \
      --log-file="$WORK/h2load.log" "${args[@]}" "${URLS[$i]}")
    local rps errors
    rps=$(awk '/^finished in/ {gsub(",", ""); print $4}' <<<"$out")
    errors=$(awk '/^requests:/ {print $11 + $13 + $15}' <<<"$out")
    # The log has one line per request: start (µs), status, time taken (µs).
    sort -n -k3,3 "$WORK/h2load.log" | awk -v rps="$rps" -v e="$errors" '
      { t[NR] = $3 } $2 !~ /^2/ { bad++ }
      END { printf "%s %.2fms %.2fms %d\n", rps, t[int(NR * 0.5)] / 1000, t[int(NR * 0.99)] / 1000, e + bad }'
    return
  fi
  [ -n "${HEADERS[$i]}" ] && args+=(-H "${HEADERS[$i]}")
  [ -n "${SCRIPTS[$i]}" ] && args+=(-s "${SCRIPTS[$i]}")
  out=$("${AUX_CPU[@]}" wrk -t1 -c"$c" -d"$d" --latency "${args[@]}" "${URLS[$i]}")
  awk '/^Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
    /Non-2xx/ { e += $NF } /Socket errors/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
    END { printf "%s %s %s %d\n", rps, p50, p99, e }' <<<"$out"
}

echo "origin: $ORIGIN_KIND; $PINNING; -t1 at ${CONCURRENCY[*]} connections, $DURATION after $WARMUP warm-up, $ROUNDS rounds" >&2
for round in $(seq 1 "$ROUNDS"); do
  for c in "${CONCURRENCY[@]}"; do
    for i in "${!LABELS[@]}"; do
      if [ "${CLIENTS[$i]}" = wrk ]; then
        args=()
        [ -n "${HEADERS[$i]}" ] && args+=(-H "${HEADERS[$i]}")
        [ -n "${SCRIPTS[$i]}" ] && args+=(-s "${SCRIPTS[$i]}")
        "${AUX_CPU[@]}" wrk -t1 -c"$c" -d"$WARMUP" "${args[@]}" "${URLS[$i]}" >/dev/null
      fi
      row=$(measure "$i" "$c" "$DURATION")
      echo "$round $row" >>"$WORK/result.$i.$c"
      echo "  round $round, c=$c: ${LABELS[$i]}: ${row%% *} req/s" >&2
    done
  done
done

# --- table --------------------------------------------------------------------------------
index_of() { # index_of <label>: the scenario's index, or nothing
  local i
  for i in "${!LABELS[@]}"; do [ "${LABELS[$i]}" = "$1" ] && { echo "$i"; return; }; done
  return 0
}
median_row() { # median_row <file>: the round with the median requests/s, without the round
  sort -k2,2 -g "$1" | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) { $1 = ""; print substr($0, 2) }'
}
ratio() { # ratio <file a> <file b>: a/b round by round, as "median (min-max)"; - without b
  [ -n "$2" ] && [ -f "$2" ] || { echo "-"; return; }
  awk 'NR == FNR { b[$1] = $2; next } ($1 in b) && b[$1] > 0 { print $2 / b[$1] }' "$2" "$1" | sort -g |
    awk '{ r[NR] = $1 } END { if (NR == 0) { print "-"; exit }
      m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
      if (NR == 1) printf "%.2f", m; else printf "%.2f (%.2f-%.2f)", m, r[1], r[NR] }'
}
file_of() { # file_of <label> <connections>
  local i
  i=$(index_of "$1")
  # An absent scenario prints nothing and is not an error (the script runs under set -e).
  if [ -n "$i" ]; then echo "$WORK/result.$i.$2"; fi
}
peak_rss_mib() { # the largest VmHWM among a pid and its children
  local max=0 pid v
  for pid in "$1" $(pgrep -P "$1" 2>/dev/null); do
    v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${v:-0}" -gt "$max" ] && max=$v
  done
  echo "$(( max / 1024 )) MiB"
}
declare -A NGINX_OF=([proxy]="nginx: proxy_pass" [https]="nginx: HTTPS proxy_pass"
  [h2]="nginx: HTTP/2 over TLS proxy_pass" [cache]="nginx: proxy_cache hit" [gzip]="nginx: gzip proxy_pass")

for c in "${CONCURRENCY[@]}"; do
  printf '\n### %s connections\n\n' "$c"
  printf '| scenario | requests/s | p50 | p99 | errors | vs bare pingora | vs nginx (same kind) |\n'
  printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
  for i in "${!LABELS[@]}"; do
    read -r rps p50 p99 errors <<<"$(median_row "$WORK/result.$i.$c")"
    vs_bare="-"; vs_nginx="-"
    ref=${NGINX_OF[${KINDS[$i]}]}
    if [ "${PIDS_OF[$i]}" != "-" ] && [ "${LABELS[$i]}" != "$ref" ]; then
      vs_nginx=$(ratio "$WORK/result.$i.$c" "$(file_of "$ref" "$c")")
      [ "${KINDS[$i]}" = proxy ] && [ "${LABELS[$i]}" != "pingora: bare proxy" ] &&
        vs_bare=$(ratio "$WORK/result.$i.$c" "$(file_of "pingora: bare proxy" "$c")")
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "${LABELS[$i]}" "$rps" "$p50" "$p99" "$errors" "$vs_bare" "$vs_nginx"
  done
done

printf '\n### Peak RSS (over the whole run)\n\n| process | peak RSS |\n| --- | ---: |\n'
for i in "${!LABELS[@]}"; do
  [ "${PIDS_OF[$i]}" != "-" ] && printf '| %s | %s |\n' "${LABELS[$i]}" "$(peak_rss_mib "${PIDS_OF[$i]}")"
done

target() { # target <what> <label a> <label b> <connections a> [connections b]
  local a b
  a=$(file_of "$2" "$4"); b=$(file_of "$3" "${5:-$4}")
  if [ -n "$a" ] && [ -n "$b" ]; then printf '| %s | %s |\n' "$1" "$(ratio "$a" "$b")"; fi
}
LOW=${CONCURRENCY[0]}; HIGH=${CONCURRENCY[${#CONCURRENCY[@]}-1]}
printf '\n### Ratios the project tracks (median of rounds, spread in brackets)\n\n| ratio | value |\n| --- | ---: |\n'
for c in "${CONCURRENCY[@]}"; do
  target "plain / bare pingora, c=$c" "gateway: plain proxy" "pingora: bare proxy" "$c"
  target "full / bare pingora, c=$c" "gateway: full pipeline" "pingora: bare proxy" "$c"
  target "tuned pingora / bare pingora, c=$c" "pingora: tuned as the gateway" "pingora: bare proxy" "$c"
  target "plain / tuned pingora, c=$c" "gateway: plain proxy" "pingora: tuned as the gateway" "$c"
  target "full / tuned pingora, c=$c" "gateway: full pipeline" "pingora: tuned as the gateway" "$c"
  target "tracing 1% / plain, c=$c" "gateway: plain + tracing 1%" "gateway: plain proxy" "$c"
  target "3 header edits / plain, c=$c" "gateway: plain + 3 header edits" "gateway: plain proxy" "$c"
  target "gzip 64 KiB JSON gateway / nginx, c=$c" "gateway: gzip 64 KiB JSON" "nginx: gzip proxy_pass" "$c"
  target "full Redis limit / full memory, c=$c" "gateway: full, Redis limit" "gateway: full pipeline" "$c"
  target "RS256 cold / full (HS256 warm), c=$c" "gateway: full, RS256 cold (10 000 tokens)" "gateway: full pipeline" "$c"
  target "HTTPS gateway / nginx, c=$c (target >= 0.8)" "gateway: HTTPS" "nginx: HTTPS proxy_pass" "$c"
  target "HTTP/2 gateway / nginx, c=$c (target >= 0.8)" "gateway: HTTP/2 over TLS" "nginx: HTTP/2 over TLS proxy_pass" "$c"
  target "plain / Pingap plain, c=$c (target >= 1.05)" "gateway: plain proxy" "pingap: plain proxy" "$c"
  target "full / Pingap jwt + limit + headers + log, c=$c (target >= 1.25)" "gateway: full pipeline" "pingap: jwt + limit + headers + log" "$c"
  target "full / nginx proxy_pass, c=$c (target >= 0.6)" "gateway: full pipeline" "nginx: proxy_pass" "$c"
  target "cache hit memory / nginx proxy_cache, c=$c (target >= 1.3)" "gateway: cache hit, memory store ($CACHE_MEMORY, filled)" "nginx: proxy_cache hit" "$c"
  target "cache hit Redis + tier / nginx proxy_cache, c=$c (target >= 1.0)" "gateway: cache hit, Redis store + 16 MiB tier" "nginx: proxy_cache hit" "$c"
  target "cache hit memory / Pingap memory cache, c=$c" "gateway: cache hit, memory store ($CACHE_MEMORY, filled)" "pingap: cache hit, memory" "$c"
done
if [ "$LOW" != "$HIGH" ]; then
  target "plain c=$HIGH / c=$LOW" "gateway: plain proxy" "gateway: plain proxy" "$HIGH" "$LOW"
  target "full c=$HIGH / c=$LOW" "gateway: full pipeline" "gateway: full pipeline" "$HIGH" "$LOW"
fi
printf '\n%s cores; origin: %s; %s; median of %s rounds of %s; %s.\n' \
  "$(nproc)" "$ORIGIN_KIND" "$PINNING" "$ROUNDS" "$DURATION" "$PINGAP_NOTE"

# --- a Redis that stops answering ---------------------------------------------------------
# The full pipeline with its limit on Redis (timeout 100ms, on_store_error: allow, the default),
# 32 connections for 10 s, and Redis frozen (SIGSTOP) from 3 s to 7 s. What counts is the tail:
# requests must not wait for Redis, neither for a probe nor behind another request's lease
# (target: p99 < 25 ms). One row per round.
if [ -n "$RPORT" ] && wanted "gateway: full, Redis paused 4 s"; then
  printf '\n### A Redis that stops answering (full pipeline, limit on Redis, 32 connections for 10 s, Redis frozen from 3 s to 7 s)\n\n'
  printf '| build | round | req/s | p50 | p99 | max | non-2xx or errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
  for bin in "$GATEWAY" "${BASELINES[@]}"; do
    name=$(basename "$bin")
    [ "$bin" = "$GATEWAY" ] && name="this-build"
    PPORT=$(free_port)
    gateway_config "$WORK/pause-$name.yaml" "$PPORT" info true "redis: {url: \"redis://127.0.0.1:$RPORT/3\", timeout: 100ms}
$(full_yaml redis "$HS256_JWT")"
    gateway "pause-$name" "$WORK/pause-$name.yaml" "$bin"
    pid=$LAST_PID
    wait_port "$PPORT"
    token=$(curl -s -X POST "http://127.0.0.1:$PPORT/auth/login" -d '{"username":"bench","password":"bench-password"}' |
      sed 's/.*"access_token":"\([^"]*\)".*/\1/')
    for round in $(seq 1 "$ROUNDS"); do
      "${AUX_CPU[@]}" wrk -t1 -c32 -d10s --latency -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$PPORT/api/items" >"$WORK/pause.$round" &
      load=$!
      sleep 3
      kill -STOP "$REDIS_PID"
      sleep 4
      kill -CONT "$REDIS_PID"
      wait "$load"
      awk -v b="$name" -v r="$round" '/^Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
        $1 == "Latency" && !max { max = $4 } /Non-2xx/ { e += $NF }
        /Socket errors/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
        END { printf "| %s | %s | %s | %s | %s | %s | %d |\n", b, r, rps, p50, p99, max, e }' "$WORK/pause.$round"
      # Settled before the next round: Redis answers again.
      sleep 1
    done
    kill "$pid" 2>/dev/null || true
  done
fi

# --- scale with the config ----------------------------------------------------------------
# BENCH_ROUTES routes (10 000) over 100 upstreams: how long `-t` and the start take, the resident
# memory per route (against the same gateway with one route), and the RSS after each of
# BENCH_RELOADS SIGHUPs (5; each moves every route to a new prefix) against the first load.
# Targets: at most 2 KiB per route, and RSS after reloads within 1.3x of the first load.
if wanted "config scale"; then
  SROUTES=${BENCH_ROUTES:-10000}; SRELOADS=${BENCH_RELOADS:-5}
  scale_config() { # scale_config <file> <proxy port> <metrics port> <routes> <generation>
    python3 - "$@" "$(free_port)" "$ORIGIN" <<'PY'
import sys
path, port, metrics, routes, gen, admin, origin = sys.argv[1:8]
routes, gen = int(routes), int(gen)
out = [
    f"server: {{threads: 1, pid_file: {path}.pid, upgrade_sock: {path}.sock}}",
    f'listen: {{proxy: "127.0.0.1:{port}", metrics: "127.0.0.1:{metrics}", admin: "127.0.0.1:{admin}"}}',
    "log: {level: warn, format: json, access_log: false}",
    "upstreams:",
]
for u in range(min(100, routes)):
    out.append(f'  u{u}: {{backends: [{{addr: "127.0.0.1:{origin}"}}]}}')
out.append("routes:")
for r in range(routes):
    out.append(f"  - {{name: r{r}, path: /api/v{gen}/resource{r}, upstream: u{r % 100}}}")
open(path, "w").write("\n".join(out) + "\n")
PY
  }
  rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
  now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
  reloads_done() { # the count of applied reloads on a metrics port
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^config_reloads_total\{result="success"\}/ {print $2}'
  }
  for n in 1 "$SROUTES"; do
    PORT=$(free_port); MPORT=$(free_port)
    scale_config "$WORK/scale-$n.yaml" "$PORT" "$MPORT" "$n" 0
    t0=$(now_ms); "$GATEWAY" -t -c "$WORK/scale-$n.yaml" >/dev/null 2>&1; t1=$(now_ms)
    gateway "scale-$n" "$WORK/scale-$n.yaml"; pid=$LAST_PID; wait_port "$PORT"; t2=$(now_ms)
    sleep 2
    if [ "$n" = 1 ]; then BASE_RSS=$(rss_kib "$pid"); kill "$pid"; continue; fi
    FIRST_RSS=$(rss_kib "$pid")
    printf '\n### Scale with the config (%s routes, 100 upstreams)\n\n' "$n"
    printf '| measure | value |\n| --- | ---: |\n'
    printf '| `-t` | %s ms |\n| start, until the proxy listens | %s ms |\n' $(( t1 - t0 )) $(( t2 - t1 ))
    printf '| RSS, one route | %s MiB |\n| RSS, first load | %s MiB |\n' $(( BASE_RSS / 1024 )) $(( FIRST_RSS / 1024 ))
    printf '| per route (target <= 2 KiB) | %s KiB |\n' "$(awk -v a="$FIRST_RSS" -v b="$BASE_RSS" -v n="$n" 'BEGIN { printf "%.2f", (a - b) / n }')"
    max=$FIRST_RSS
    for g in $(seq 1 "$SRELOADS"); do
      before=$(reloads_done "$MPORT")
      scale_config "$WORK/scale-$n.yaml" "$PORT" "$MPORT" "$n" "$g"
      t0=$(now_ms); kill -HUP "$pid"
      for _ in $(seq 1 400); do [ "$(reloads_done "$MPORT")" != "$before" ] && break; sleep 0.025; done
      t1=$(now_ms)
      curl -s -o /dev/null "http://127.0.0.1:$PORT/api/v$g/resource1"
      sleep 2
      rss=$(rss_kib "$pid"); [ "$rss" -gt "$max" ] && max=$rss
      printf '| reload %s: applied after / RSS 2 s later | %s ms / %s MiB |\n' "$g" $(( t1 - t0 )) $(( rss / 1024 ))
    done
    printf '| largest RSS after a reload / first load (target <= 1.3) | %s |\n' \
      "$(awk -v a="$max" -v b="$FIRST_RSS" 'BEGIN { printf "%.2f", a / b }')"
    kill "$pid"
  done
fi
