#!/usr/bin/env bash
# Instructions per request (`make bench-instructions`): pingora's bare proxy, pingora set up as
# the gateway sets it up (tuned_proxy), the gateway's plain proxy, the same with three header
# edits (middlewares), and its full pipeline (the scenarios of run.sh) under valgrind's callgrind, which counts the instructions the process
# executes in user space. Requests/s on a shared host move
# by ±30% between runs; this count repeats within about 0.5%, so it shows changes of 1% and
# less. It leaves out the kernel and the time lost to cache misses, so it complements the load
# scenarios and does not replace them.
#
# Each proxy is started afresh twice and serves BENCH_REQUESTS_A (2000), then BENCH_REQUESTS_B
# (6000) requests (h2load --h1, 16 connections); the difference of the two totals divided by the
# difference of requests leaves out start-up and shutdown. Under valgrind the proxy runs about
# 50 times slower, so it takes fewer requests per wake-up than at full speed: compare builds
# with one another, not with a profile taken under load.
#
# Needs: valgrind, h2load (apt-get install valgrind nghttp2-client); nginx optional (origin).
# BENCH_BASELINE=<path>[:<path>...] measures other gateway builds the same way.
set -euo pipefail
shopt -s inherit_errexit # a failed run inside $(...) stops the script too

ROOT=${BENCH_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
GATEWAY=$ROOT/target/release/gateway
DEMO=$ROOT/target/release/examples/demo_backend
BARE=$ROOT/target/release/examples/bare_proxy
TUNED=$ROOT/target/release/examples/tuned_proxy
REQUESTS_A=${BENCH_REQUESTS_A:-2000}
REQUESTS_B=${BENCH_REQUESTS_B:-6000}
# shellcheck source=benches/load/common.sh
. "$(dirname "$0")/common.sh"
for tool in valgrind callgrind_annotate h2load; do
  have "$tool" || { echo "$tool is needed: apt-get install -y valgrind nghttp2-client" >&2; exit 1; }
done
[ -x "$GATEWAY" ] || { echo "build first: make bench-instructions builds what it needs" >&2; exit 1; }
[ "$REQUESTS_B" -gt "$REQUESTS_A" ] || { echo "BENCH_REQUESTS_B must exceed BENCH_REQUESTS_A" >&2; exit 1; }

ORIGIN=$(free_port)
if have nginx; then
  nginx_conf "$WORK/origin.conf" "server { listen 127.0.0.1:$ORIGIN; location / { return 200 '$(head -c 1024 /dev/zero | tr '\0' 'x')'; } }"
  nginx -c "$WORK/origin.conf" -p "$WORK" >"$WORK/origin.out" 2>&1 &
else
  "$DEMO" "origin=127.0.0.1:$ORIGIN" >"$WORK/origin.out" 2>&1 &
fi
PIDS+=("$!")
wait_port "$ORIGIN"
HASH=$(printf 'bench-password\n' | "$GATEWAY" hash-password)

total() { # total <requests> <kind: bare|tuned|plain|edits|full> <binary>: the instructions of one whole run
  local port=$(free_port) header=() pid token
  local out="$WORK/callgrind.out"
  rm -f "$out"
  if [ "$2" = bare ] || [ "$2" = tuned ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" "$3" "127.0.0.1:$port" "127.0.0.1:$ORIGIN" \
      >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
  else
    if [ "$2" = plain ]; then
      gateway_config "$WORK/gw.yaml" "$port" warn false "$PLAIN_ROUTES"
    elif [ "$2" = edits ]; then
      gateway_config "$WORK/gw.yaml" "$port" warn false "$EDIT_ROUTES"
    else
      gateway_config "$WORK/gw.yaml" "$port" info true "$(full_yaml memory "$HS256_JWT")"
    fi
    valgrind --tool=callgrind --callgrind-out-file="$out" "$3" -c "$WORK/gw.yaml" \
      >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
  fi
  pid=$!
  PIDS+=("$pid")
  # Under valgrind start-up takes seconds; a proxy that exits instead is reported at once.
  until wait_port "$port" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "$2 did not start:" >&2; cat "$WORK/proxy.err" >&2; exit 1; }
  done
  if [ "$2" = full ]; then
    token=$(curl -s -X POST "http://127.0.0.1:$port/auth/login" -d '{"username":"bench","password":"bench-password"}' |
      sed 's/.*"access_token":"\([^"]*\)".*/\1/')
    header=(-H "Authorization: Bearer $token")
  fi
  local codes
  codes=$(h2load --h1 -n "$1" -c 16 "${header[@]}" "http://127.0.0.1:$port/api/items" | grep '^status codes')
  case $codes in *" $1 2xx"*) ;; *) echo "$2: not every answer was 2xx: $codes" >&2; exit 1 ;; esac
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  # awk reads to the end: leaving early would fail the pipe (pipefail).
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen { gsub(",", "", $1); print $1; seen = 1 }'
}

per_request() { # per_request <kind> <binary>
  local a b
  a=$(total "$REQUESTS_A" "$1" "$2")
  b=$(total "$REQUESTS_B" "$1" "$2")
  echo $(( (b - a) / (REQUESTS_B - REQUESTS_A) ))
}

ratio() { # ratio <a> <b>: a / b, or - without b
  if [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo -; fi
}
echo "| build | scenario | instructions per request | vs bare pingora | vs tuned pingora |"
echo "| --- | --- | ---: | ---: | ---: |"
BARE_IR=""
TUNED_IR=""
if [ -x "$BARE" ]; then
  BARE_IR=$(per_request bare "$BARE")
  echo "| pingora | bare proxy | $BARE_IR | 1.00 | - |"
fi
if [ -x "$TUNED" ]; then
  TUNED_IR=$(per_request tuned "$TUNED")
  echo "| pingora | tuned as the gateway | $TUNED_IR | $(ratio "$TUNED_IR" "$BARE_IR") | 1.00 |"
fi
IFS=':' read -r -a BASELINES <<<"${BENCH_BASELINE:-}"
for bin in "$GATEWAY" "${BASELINES[@]}"; do
  [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 1; }
  name=gateway
  [ "$bin" = "$GATEWAY" ] || name=$(basename "$bin")
  for kind in plain full; do
    ir=$(per_request "$kind" "$bin")
    echo "| $name | $kind | $ir | $(ratio "$ir" "$BARE_IR") | $(ratio "$ir" "$TUNED_IR") |"
    [ "$kind" = plain ] && [ "$bin" = "$GATEWAY" ] && PLAIN_IR=$ir
  done
done
# Three header edits (middlewares) on the plain route, against the plain route: at most 1.03.
EDITS_IR=$(per_request edits "$GATEWAY")
echo "| gateway | plain + 3 header edits | $EDITS_IR | $(ratio "$EDITS_IR" "$BARE_IR") | $(ratio "$EDITS_IR" "$TUNED_IR") |"
echo
echo "3 header edits / plain: $(ratio "$EDITS_IR" "$PLAIN_IR")"
echo
echo "origin: $(have nginx && echo nginx || echo demo_backend); $REQUESTS_A and $REQUESTS_B requests, 16 connections, h2load --h1"
