#!/usr/bin/env bash
# Gateway overhead: latency added by auth + limits + metering (+ the proxy hop) at ~1000 req/s.
#   A. stub upstream alone                       vs  gateway (SQLite) -> channel -> stub upstream
#   B. fake backend server without a gateway     vs  the same server with the gateway (local path)
# Load tool: wrk (apt-get install wrk), 10 connections each pausing 10 ms between requests
# (~1000 req/s offered), --latency percentiles. Usage: bench/gateway/overhead.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR="${1:-15}"
T="${CARGO_TARGET_DIR:-target}"
# FAKE_SERVE_BIN: a prebuilt fake_serve (e.g. an older build, to compare two versions in one run).
if [ -n "${FAKE_SERVE_BIN:-}" ]; then
  BIN="$FAKE_SERVE_BIN"
else
  cargo build --release -p hanlin-gateway --example fake_serve >&2
  BIN="$T/release/examples/fake_serve"
fi
export HANLIN_SECRET_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
TMP="$(mktemp -d)"
PIDS=()
declare -A PORT_PID
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT

start() { # mode port [args…] — waits for "listening"
  local mode=$1 port=$2; shift 2
  "$BIN" "$mode" --port "$port" "$@" >"$TMP/$mode-$port.out" 2>"$TMP/$mode-$port.err" &
  PIDS+=($!)
  PORT_PID[$port]=$!
  for _ in $(seq 100); do grep -q listening "$TMP/$mode-$port.out" && return; sleep 0.05; done
  echo "$mode did not start" >&2; exit 1
}

cat >"$TMP/load.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"' .. os.getenv("MODEL") .. '","messages":[{"role":"user","content":"hello there"}],"max_tokens":8}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
function delay() return 10 end
function done(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_us=%d p90_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(90),
    latency:percentile(99), summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, summary.errors.status))
end
LUA

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime of a process

run() { # label port model key — also prints the server's CPU time per request (robust to noise)
  local out pid c0 c1 n hz
  pid=${PORT_PID[$2]}
  hz=$(getconf CLK_TCK)
  c0=$(cpu_ticks "$pid")
  out=$(MODEL="$3" KEY="$4" wrk -t2 -c10 -d"${DUR}s" -s "$TMP/load.lua" "http://127.0.0.1:$2/v1/chat/completions" | grep RESULT)
  c1=$(cpu_ticks "$pid")
  n=$(echo "$out" | sed -E 's/.*rps=([0-9]+).*/\1/')
  echo "$1 $out server_cpu_us_per_req=$(( (c1 - c0) * 1000000 / hz / (n * DUR) ))"
}

start stub 18451
DB="sqlite://$TMP/gw.db"
ADMIN=$("$BIN" init --db "$DB")
start serve 18452 --db "$DB" --threads 2
api() { curl -sf -X "$1" "http://127.0.0.1:18452/admin/v1$2" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$3"; }
api POST /channels '{"name":"stub","base_url":"http://127.0.0.1:18451/v1","key":"sk-stub","models":["stub"]}' >/dev/null
api PUT /prices '{"model":"stub","prompt":"1","completion":"2"}' >/dev/null
api PUT /prices '{"model":"fake","prompt":"1","completion":"2"}' >/dev/null
TID=$(api POST /tenants '{"name":"bench","kind":"business"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
api POST /topups "{\"tenant\":\"$TID\",\"amount\":\"1000000\"}" >/dev/null
KEY=$(api POST /keys "{\"tenant\":\"$TID\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
start plain 18453 --threads 2

echo "# wrk -t2 -c10 (10 ms pause per connection), ${DUR}s each; latencies in microseconds"
run "A.stub-alone        " 18451 stub ""
run "A.gateway->stub     " 18452 stub "$KEY"
run "B.fake-no-gateway   " 18453 fake ""
run "B.fake-with-gateway " 18452 fake "$KEY"
echo "# ledger rows written: $(python3 -c "import sqlite3; print(sqlite3.connect('$TMP/gw.db').execute('select count(*) from usage_ledger').fetchone()[0])")"
