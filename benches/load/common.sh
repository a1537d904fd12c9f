# Shared by the load scripts (run.sh, instructions.sh), sourced first: a scratch directory
# (WORK) and the processes to stop at exit (PIDS), removed and stopped whichever way the script
# ends; then helpers, which read ORIGIN (the origin's port) and HASH (the bench user's password
# hash) when called.

WORK=$(mktemp -d)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

have() { command -v "$1" >/dev/null; }

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

gateway_config() { # gateway_config <file> <proxy port> <log level> <access log> <extra yaml> [upstream keys] [listen keys]
  cat >"$1" <<YAML
server: {threads: 1, pid_file: $WORK/$(basename "$1").pid, upgrade_sock: $WORK/$(basename "$1").sock, grace_period: 1s, graceful_shutdown_timeout: 1s}
listen: {proxy: "127.0.0.1:$2", metrics: "127.0.0.1:$(free_port)", admin: "127.0.0.1:$(free_port)"${7:+, $7}}
log: {level: $3, format: json, access_log: $4}
upstreams:
  origin: {backends: [{addr: "127.0.0.1:$ORIGIN"}], connect_timeout: 1s, read_timeout: 10s${6:+, $6}}
$5
YAML
}
PLAIN_ROUTES="routes: [{name: api, path: /api, upstream: origin}]"
# The plain route with three header edits (middlewares): one on the way in, two on the way out.
EDIT_ROUTES="routes:
  - name: api
    path: /api
    upstream: origin
    plugins:
      - {name: request_headers, settings: {set: {x-bench: \"1\"}}}
      - {name: response_headers, settings: {set: {x-served-by: gw}, remove: [x-unused]}}"

full_yaml() { # full_yaml <limit store> <jwt section>
  cat <<YAML
auth:
  jwt: $2
  users: [{username: bench, password_hash: "$HASH", roles: [user]}]
security:
  headers: {x_frame_options: DENY, x_content_type_options: nosniff}
routes:
  - name: api
    path: /api
    upstream: origin
    auth: {required: true, roles: [user]}
    rate_limit: {store: $1, rate: 10000000/s, burst: 10000000, key: [client_ip, user, path]}
YAML
}
HS256_JWT="{algorithm: HS256, secret: bench-secret-0123456789abcdefghij, issuer: bench, audience: api}"
