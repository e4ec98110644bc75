#!/usr/bin/env bash
# remex benchmark: remex side by side with OpenSSH and parallel-ssh, in one
# run, against a local lab of real sshd hosts. Run by hand, not in CI:
#
#   bench/run.sh [HOSTS]        (default 64)
#
# Prints wall time, client CPU time (user+sys) and peak RSS of each client,
# and the ratios remex/peer. Targets (issue "remex core"):
#   64-host fan-out      <= 0.3x pssh's wall time, <= 0.25x its client CPU
#   single cold exec     <= 0.3x `ssh host true`
#   warm command         <= 3 ms on an open connection
# and (issue 14) the same fan-out through one bastion, with the bastion
# connections each tool used; and (issue "remex audit"):
#   audit cost           <= 5% of the 64-host fan-out's wall time, against
#                        the same run with `audit: {enabled: false}`
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-64}
REPEAT=${REPEAT:-5}

need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2 for $1"; apt-get install -y -qq "$2" >/dev/null; }; }
need sshd openssh-server
need parallel-ssh pssh
[ -x /usr/bin/time ] || { echo "installing GNU time"; apt-get install -y -qq time >/dev/null; }

cargo build --release --quiet --bin remex --example warm_commands
# Where cargo put the binaries (CARGO_TARGET_DIR is honoured).
RELEASE=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
REMEX=$RELEASE/remex
WARM=$RELEASE/examples/warm_commands

LAB=$(mktemp -d /tmp/remex-bench.XXXXXX)
trap '"$REMEX" lab down --dir "$LAB" >/dev/null 2>&1 || true; rm -rf "$LAB"' EXIT
"$REMEX" lab up --hosts "$HOSTS" --dir "$LAB" >/dev/null 2>&1
CONFIG=$LAB/config.yml
# The same lab with auditing off (documented for labs and benchmarks only).
NOAUDIT=$LAB/config-noaudit.yml
sed 's/^audit:$/audit:\n  enabled: false/' "$CONFIG" > "$NOAUDIT"
grep -q 'enabled: false' "$NOAUDIT" || { echo "could not write $NOAUDIT"; exit 1; }
PORT=$(awk '/vm01:/ {gsub(/[,}]/,""); for (i=1;i<=NF;i++) if ($i=="port:") print $(i+1)}' "$CONFIG")
USER_=$(awk '/vm01:/ {gsub(/[,}]/,""); for (i=1;i<=NF;i++) if ($i=="user:") print $(i+1)}' "$CONFIG")
KEY=$LAB/keys/id_ed25519
KNOWN=$LAB/known_hosts
SSH_OPTS=(-i "$KEY" -o UserKnownHostsFile="$KNOWN" -o StrictHostKeyChecking=yes -o BatchMode=yes -p "$PORT")
ADDRS=()
for i in $(seq 1 "$HOSTS"); do ADDRS+=("127.0.$(( (i + 1) / 256 )).$(( (i + 1) % 256 ))"); done
printf '%s\n' "${ADDRS[@]/%/:$PORT}" > "$LAB/pssh_hosts"

# measure NAME COMMAND...: runs it REPEAT times, keeps the median wall time
# and that run's CPU and peak RSS. Output: NAME wall_s cpu_s rss_kb
RESULTS=$LAB/results
measure() {
  local name=$1; shift
  local runs=()
  for _ in $(seq 1 "$REPEAT"); do
    /usr/bin/time -f '%e %U %S %M' -o "$LAB/t" "$@" >/dev/null 2>"$LAB/err" || { echo "FAILED: $name"; cat "$LAB/err"; exit 1; }
    runs+=("$(awk '{printf "%.4f %.4f %d\n", $1, $2+$3, $4}' "$LAB/t")")
  done
  printf '%s\n' "${runs[@]}" | sort -n | awk -v n="$name" 'NR==int(('"$REPEAT"'+1)/2) {print n, $0}' >> "$RESULTS"
}
# For fast commands /usr/bin/time's 10 ms resolution is too coarse: time
# many back-to-back runs and divide.
measure_loop() {
  local name=$1 count=$2; shift 2
  local start end
  start=$(date +%s.%N)
  for _ in $(seq 1 "$count"); do "$@" >/dev/null 2>&1 || { echo "FAILED: $name"; "$@"; exit 1; }; done
  end=$(date +%s.%N)
  echo "$name $(awk -v s="$start" -v e="$end" -v c="$count" 'BEGIN {printf "%.4f", (e-s)/c}') - -" >> "$RESULTS"
}

# measure_pair A B COUNT CMD_A ::: CMD_B: runs A and B alternately COUNT
# times each (so drift and noise hit both alike); medians of wall time.
measure_pair() {
  local a=$1 b=$2 count=$3; shift 3
  local cmd_a=() cmd_b=() in_b=0
  for arg in "$@"; do
    if [ "$in_b" = 0 ] && [ "$arg" = ":::" ]; then in_b=1; continue; fi
    if [ "$in_b" = 0 ]; then cmd_a+=("$arg"); else cmd_b+=("$arg"); fi
  done
  : > "$LAB/pair_a"; : > "$LAB/pair_b"
  for _ in $(seq 1 "$count"); do
    for side in a b; do
      local s e
      s=$(date +%s.%N)
      if [ "$side" = a ]; then "${cmd_a[@]}" >/dev/null 2>&1; else "${cmd_b[@]}" >/dev/null 2>&1; fi || { echo "FAILED: $side"; exit 1; }
      e=$(date +%s.%N)
      awk -v s="$s" -v e="$e" 'BEGIN {printf "%.4f\n", e-s}' >> "$LAB/pair_$side"
    done
  done
  echo "$a $(sort -n "$LAB/pair_a" | awk -v n="$count" 'NR==int((n+1)/2)') - -" >> "$RESULTS"
  echo "$b $(sort -n "$LAB/pair_b" | awk -v n="$count" 'NR==int((n+1)/2)') - -" >> "$RESULTS"
}

ssh_loop() { for a in "${ADDRS[@]}"; do ssh "${SSH_OPTS[@]}" "$USER_@$a" hostname; done; }

: > "$RESULTS"
echo "lab: $HOSTS hosts on port $PORT as $USER_; median of $REPEAT runs"
measure "remex_fanout"  "$REMEX" --config "$CONFIG" exec all -- hostname
measure "pssh_fanout"   parallel-ssh -p "$HOSTS" -h "$LAB/pssh_hosts" -l "$USER_" -x "-i $KEY -o UserKnownHostsFile=$KNOWN -o StrictHostKeyChecking=yes -o BatchMode=yes" -i hostname
REPEAT=1 measure "ssh_seq_fanout" bash -c "$(declare -p SSH_OPTS ADDRS USER_); $(declare -f ssh_loop); ssh_loop"
# The audit's cost: the same fan-out with auditing on (default: fsync
# always) and off.
measure_pair "fanout_audit_on" "fanout_audit_off" 15 \
  "$REMEX" --config "$CONFIG" exec all -- hostname ::: \
  "$REMEX" --config "$NOAUDIT" exec all -- hostname
measure_loop "remex_cold_one" 20 "$REMEX" --config "$CONFIG" exec vm01 -- true
measure_loop "ssh_cold_one"   20 ssh "${SSH_OPTS[@]}" "$USER_@${ADDRS[0]}" true

# 200 commands on one warm connection: remex (library) vs OpenSSH ControlMaster.
WARM_OUT=$("$WARM" "$CONFIG" vm01 200)
WARM_OFF=$("$WARM" "$NOAUDIT" vm01 200 2>/dev/null)
CM=(-o ControlMaster=auto -o ControlPath="$LAB/cm-%C" -o ControlPersist=60)
ssh "${SSH_OPTS[@]}" "${CM[@]}" "$USER_@${ADDRS[0]}" true
measure "remex_warm_200" "$WARM" "$CONFIG" vm01 200
measure "ssh_cm_200" bash -c "for i in \$(seq 200); do ssh $(printf '%q ' "${SSH_OPTS[@]}" "${CM[@]}") $USER_@${ADDRS[0]} true; done"
ssh "${SSH_OPTS[@]}" "${CM[@]}" -O exit "$USER_@${ADDRS[0]}" 2>/dev/null || true

# Fan-out through one bastion (root only: the bastion lab's hosts live in a
# network namespace only the bastion reaches): remex (one pooled bastion
# connection) vs parallel-ssh with ProxyJump (one bastion connection per host).
BASTION_NOTE="bastion: skipped (needs root for the network namespace)"
if [ "$(id -u)" = 0 ]; then
  BLAB=$(mktemp -d /tmp/remex-bench-bastion.XXXXXX)
  trap '"$REMEX" lab down --dir "$LAB" >/dev/null 2>&1 || true; "$REMEX" lab down --dir "$BLAB" >/dev/null 2>&1 || true; rm -rf "$LAB" "$BLAB"' EXIT
  "$REMEX" lab up --hosts "$HOSTS" --dir "$BLAB" --bastion >/dev/null 2>&1
  BCONFIG=$BLAB/config.yml
  BPORT=$(awk '/vm01:/ {gsub(/[,}]/,""); for (i=1;i<=NF;i++) if ($i=="port:") print $(i+1)}' "$BCONFIG")
  BADDR=$(awk '/bastion:/ {gsub(/[,}]/,""); for (i=1;i<=NF;i++) if ($i=="host:") print $(i+1)}' "$BCONFIG")
  cat > "$BLAB/ssh_config" <<EOF_SSH
Host *
  User $USER_
  IdentityFile $BLAB/keys/id_ed25519
  UserKnownHostsFile $BLAB/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
Host 127.*
  ProxyJump $USER_@$BADDR:$BPORT
EOF_SSH
  printf '%s\n' "${ADDRS[@]/%/:$BPORT}" > "$BLAB/pssh_hosts"
  logins() { grep -c 'Accepted publickey' "$BLAB/hosts/bastion/sshd.log" || true; }
  b0=$(logins)
  measure "remex_bastion" "$REMEX" --config "$BCONFIG" exec 'all,!bastion' -- hostname
  b1=$(logins)
  measure "pssh_bastion" parallel-ssh -p "$HOSTS" -h "$BLAB/pssh_hosts" -x "-F $BLAB/ssh_config" -i hostname
  b2=$(logins)
  BASTION_NOTE="bastion logins per run: remex $(( (b1 - b0) / REPEAT )), pssh+ProxyJump $(( (b2 - b1) / REPEAT ))"
fi

echo
awk -v warm="$WARM_OUT" -v warm_off="$WARM_OFF" -v bastion_note="$BASTION_NOTE" '
  { wall[$1]=$2; cpu[$1]=$3; rss[$1]=$4; order[NR]=$1 }
  function ratio(a, b) { return (b > 0 && a != "-" && b != "-") ? sprintf("%.3f", a / b) : "-" }
  END {
    printf "%-16s %10s %10s %10s\n", "client", "wall_s", "cpu_s", "rss_kb"
    for (i = 1; i <= NR; i++) { k = order[i]; printf "%-16s %10s %10s %10s\n", k, wall[k], cpu[k], rss[k] }
    print ""
    printf "fan-out  remex/pssh      wall %s (target <= 0.3)   cpu %s (target <= 0.25)   rss %s\n", ratio(wall["remex_fanout"], wall["pssh_fanout"]), ratio(cpu["remex_fanout"], cpu["pssh_fanout"]), ratio(rss["remex_fanout"], rss["pssh_fanout"])
    printf "fan-out  remex/ssh loop  wall %s\n", ratio(wall["remex_fanout"], wall["ssh_seq_fanout"])
    printf "cold     remex/ssh       wall %s (target <= 0.3)\n", ratio(wall["remex_cold_one"], wall["ssh_cold_one"])
    printf "warm 200 remex/ssh CM    wall %s   cpu %s   rss %s\n", ratio(wall["remex_warm_200"], wall["ssh_cm_200"]), ratio(cpu["remex_warm_200"], cpu["ssh_cm_200"]), ratio(rss["remex_warm_200"], rss["ssh_cm_200"])
    printf "warm command latency (library, one connection), audit on:  %s\n", warm
    printf "warm command latency (library, one connection), audit off: %s (target <= 3 ms)\n", warm_off
    if ("remex_bastion" in wall)
      printf "bastion  remex/pssh -J   wall %s   cpu %s   rss %s\n", ratio(wall["remex_bastion"], wall["pssh_bastion"]), ratio(cpu["remex_bastion"], cpu["pssh_bastion"]), ratio(rss["remex_bastion"], rss["pssh_bastion"])
    print bastion_note
    on = wall["fanout_audit_on"]; off = wall["fanout_audit_off"]
    printf "audit    on/off fan-out  wall %s  cost %.1f%% (target <= 5%%)\n", ratio(on, off), (off > 0 ? 100 * (on - off) / off : 0)
  }' "$RESULTS"
