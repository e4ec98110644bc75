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
#   strangers  20,000 requests without a token to random paths (keep-alive,
#              one client address): server RSS growth <= 20 MB, audit log
#              growth <= 1 MB (denied requests coalesced), and what they
#              were answered (401 up to the address's rate, then 429)
#   sse        a throttled reader of a job's events (`seq 1 120000`: it
#              reads nothing until the job ended, then slowly): events
#              delivered / events sent, in order and without a gap
#              (target: all of them)
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
sed -i "s/^service:$/service:\n  limits: { requests_per_minute: 1000000, jobs_per_token: $CLIENTS, max_output: 16M, denied_audit_interval: 5s }/" "$CONFIG"
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
db.executemany("INSERT OR IGNORE INTO jobs (id, token, operation, targets, state, request, report, error, "
               "created_ms, started_ms, finished_ms, idempotency_key, request_hash, callback_url, callback_state) "
               "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
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

# 5. Strangers: 20,000 requests without a token to random paths.
AUDIT=$LAB/audit/audit.jsonl
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
log_before=$(stat -c %s "$AUDIT")
strangers=$(python3 - "$PORT" <<'PY'
import http.client, os, sys, time
port = int(sys.argv[1])
answers = {}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
began = time.monotonic()
for i in range(20000):
    path = "/" + os.urandom(12).hex() + "/%22%5C" + str(i)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        answers[response.status] = answers.get(response.status, 0) + 1
        if response.getheader("connection", "").lower() == "close":
            conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    except (http.client.HTTPException, OSError):
        answers["closed"] = answers.get("closed", 0) + 1
        conn.close(); conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
took = time.monotonic() - began
print(" ".join(f"{k}:{v}" for k, v in sorted(answers.items(), key=str)) + f" in {took:.1f}s")
PY
)
sleep 7   # the coalesced records of the last interval (denied_audit_interval: 5s)
rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
log_after=$(stat -c %s "$AUDIT")
awk -v a="$rss_before" -v b="$rss_after" -v c="$log_before" -v d="$log_after" -v s="$strangers" 'BEGIN {
  printf "strangers  20,000 requests without a token to random paths (%s): server RSS %+.1f MB (target <= 20), audit log %+.1f KB (target <= 1024)\n", s, (b-a)/1024, (d-c)/1024 }'

# 6. A throttled SSE reader: every event of a job of 120,000 lines?
python3 - "$PORT" "$TOKEN" 120000 <<'PY'
import http.client, json, sys, time
port, token, lines = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
auth = {"Authorization": f"Bearer {token}"}
def call(method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = dict(auth, **({"Content-Type": "application/json"} if body else {}))
    conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
    return json.loads(conn.getresponse().read())
job = call("POST", "/v1/runs", {"targets": "vm01", "command": ["seq", "1", str(lines)]})["job_id"]
stream = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
stream.request("GET", f"/v1/jobs/{job}/events", headers=auth)
events = stream.getresponse()
state = call("GET", f"/v1/jobs/{job}?wait=300s")["state"]   # nothing read meanwhile
ids, pending, reads, started = [], b"", 0, time.monotonic()
while True:
    if reads < 200:
        time.sleep(0.005)                                    # then slowly
    reads += 1
    chunk = events.read1(4096) if hasattr(events, "read1") else events.read(4096)
    if not chunk:
        break
    pending += chunk
    while b"\n\n" in pending:
        block, pending = pending.split(b"\n\n", 1)
        for line in block.split(b"\n"):
            if line.startswith(b"id:"):
                ids.append(int(line[3:]))
sent = lines + 3   # host_started, the lines, host_finished, job_finished
in_order = ids == list(range(1, len(ids) + 1))
print(f"sse        throttled reader, job of {lines} lines ({state}): {len(ids)} / {sent} events delivered, "
      f"{'in order, no gap' if in_order else 'OUT OF ORDER OR WITH GAPS'}, read in {time.monotonic() - started:.1f}s (target: all)")
PY
