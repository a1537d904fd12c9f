#!/usr/bin/env bash
# `make install`: the gateway as a systemd service that starts as installed.
#
#   /usr/local/bin/gateway                 the binary (GATEWAY_BIN, default target/release/gateway)
#   /etc/gateway/gateway.yaml              conf/gateway.yaml, kept when it exists
#   /etc/gateway/gateway.env               secrets and paths for the unit (EnvironmentFile), made
#                                          once with a fresh JWT secret, kept when it exists
#   /usr/share/gateway/dashboard           the built dashboard (dashboard/dist), when built
#   /etc/systemd/system/gateway.service    conf/gateway.service
#
# DESTDIR installs under another root (packaging, tests): no user is made, nothing is chowned,
# systemd is not told. Then `systemctl daemon-reload && systemctl enable --now gateway`.
set -euo pipefail
cd "$(dirname "$0")/.."

root=${DESTDIR:-}
bin=${GATEWAY_BIN:-target/release/gateway}
[ -x "$bin" ] || { echo "install: $bin is missing (cargo build --release --bin gateway)" >&2; exit 1; }

if [ -z "$root" ] && ! id gateway >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin gateway
fi
owner() { [ -z "$root" ] && chown "$@" || true; }

install -d "$root/usr/local/bin" "$root/etc/gateway" "$root/etc/systemd/system" "$root/usr/share/gateway"
install -m 0755 "$bin" "$root/usr/local/bin/gateway"
if [ ! -e "$root/etc/gateway/gateway.yaml" ]; then
  install -m 0640 conf/gateway.yaml "$root/etc/gateway/gateway.yaml"
  owner root:gateway "$root/etc/gateway/gateway.yaml"
fi
env_file="$root/etc/gateway/gateway.env"
if [ ! -e "$env_file" ]; then
  umask 077
  cat >"$env_file" <<EOF
# Read by gateway.service (EnvironmentFile). Keep it private: it holds the JWT signing secret.
GATEWAY_JWT_SECRET=$(openssl rand -base64 48 | tr -d '\n')
GATEWAY_PID_FILE=/run/gateway/gateway.pid
GATEWAY_UPGRADE_SOCK=/run/gateway/upgrade.sock
GATEWAY_DASHBOARD_DIR=/usr/share/gateway/dashboard
EOF
  chmod 0640 "$env_file"
  owner root:gateway "$env_file"
fi
if [ -f dashboard/dist/index.html ]; then
  rm -rf "$root/usr/share/gateway/dashboard"
  cp -r dashboard/dist "$root/usr/share/gateway/dashboard"
  chmod -R a+rX "$root/usr/share/gateway/dashboard"
else
  echo "install: the dashboard is not built (make dashboard); the admin listener will say so" >&2
fi
install -m 0644 conf/gateway.service "$root/etc/systemd/system/gateway.service"

# The unit's own check, with its environment.
set -a
# shellcheck source=/dev/null
. "$env_file"
set +a
"$root/usr/local/bin/gateway" -t -c "$root/etc/gateway/gateway.yaml"
if [ -z "$root" ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload || true
  echo "installed: systemctl enable --now gateway (replace the demo user admin / password123 in /etc/gateway/gateway.yaml first)"
fi
