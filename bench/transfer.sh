#!/usr/bin/env bash
# remex upload/download benchmark: remex side by side with scp, sftp and
# rsync over ssh (OpenSSH's default cipher and aes128-gcm@openssh.com), in
# one run, against a local lab of real sshd hosts. Run by hand, not in CI
# (needs root for the tmpfs):
#
#   bench/transfer.sh            SIZE_MIB=1024 MULTI_MIB=256 HOSTS=8 REPEAT=5
#                                SCENARIOS="loopback rtt hosts" PEERS=all
#
# SCENARIOS picks a subset (e.g. SCENARIOS=loopback for a quick look);
# PEERS=gcm runs only the aes128-gcm OpenSSH rows (the fastest here).
#
# Scenarios: loopback; loopback through a user-space 20 ms RTT proxy
# (examples/delay_proxy.rs; this kernel has no tc netem); MULTI_MIB to
# HOSTS hosts at once. Every file lives on a tmpfs (so the disk does not
# decide), and its SHA-256 is checked after every run of every tool.
# remex runs with verification on (its default); rows `remex-noverify`
# show the same without it, for reference.
#
# Prints MB/s (10^6 bytes per second of wall time), client CPU (user+sys of
# the client and its children), machine CPU (every process, so on loopback
# both ends: sshd, sftp-server and the host's hash too), peak RSS (GNU time),
# and remex / the best OpenSSH figure of the same scenario and direction.
# Then the loopback CPU budget: the best OpenSSH run's machine CPU plus one
# SHA-256 pass per end, spread over every core, is the fastest a verified
# transfer with OpenSSH's transport cost could go here. Targets (issue 3):
#   loopback    >= 1.0x the best OpenSSH figure, verification on
#   20 ms RTT   >= 2.0x OpenSSH
#   peak RSS    independent of the file size
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
MULTI_MIB=${MULTI_MIB:-256}
HOSTS=${HOSTS:-8}
REPEAT=${REPEAT:-5}
DELAY_REPEAT=${DELAY_REPEAT:-1}
RTT_MS=${RTT_MS:-20}
SCENARIOS=${SCENARIOS:-loopback rtt hosts}
PEERS=${PEERS:-all}
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

[ "$(id -u)" -eq 0 ] || { echo "bench/transfer.sh needs root (it mounts a tmpfs)"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2 for $1"; apt-get install -y -qq "$2" >/dev/null; }; }
need sshd openssh-server
need rsync rsync
need openssl openssl
[ -x /usr/bin/time ] || { echo "installing GNU time"; apt-get install -y -qq time >/dev/null; }

cargo build --release --quiet --bin remex --example delay_proxy
# Where cargo put the binaries (CARGO_TARGET_DIR is honoured).
RELEASE=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
REMEX=$RELEASE/remex
DELAY=$RELEASE/examples/delay_proxy

LAB=$(mktemp -d /tmp/remex-bench-transfer.XXXXXX)
MNT=$LAB/mnt
PROXY_PID=
cleanup() {
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
  "$REMEX" lab down --dir "$LAB" >/dev/null 2>&1 || true
  umount "$MNT" 2>/dev/null || true
  rm -rf "$LAB"
}
trap cleanup EXIT
"$REMEX" lab up --hosts "$HOSTS" --dir "$LAB" >/dev/null 2>&1
mkdir -p "$MNT"
mount -t tmpfs -o size=$(( SIZE_MIB * 6 + MULTI_MIB * (HOSTS * 2 + 2) + 512 ))m remex-bench "$MNT"
CONFIG=$LAB/config.yml
PORT=$(awk '/vm01:/ {gsub(/[,}]/,""); for (i=1;i<=NF;i++) if ($i=="port:") print $(i+1)}' "$CONFIG")
USER_=$(awk '/vm01:/ {gsub(/[,}]/,""); for (i=1;i<=NF;i++) if ($i=="user:") print $(i+1)}' "$CONFIG")
KEY=$LAB/keys/id_ed25519
KNOWN=$LAB/known_hosts
HOST=127.0.0.2

echo "creating ${SIZE_MIB} MiB and ${MULTI_MIB} MiB test files on tmpfs"
head -c $(( SIZE_MIB << 20 )) /dev/urandom > "$MNT/big.bin"
head -c $(( MULTI_MIB << 20 )) /dev/urandom > "$MNT/multi.bin"
head -c $(( 64 << 20 )) /dev/urandom > "$MNT/small.bin"
digest() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
BIG_SHA=$(digest "$MNT/big.bin")
MULTI_SHA=$(digest "$MNT/multi.bin")
SMALL_SHA=$(digest "$MNT/small.bin")
mkdir -p "$MNT/remote" "$MNT/local"
# The remote copy that downloads read.
cp "$MNT/big.bin" "$MNT/remote/src.bin"

RESULTS=$LAB/results
# hash_cpu FILE: core-seconds of one SHA-256 pass over FILE by `openssl
# dgst` (the host's tool; remex's client hashes at about the same speed),
# least CPU of 3 runs.
hash_cpu() {
  local _
  for _ in 1 2 3; do
    /usr/bin/time -f '%U %S' -o "$LAB/t" openssl dgst -sha256 "$1" >/dev/null
    awk '{print $1 + $2}' "$LAB/t"
  done | sort -n | head -n1
}
# CPU time of every process on the machine (both ends of a loopback
# transfer), in clock ticks: user + nice + system + irq + softirq.
HZ=$(getconf CLK_TCK)
busy_jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }
: > "$RESULTS"
JOBS=()
# job SCENARIO DIRECTION NAME BYTES CHECK_FILE SHA -- COMMAND...
# Queues COMMAND for run_jobs.
job() {
  local spec; spec=$(printf '%q ' "$@")
  JOBS+=("$spec")
}
# Runs the queued jobs REPEAT times (DELAY_REPEAT for the RTT scenario),
# interleaved: round 1 runs every job once, then round 2, ... so a change in
# the machine's load hits every tool alike. Before each run the job's
# CHECK_FILE is removed; after it, its SHA-256 is checked. Keeps each job's
# run with the median wall time.
run_jobs() {
  local reps=$REPEAT i r
  [[ "${JOBS[0]:-}" == rtt* ]] && reps=$DELAY_REPEAT
  local raw=$LAB/raw; : > "$raw"
  for r in $(seq 1 "$reps"); do
    for i in "${!JOBS[@]}"; do
      eval "set -- ${JOBS[$i]}"
      local scenario=$1 dir=$2 name=$3 bytes=$4 check=$5 sha=$6; shift 7
      rm -f "$check"
      sync
      local busy0; busy0=$(busy_jiffies)
      /usr/bin/time -f '%e %U %S %M' -o "$LAB/t" "$@" >/dev/null 2>"$LAB/err" || { echo "FAILED: $scenario $dir $name"; cat "$LAB/err"; exit 1; }
      local machine=$(( $(busy_jiffies) - busy0 ))
      local got; got=$(digest "$check")
      [ "$got" = "$sha" ] || { echo "SHA-256 MISMATCH: $scenario $dir $name: $got != $sha"; exit 1; }
      awk -v j="$i" -v s="$scenario" -v d="$dir" -v n="$name" -v b="$bytes" -v m="$machine" -v hz="$HZ" \
        '{printf "%d %s %s %s %.3f %.2f %d %.1f %.2f\n", j, s, d, n, $1, $2+$3, $4, b/1e6/$1, m/hz}' "$LAB/t" >> "$raw"
      printf '  round %d/%d  %-12s %-5s %-14s %s\n' "$r" "$reps" "$scenario" "$dir" "$name" "$(tail -n1 "$raw" | awk '{print $8 " MB/s"}')"
    done
  done
  for i in "${!JOBS[@]}"; do
    awk -v j="$i" '$1 == j' "$raw" | sort -k5,5n | awk -v r="$reps" 'NR==int((r+1)/2) {print $2, $3, $4, $5, $6, $7, $8, $9}' >> "$RESULTS"
  done
  JOBS=()
}

ssh_opts() { # PORT [CIPHER]
  local o=(-i "$KEY" -o UserKnownHostsFile="$KNOWN" -o StrictHostKeyChecking=yes -o BatchMode=yes)
  [ -n "${2:-}" ] && o+=(-c "$2")
  printf '%q ' "${o[@]}"
}

# One scenario: remex and every OpenSSH peer, up then down, against
# $HOST:$1 with remex config $2.
run_scenario() {
  local scenario=$1 port=$2 config=$3 bytes=$(( SIZE_MIB << 20 ))
  local up=$MNT/remote/up.bin down=$MNT/local/down.bin
  echo "scenario $scenario ($HOST:$port)"
  job "$scenario" up remex "$bytes" "$up" "$BIG_SHA" -- "$REMEX" --config "$config" upload vm01 "$MNT/big.bin" "$up"
  job "$scenario" down remex "$bytes" "$MNT/local/vm01/src.bin" "$BIG_SHA" -- "$REMEX" --config "$config" download vm01 "$MNT/remote/src.bin" "$MNT/local"
  # For reference (not a target): the same without remex's verification.
  job "$scenario" up remex-noverify "$bytes" "$up" "$BIG_SHA" -- "$REMEX" --config "$config" upload vm01 "$MNT/big.bin" "$up" --no-verify
  job "$scenario" down remex-noverify "$bytes" "$MNT/local/vm01/src.bin" "$BIG_SHA" -- "$REMEX" --config "$config" download vm01 "$MNT/remote/src.bin" "$MNT/local" --no-verify
  local ciphers=("" aes128-gcm@openssh.com)
  [ "$PEERS" = gcm ] && ciphers=(aes128-gcm@openssh.com)
  for cipher in "${ciphers[@]}"; do
    local tag=${cipher:+-gcm} opts; opts=$(ssh_opts "$port" "$cipher")
    job "$scenario" up "scp$tag" "$bytes" "$up" "$BIG_SHA" -- bash -c "scp -q -P $port $opts '$MNT/big.bin' $USER_@$HOST:'$up'"
    job "$scenario" down "scp$tag" "$bytes" "$down" "$BIG_SHA" -- bash -c "scp -q -P $port $opts $USER_@$HOST:'$MNT/remote/src.bin' '$down'"
    job "$scenario" up "sftp$tag" "$bytes" "$up" "$BIG_SHA" -- bash -c "echo 'put $MNT/big.bin $up' | sftp -q -b - -P $port $opts $USER_@$HOST"
    job "$scenario" down "sftp$tag" "$bytes" "$down" "$BIG_SHA" -- bash -c "echo 'get $MNT/remote/src.bin $down' | sftp -q -b - -P $port $opts $USER_@$HOST"
    job "$scenario" up "rsync$tag" "$bytes" "$up" "$BIG_SHA" -- bash -c "rsync -q -e 'ssh -p $port $opts' '$MNT/big.bin' $USER_@$HOST:'$up'"
    job "$scenario" down "rsync$tag" "$bytes" "$down" "$BIG_SHA" -- bash -c "rsync -q -e 'ssh -p $port $opts' $USER_@$HOST:'$MNT/remote/src.bin' '$down'"
  done
}

if want loopback; then
run_scenario loopback "$PORT" "$CONFIG"
# Memory: the same upload with 64 MiB and MULTI_MIB files; peak RSS must not
# grow with the size (compare with the 1 GiB row).
job loopback up remex-64MiB $(( 64 << 20 )) "$MNT/remote/small.bin" "$SMALL_SHA" -- "$REMEX" --config "$CONFIG" upload vm01 "$MNT/small.bin" "$MNT/remote/small.bin"
job loopback up "remex-${MULTI_MIB}MiB" $(( MULTI_MIB << 20 )) "$MNT/remote/multi.bin" "$MULTI_SHA" -- "$REMEX" --config "$CONFIG" upload vm01 "$MNT/multi.bin" "$MNT/remote/multi.bin"
run_jobs
# What verification costs here, for the CPU budget printed at the end: one
# SHA-256 pass over the file (see hash_cpu).
HASH_S=$(hash_cpu "$MNT/big.bin")
fi

# The same through a 20 ms RTT proxy: remex's config and OpenSSH's
# known_hosts learn the proxy's port.
if want rtt; then
"$DELAY" "$HOST:0" "$HOST:$PORT" "$RTT_MS" > "$LAB/proxy.out" &
PROXY_PID=$!
for _ in $(seq 50); do [ -s "$LAB/proxy.out" ] && break; sleep 0.1; done
PPORT=$(head -n1 "$LAB/proxy.out" | sed 's/.*://')
grep "^\[$HOST\]:$PORT " "$KNOWN" | sed "s/^\[$HOST\]:$PORT /[$HOST]:$PPORT /" >> "$KNOWN"
sed "s/host: $HOST, port: $PORT/host: $HOST, port: $PPORT/" "$CONFIG" > "$LAB/config-delay.yml"
run_scenario "rtt${RTT_MS}ms" "$PPORT" "$LAB/config-delay.yml"
run_jobs
kill "$PROXY_PID"; PROXY_PID=
fi

# MULTI_MIB to HOSTS hosts at once: remex's fan-out vs HOSTS scp processes
# in parallel (aes128-gcm, OpenSSH's fastest here). All lab hosts share this
# tmpfs: remex's hosts replace one file (each through its own temp file),
# scp's write one file each; the checked file is the last host's.
if want hosts; then
rm -rf "$MNT/remote/up.bin" "$MNT/local"
echo "scenario $HOSTS hosts x ${MULTI_MIB} MiB"
MB=$(( (MULTI_MIB << 20) * HOSTS ))
job "${HOSTS}hosts" up remex "$MB" "$MNT/remote/multi.bin" "$MULTI_SHA" -- "$REMEX" --config "$CONFIG" upload all "$MNT/multi.bin" "$MNT/remote/multi.bin"
job "${HOSTS}hosts" up remex-noverify "$MB" "$MNT/remote/multi.bin" "$MULTI_SHA" -- "$REMEX" --config "$CONFIG" upload all "$MNT/multi.bin" "$MNT/remote/multi.bin" --no-verify
scp_all() {
  local i pids=() opts; opts=$(ssh_opts "$PORT" aes128-gcm@openssh.com)
  for i in $(seq 1 "$HOSTS"); do
    local addr="127.0.$(( (i + 1) / 256 )).$(( (i + 1) % 256 ))"
    local dest="$MNT/remote/multi.bin"; [ "$i" -lt "$HOSTS" ] && dest="$MNT/remote/multi-$i.bin"
    bash -c "scp -q -P $PORT $opts '$MNT/multi.bin' $USER_@$addr:'$dest'" & pids+=($!)
  done
  local rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; return $rc
}
export -f scp_all ssh_opts
export MNT HOSTS PORT USER_ KEY KNOWN
job "${HOSTS}hosts" up scp-gcm "$MB" "$MNT/remote/multi.bin" "$MULTI_SHA" -- bash -c scp_all
run_jobs
# A verified fan-out hashes the file once here and once on every host: on
# this one machine those HOSTS + 1 passes share the cores with both ends.
MULTI_HASH_S=$(hash_cpu "$MNT/multi.bin")
fi

echo
awk -v hash="${HASH_S:-}" -v mhash="${MULTI_HASH_S:-}" -v hosts="$HOSTS" -v ncpu="$(nproc)" '
  { key=$1" "$2; name[NR]=$3; scen[NR]=$1; dir[NR]=$2; wall[NR]=$4; cpu[NR]=$5; rss[NR]=$6; mbps[NR]=$7; mach[NR]=$8
    if ($3 !~ /^remex/ && mbps[NR] > best[key]) { best[key]=mbps[NR]; bestname[key]=$3; bestwall[key]=$4; bestmach[key]=$8 } }
  END {
    printf "%-12s %-5s %-14s %8s %8s %8s %10s %10s %s\n", "scenario", "dir", "client", "MB/s", "wall_s", "cpu_s", "machine_s", "rss_kb", "remex/best-OpenSSH"
    for (i = 1; i <= NR; i++) {
      key=scen[i]" "dir[i]; r="-"
      if (name[i] ~ /^remex(-noverify)?$/ && best[key] > 0) r=sprintf("%.2fx (vs %s %.1f MB/s)", mbps[i]/best[key], bestname[key], best[key])
      printf "%-12s %-5s %-14s %8.1f %8.2f %8.2f %10.2f %10d %s\n", scen[i], dir[i], name[i], mbps[i], wall[i], cpu[i], mach[i], rss[i], r
    }
    key=hosts"hosts up"
    if (mhash != "" && (key in best)) {
      need=bestmach[key] + (hosts + 1) * mhash
      printf "\nCPU budget of the %d-host fan-out (%d cores shared by the client and every host; one SHA-256 pass of the file: %.2f core-s):\n", hosts, ncpu, mhash
      printf "  up   %s used %.2f core-s; + %d hashes (one per host, one local) = %.2f core-s, >= %.2f s on %d cores: a verified fan-out as cheap as %s reaches at most %.2fx\n", bestname[key], bestmach[key], hosts + 1, need, need / ncpu, ncpu, bestname[key], bestwall[key] / (need / ncpu)
    }
    if (hash == "") exit
    # On loopback both ends share the CPUs: a verified transfer needs what
    # the best OpenSSH run used, plus a SHA-256 pass on each end.
    printf "\nCPU budget on loopback (%d cores shared by both ends; one SHA-256 pass of the file: %.2f core-s):\n", ncpu, hash
    split("up down", dirs, " ")
    for (d = 1; d <= 2; d++) {
      key="loopback "dirs[d]
      if (!(key in best)) continue
      need=bestmach[key] + 2 * hash
      printf "  %-4s %s used %.2f core-s; + 2 hashes = %.2f core-s, >= %.2f s on %d cores: a verified copy as cheap as %s reaches at most %.2fx\n", dirs[d], bestname[key], bestmach[key], need, need / ncpu, ncpu, bestname[key], bestwall[key] / (need / ncpu)
    }
  }' "$RESULTS"
echo
echo "targets: loopback >= 1.0x, rtt${RTT_MS}ms >= 2.0x, ${HOSTS} hosts >= 1.0x (issue 15) the best OpenSSH figure; remex rss of the ${SIZE_MIB} MiB, ${MULTI_MIB} MiB and 64 MiB uploads about equal"
