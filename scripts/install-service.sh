#!/usr/bin/env bash
# Installs `hanlin serve` as a systemd service with the gateway on.
# Usage: sudo scripts/install-service.sh [--db postgres://user@host/db] [--host 0.0.0.0] [--port 8080] [-- extra serve args]
# Creates a `hanlin` system user whose home (/var/lib/hanlin) holds models, gateway.db and
# gateway.key (the master key for upstream channel keys: back it up; replicas must share it,
# e.g. via HANLIN_SECRET_KEY in /etc/hanlin/env).
set -euo pipefail
DB=""; HOST="127.0.0.1"; PORT=8080; EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --db) DB="$2"; shift 2 ;;
    --host) HOST="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN="$(command -v hanlin || true)"
[ -n "$BIN" ] || { echo "hanlin not found in PATH (cargo install --path crates/hanlin-cli)" >&2; exit 1; }
install -m 0755 "$BIN" /usr/local/bin/hanlin
id hanlin >/dev/null 2>&1 || useradd --system --home-dir /var/lib/hanlin --create-home --shell /usr/sbin/nologin hanlin
mkdir -p /etc/hanlin && touch /etc/hanlin/env && chmod 0600 /etc/hanlin/env
DBARG=""; [ -n "$DB" ] && DBARG="--db $DB"
cat >/etc/systemd/system/hanlin.service <<UNIT
[Unit]
Description=hanlin LLM server with gateway
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
User=hanlin
Environment=HANLIN_HOME=/var/lib/hanlin
EnvironmentFile=-/etc/hanlin/env
ExecStart=/usr/local/bin/hanlin serve --host $HOST --port $PORT $DBARG ${EXTRA[*]:-}
Restart=always
RestartSec=2
NoNewPrivileges=true
ProtectSystem=strict
ReadWritePaths=/var/lib/hanlin
PrivateTmp=true

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
echo "installed. First admin key:  sudo -u hanlin HANLIN_HOME=/var/lib/hanlin hanlin ${DBARG} keys create --tenant ops --admin"
echo "then:                          systemctl enable --now hanlin"
