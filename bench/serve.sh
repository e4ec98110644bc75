#!/usr/bin/env bash
# remex serve benchmark: the service's overhead, load and listing, against a
# local lab of real sshd hosts. Run by hand, not in CI:
#
#   bench/serve.sh [HOSTS] [CLIENTS] [SECONDS]      (default 64 200 60)
#
# Prints, each with its target (issue "remex serve"):
#   overhead   POST /v1/runs?wait of `true` on one warm host, p50/p99, minus
#              the library's warm command (examples/warm_commands):
#              <= 2 ms added at p50, <= 5 ms at p99
#   load       CLIENTS clients submitting `true` on all HOSTS for SECONDS:
#              no error, no lost job, p99, server peak RSS (<= 150 MB), and
#              one SSH connection per host for the whole run (sshd's logs)
#   listing    GET /v1/jobs?limit=50 with 10,000 jobs in the store:
#              p99 <= 20 ms
#   output     OUTPUT_MB (default 300) MB of output through one job, in
#              lines of 100 bytes and without a single newline: wall time,
#              the server's CPU time and peak RSS of each — one long line
#              costs about what the same bytes in lines cost (issue 23)
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-64}
CLIENTS=${2:-200}
SECONDS_=${3:-60}

cargo build --release --quiet --bin remex --example warm_commands --example api_load
# Where cargo put the binaries (CARGO_TARGET_DIR is honoured).
RELEASE=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
REMEX=$RELEASE/remex
WARM=$RELEASE/examples/warm_commands
LOAD=$RELEASE/examples/api_load
command -v sqlite3 >/dev/null 2>&1 || apt-get install -y -qq sqlite3 >/dev/null

LAB=$(mktemp -d /tmp/remex-serve-bench.XXXXXX)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  "$REMEX" lab down --dir "$LAB" >/dev/null 2>&1 || true
  rm -rf "$LAB"
}
trap cleanup EXIT
"$REMEX" lab up --hosts "$HOSTS" --dir "$LAB" >/dev/null 2>&1
CONFIG=$LAB/config.yml
# Room for the load: every client's jobs at once.
sed -i "s/^service:$/service:\n  limits: { requests_per_minute: 1000000, jobs_per_token: $CLIENTS }/" "$CONFIG"
TOKEN=$("$REMEX" --config "$CONFIG" tokens create bench --scope exec 2>/dev/null)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$REMEX" --config "$CONFIG" serve --listen "127.0.0.1:$PORT" 2>"$LAB/serve.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); remex $("$REMEX" --version | cut -d' ' -f2); $HOSTS hosts"

# 1. Overhead: the library's warm command vs the same through the API.
lib=$("$WARM" "$CONFIG" vm01 300)
lib_ms=$(echo "$lib" | sed -n 's/.*warm_per_command_ms=\([0-9.]*\).*/\1/p')
"$LOAD" latency "$URL" "$TOKEN" vm01 20 >/dev/null   # warm the connection
api=$("$LOAD" latency "$URL" "$TOKEN" vm01 300)
p50=$(echo "$api" | sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p')
p99=$(echo "$api" | sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p')
awk -v l="$lib_ms" -v a="$p50" -v b="$p99" 'BEGIN {
  printf "overhead   library %.2f ms/command; API p50 %.2f ms (+%.2f, target <= 2), p99 %.2f ms (+%.2f, target <= 5)\n", l, a, a-l, b, b-l }'

# 2. Load: CLIENTS clients, all hosts, SECONDS seconds (every host warm).
"$LOAD" latency "$URL" "$TOKEN" all 2 >/dev/null
accepted_before=$(cat "$LAB"/hosts/vm*/sshd.log 2>/dev/null | grep -c 'Accepted publickey' || true)
load=$("$LOAD" load "$URL" "$TOKEN" all "$CLIENTS" "$SECONDS_")
accepted_after=$(cat "$LAB"/hosts/vm*/sshd.log 2>/dev/null | grep -c 'Accepted publickey' || true)
rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$SERVER/status")
echo "load       $CLIENTS clients x $HOSTS hosts for ${SECONDS_}s: $load; server peak RSS ${rss} MB (target <= 150); new SSH logins during the load: $((accepted_after - accepted_before)) (target 0: one connection per host, reused by every job)"

# 3. Listing with 10,000 jobs in the store.
STORE=$LAB/service/service.db
python3 - "$STORE" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time() * 1000)
rows = [(f"seed-{i:05d}", "bench", "exec", "all", "succeeded", "{}", '{"summary":{"total":1}}', None,
         now - i, now - i, now - i, None, "h", None, None) for i in range(10000)]
db.executemany("INSERT OR IGNORE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
db.commit()
PY
list=$("$LOAD" list "$URL" "$TOKEN" 500)
echo "listing    10,000+ jobs, GET /v1/jobs?limit=50: $list (target p99 <= 20 ms)"

# 4. Output: the same bytes in lines and as one line without a newline.
OUTPUT_MB=${OUTPUT_MB:-300}
output_row() {
  local command=$1 body t0 t1 c0 c1
  body=$(python3 -c 'import json, sys; print(json.dumps({"targets": "vm01", "command": ["sh", "-c", sys.argv[1]]}))' "$command")
  echo 5 > "/proc/$SERVER/clear_refs"
  c0=$(awk '{print $14 + $15}' "/proc/$SERVER/stat"); t0=$(date +%s.%N)
  curl -sf -m 600 -X POST "$URL/v1/runs?wait=300s" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d "$body" > "$LAB/output.json"
  t1=$(date +%s.%N); c1=$(awk '{print $14 + $15}' "/proc/$SERVER/stat")
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"][0]; sys.exit(0 if r["ok"] else "output job failed: %s" % r["error"])' "$LAB/output.json"
  awk -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$(getconf CLK_TCK)" -v rss="$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")" \
    'BEGIN {printf "wall %.2f s, server CPU %.2f s, peak RSS %.0f MB", t1 - t0, (c1 - c0) / hz, rss / 1024}'
}
bytes=$((OUTPUT_MB * 1000000))
lines=$(output_row "head -c $bytes /dev/zero | tr '\\0' x | fold -w 100")
one=$(output_row "head -c $bytes /dev/zero | tr '\\0' x")
echo "output     $OUTPUT_MB MB in lines of 100: $lines; without a newline: $one (target: about the same)"
