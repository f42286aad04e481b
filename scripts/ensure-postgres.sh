#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers for the gateway's tests, then prints the URL to use.
# Uses $HANLIN_TEST_POSTGRES_URL (default: the local trust-auth server) when it answers;
# otherwise installs PostgreSQL from Debian packages and starts a private cluster on port 5432.
# Usage: export HANLIN_TEST_POSTGRES_URL="$(./scripts/ensure-postgres.sh)"
set -euo pipefail

URL="${HANLIN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
PORT=5432
DATA="${HANLIN_PG_DATA:-/tmp/hanlin-pg}"

answers() {
  # Without psql, a TCP connect is the best we can do; with it, a real query.
  if command -v psql >/dev/null 2>&1; then
    psql "$URL" -Atc 'select 1' >/dev/null 2>&1
  else
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null
  fi
}

if answers; then
  echo "$URL"
  exit 0
fi

echo "ensure-postgres: no PostgreSQL at $URL; installing and starting one" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
fi
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
# initdb refuses to run as root: use the postgres system user the package created.
RUNAS=()
if [ "$(id -u)" = 0 ]; then RUNAS=(runuser -u postgres --); fi
if [ ! -s "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA"
  if [ "$(id -u)" = 0 ]; then chown postgres "$DATA"; fi
  "${RUNAS[@]}" "$BIN/initdb" -D "$DATA" -U postgres --auth=trust >&2
fi
"${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1" -l "$DATA/log" -w start >&2
for _ in $(seq 1 30); do
  if "$BIN/psql" -h 127.0.0.1 -p $PORT -U postgres -Atc 'select 1' >/dev/null 2>&1; then break; fi
  sleep 1
done
"$BIN/psql" -h 127.0.0.1 -p $PORT -U postgres -Atc "select 1 from pg_database where datname='test'" | grep -q 1 \
  || "$BIN/createdb" -h 127.0.0.1 -p $PORT -U postgres test >&2
echo "postgres://postgres@127.0.0.1:$PORT/test"
