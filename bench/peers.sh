#!/usr/bin/env bash
# remex side by side with the best peers (issue 15), in one run, against one
# lab of real OpenSSH sshd on loopback. Run by hand (as root), not in CI:
#
#   bench/peers.sh            64, 256 and 1,000 hosts, 3 interleaved rounds
#   bench/peers.sh --quick    64 hosts, 1 round (a look in about a minute)
#
# Environment: SIZES="64 256 1000", ROUNDS=3, TOOLS="remex remex-noaudit bssh
# asyncssh paramiko pssh ansible", WARM_N=200, COLD_REPS=3, TOOL_TIMEOUT=300 (s,
# a run still going then is killed and counted as failed),
# REMEX=path (default: cargo build --release), REMEX_BENCH_CACHE (default
# ~/.cache/remex/bench: where the peers are installed), KEEP_LAB=1 (leave
# the lab's files in place; its sshd are stopped all the same).
#
# Workloads, each tool doing the same work at its widest parallelism:
#   W1    `hostname` on every host of 64, 256, 1,000 (remex max_parallel,
#         bssh --parallel, pssh -p, ansible -f, one task/thread per host in
#         the AsyncSSH/Paramiko drivers)
#   W2    WARM_N sequential `true` on one open connection, per-command time
#         (remex's library through examples/warm_commands.rs, the drivers'
#         --warm mode; the CLIs have no such mode)
#   cold  `hostname` on one host, connection included (plus plain `ssh`)
#   up    remex only: `upload` of a 1 MiB file to every host (verified,
#         atomic), 64, 256, 1,000 hosts, with remex's default settings
#         (max_parallel 64)
#   check remex only: `hosts check` on every host (reachable, host key,
#         login, round trip), default settings
#
# In every round each tool runs once per workload, in an order rotated from
# round to round, so a change in the machine's load hits all tools alike;
# the table shows medians over the rounds. A run in which a tool did not get
# an answer from every host is counted as failed and listed, never timed as
# a success.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SIZES=${SIZES:-"64 256 1000"}
ROUNDS=${ROUNDS:-3}
if [ "${1:-}" = "--quick" ]; then SIZES=${QUICK_SIZES:-64}; ROUNDS=1; fi
TOOLS=${TOOLS:-"remex remex-noaudit bssh asyncssh paramiko pssh ansible"}
WARM_N=${WARM_N:-200}
COLD_REPS=${COLD_REPS:-3}
TOOL_TIMEOUT=${TOOL_TIMEOUT:-300}
CACHE=${REMEX_BENCH_CACHE:-$HOME/.cache/remex/bench}
# bssh 2.2.3 is the newest release that builds on Rust 1.95: 2.3.1 to 3.0.1
# declare rust-version 1.96 and 3.1.0 declares 1.97, so cargo refuses them.
BSSH_VERSION=${BSSH_VERSION:-2.2.3}
PY_PEERS="asyncssh paramiko ansible-core"
MAX_HOSTS=$(printf '%s\n' $SIZES | sort -n | tail -1)
ADDRS_PER_SSHD=16   # sshd's limit on ListenAddress sockets (MAX_LISTEN_SOCKS)

[ "$(id -u)" = 0 ] || { echo "bench/peers.sh: run as root (it installs packages and starts sshd)" >&2; exit 2; }

# ---------------------------------------------------------------- installs

# apt_install PACKAGE: from Debian (apt-get update once, first).
APT_UPDATED=
apt_install() {
  echo "installing $1 (Debian)"
  [ -n "$APT_UPDATED" ] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
# apt_need COMMAND PACKAGE: installs PACKAGE when COMMAND is missing.
apt_need() { command -v "$1" >/dev/null 2>&1 || apt_install "$2"; }

install_peers() {
  apt_need sshd openssh-server
  apt_need ssh-keygen openssh-client
  apt_need parallel-ssh pssh
  /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  mkdir -p "$CACHE"

  # Python peers from PyPI, in their own venv (Debian's python3, not
  # whatever python3 comes first on PATH).
  VENV=$CACHE/venv
  if ! "$VENV/bin/python" -c 'import asyncssh, paramiko' 2>/dev/null || [ ! -x "$VENV/bin/ansible" ]; then
    echo "installing $PY_PEERS (PyPI) into $VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check $PY_PEERS
  fi

  # bssh from crates.io (only when it is among TOOLS: its build takes minutes).
  BSSH=$CACHE/bssh/bin/bssh
  local bssh_line="bssh not run"
  if [[ " $TOOLS " = *" bssh "* ]] && { [ ! -x "$BSSH" ] || ! "$BSSH" --version 2>/dev/null | grep -qF "$BSSH_VERSION"; }; then
    echo "installing bssh $BSSH_VERSION (crates.io) into $CACHE/bssh: a few minutes"
    cargo install bssh --version "$BSSH_VERSION" --locked --quiet --root "$CACHE/bssh"
  fi

  # remex itself.
  if [ -n "${REMEX:-}" ]; then
    WARM=${WARM:-$(dirname "$REMEX")/examples/warm_commands}
  else
    cargo build --release --quiet --bin remex --example warm_commands
    REMEX=$ROOT/target/release/remex
    WARM=$ROOT/target/release/examples/warm_commands
  fi
  [ -x "$WARM" ] || { echo "no $WARM: cargo build --release --example warm_commands" >&2; exit 2; }

  if [ -x "$BSSH" ]; then
    bssh_line="bssh $("$BSSH" --version | awk '{print $NF}')"
    [ "$BSSH_VERSION" != 2.2.3 ] || bssh_line+=" (the newest release that builds on Rust 1.95: 2.3.1-3.0.1 need 1.96, 3.1.0 needs 1.97; rustc here: $(rustc --version | awk '{print $2}'))"
  fi
  echo "peers: $bssh_line, $(parallel-ssh --version 2>&1 | head -1 | sed 's/^/pssh /'), $("$VENV/bin/pip" list 2>/dev/null | awk 'tolower($1) ~ /^(asyncssh|paramiko|ansible-core)$/ {printf "%s %s, ", $1, $2}')$(ssh -V 2>&1 | cut -d, -f1)"
}

# ---------------------------------------------------------------- the lab

# The lab: MAX_HOSTS hosts h0001…, host i on 127.0.(10 + i/250).(1 + i%250),
# all on one port. One sshd serves 16 addresses (one sshd per host would be
# 1,000 processes); each sshd has its own host key. Every address is a host
# of the inventory, pinned in known_hosts under its own name.
SSHD_PIDS=()
LAB=
cleanup() {
  local pid
  for pid in "${SSHD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SSHD_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  if [ -n "$LAB" ] && [ -z "${KEEP_LAB:-}" ]; then rm -rf "$LAB"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

host_addr() { echo "127.0.$(( 10 + ($1 - 1) / 250 )).$(( 1 + ($1 - 1) % 250 ))"; }
host_name() { printf 'h%04d' "$1"; }

# A port free on loopback (sshd fails to start otherwise, and we check).
free_port() {
  local port
  while :; do
    port=$(shuf -i 20000-59999 -n 1)
    [ -z "$(ss -Htan "sport = :$port")" ] && { echo "$port"; return; }
  done
}

lab_up() {
  LAB=$(mktemp -d /tmp/remex-peers.XXXXXX)
  PORT=$(free_port)
  KEY=$LAB/keys/id_ed25519
  KNOWN=$LAB/known_hosts
  mkdir -p "$LAB/keys" "$LAB/home" /run/sshd
  chmod 700 "$LAB/keys"
  ssh-keygen -q -t ed25519 -N '' -C remex-peers -f "$KEY"
  cp "$KEY.pub" "$LAB/authorized_keys"
  : > "$KNOWN"
  local groups=$(( (MAX_HOSTS + ADDRS_PER_SSHD - 1) / ADDRS_PER_SSHD ))
  local g i dir
  for g in $(seq 1 "$groups"); do
    dir=$LAB/sshd/$g
    mkdir -p "$dir"
    ssh-keygen -q -t ed25519 -N '' -C "remex-peers-$g" -f "$dir/host_ed25519"
    {
      echo "# remex peers lab: sshd $g of $groups, written by bench/peers.sh"
      for i in $(seq $(( (g - 1) * ADDRS_PER_SSHD + 1 )) $(( g * ADDRS_PER_SSHD < MAX_HOSTS ? g * ADDRS_PER_SSHD : MAX_HOSTS ))); do
        echo "ListenAddress $(host_addr "$i"):$PORT"
        echo "[$(host_addr "$i")]:$PORT $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >> "$KNOWN"
      done
      # MaxStartups: every connection may arrive at once; MaxSessions: room
      # for remex's max_sessions (10) and more. HOME points at an empty
      # directory so no shell rc file runs (root's .bashrc would otherwise
      # cost every tool the same, and blur the server's share).
      cat <<EOF
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $LAB/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxStartups 2000
MaxSessions 64
LogLevel ERROR
PrintMotd no
PrintLastLog no
UseDNS no
SetEnv HOME=$LAB/home
Subsystem sftp internal-sftp
EOF
    } > "$dir/sshd_config"
    /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" &
    SSHD_PIDS+=($!)
  done
  printf '%s\n' "${SSHD_PIDS[@]}" > "$LAB/sshd.pids"

  # Ready when every address listens.
  local n
  for _ in $(seq 300); do
    n=$(ss -Htln "sport = :$PORT" | wc -l)
    [ "$n" -ge "$MAX_HOSTS" ] && break
    sleep 0.1
  done
  [ "$n" -ge "$MAX_HOSTS" ] || { echo "lab: only $n of $MAX_HOSTS addresses listen; see $LAB/sshd/*/sshd.log" >&2; KEEP_LAB=1; exit 1; }
  USER_=$(id -un)
  echo "lab: $MAX_HOSTS hosts on 127.0.10.1… port $PORT, $groups sshd ($ADDRS_PER_SSHD addresses each) in $LAB"
}

# write_inventories SIZE: the first SIZE hosts, in every tool's format.
write_inventories() {
  local size=$1 i addr name
  local remex=$LAB/remex-$size.yml hosts=$LAB/hosts-$size.txt bssh=$LAB/bssh-$size.txt ansible=$LAB/ansible-$size.ini
  echo "vms:" > "$remex"
  : > "$hosts"; : > "$bssh"
  echo "[lab]" > "$ansible"
  for i in $(seq 1 "$size"); do
    addr=$(host_addr "$i"); name=$(host_name "$i")
    echo "  $name: { host: $addr, port: $PORT, user: $USER_ }" >> "$remex"
    echo "$addr:$PORT" >> "$hosts"
    echo "$USER_@$addr:$PORT" >> "$bssh"
    echo "$name ansible_host=$addr ansible_port=$PORT" >> "$ansible"
  done
  # Every tool gets all hosts at once and a generous connect timeout: on a
  # loaded 2-core machine 1,000 handshakes queue behind each other at sshd.
  cat >> "$remex" <<EOF
remote_execution:
  key_storage_path: $LAB/keys
  default_key: id_ed25519
  known_hosts: $KNOWN
  host_key_policy: strict
  connect_timeout: 60s
  command_timeout: 5m
  max_parallel: $size
  use_agent: false
audit:
  path: $LAB/audit/audit.jsonl
EOF
  # The same with auditing off (documented for labs and benchmarks only),
  # to show what the audit log costs.
  sed 's/^audit:$/audit:\n  enabled: false/' "$remex" > "$LAB/remex-$size-noaudit.yml"
  # Issue 15's scale check: upload and hosts check with remex's default
  # settings (max_parallel 64, connect_timeout, ...): only the lab's keys,
  # known_hosts and audit log are set.
  sed '/^  \(host_key_policy\|connect_timeout\|command_timeout\|max_parallel\):/d' "$remex" > "$LAB/remex-$size-defaults.yml"
  cat >> "$ansible" <<EOF
[lab:vars]
ansible_user=$USER_
ansible_ssh_private_key_file=$KEY
ansible_ssh_common_args=-F /dev/null -o UserKnownHostsFile=$KNOWN -o StrictHostKeyChecking=yes -o ConnectTimeout=60
EOF
}

write_ansible_cfg() {
  # No ControlPersist: a master left from one round would make the next one
  # warm (and outlive the run); raw needs no Python on the hosts and makes
  # one ssh connection per host, the same work as the other tools.
  cat > "$LAB/ansible.cfg" <<EOF
[defaults]
host_key_checking = True
interpreter_python = auto_silent
local_tmp = $LAB/ansible-tmp
timeout = 60
[ssh_connection]
ssh_args = -o ControlMaster=no
EOF
}

# ---------------------------------------------------------------- the tools

SSH_OPTS=()
# tool_command TOOL WORKLOAD SIZE: sets CMD to the command line of TOOL for
# WORKLOAD (w1, w2, cold) on SIZE hosts; returns 1 when the tool has no
# such mode.
tool_command() {
  local tool=$1 workload=$2 size=$3
  local hosts=$LAB/hosts-$size.txt
  CMD=()
  case $workload in
    up) [ "$tool" = remex ] || return 1
      CMD=("$REMEX" --config "$LAB/remex-$size-defaults.yml" --json upload all "$LAB/upload-1MiB.bin" /tmp/remex-peers-upload.bin)
      return 0 ;;
    check) [ "$tool" = remex ] || return 1
      CMD=("$REMEX" --config "$LAB/remex-$size-defaults.yml" --json hosts check all)
      return 0 ;;
  esac
  if [ "$workload" = w2 ]; then
    case $tool in
      remex) CMD=("$WARM" "$LAB/remex-1.yml" h0001 "$WARM_N") ;;
      remex-noaudit) CMD=("$WARM" "$LAB/remex-1-noaudit.yml" h0001 "$WARM_N") ;;
      asyncssh|paramiko) CMD=("$VENV/bin/python" "$ROOT/bench/peers/${tool}_driver.py" "$hosts" "$USER_" "$KEY" "$KNOWN" --warm "$WARM_N") ;;
      *) return 1 ;;
    esac
    return 0
  fi
  case $tool in
    remex) CMD=("$REMEX" --config "$LAB/remex-$size.yml" exec all -- hostname) ;;
    remex-noaudit) CMD=("$REMEX" --config "$LAB/remex-$size-noaudit.yml" exec all -- hostname) ;;
    bssh)
      # bssh checks host keys against $HOME/.ssh/known_hosts only, so it
      # runs with a HOME of its own holding the lab's known_hosts. Its -H
      # "^FILE" form is refused by 2.2.3 ("invalid hostname"), so the hosts
      # go on the command line.
      CMD=(env HOME="$LAB/bssh-home" "$BSSH" -H "$(paste -sd, "$LAB/bssh-$size.txt")" -i "$KEY"
        --parallel "$size" --strict-host-key-checking yes --connect-timeout 60
        --require-all-success hostname) ;;
    asyncssh|paramiko) CMD=("$VENV/bin/python" "$ROOT/bench/peers/${tool}_driver.py" "$hosts" "$USER_" "$KEY" "$KNOWN" hostname) ;;
    pssh) CMD=(parallel-ssh -p "$size" -t 0 -h "$hosts" -l "$USER_" -x "${SSH_OPTS[*]}" -i hostname) ;;
    ansible) CMD=(env ANSIBLE_CONFIG="$LAB/ansible.cfg" LC_ALL=C.UTF-8 "$VENV/bin/ansible" all
        -i "$LAB/ansible-$size.ini" -f "$size" -m raw -a hostname -o) ;;
    ssh) [ "$workload" = cold ] || return 1
      CMD=(ssh "${SSH_OPTS[@]}" -p "$PORT" "$USER_@$(host_addr 1)" hostname) ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
}

# answered TOOL FILE: how many hosts answered, by the tool's own output.
answered() {
  local tool=$1 out=$2
  case $(basename "$out" | cut -d- -f1) in
    up|check) grep -o '"ok":true' "$out" | wc -l; return ;;
  esac
  case $tool in
    remex|remex-noaudit) grep -c '^h[0-9]*: ' "$out" ;;
    bssh) grep -c '✓.*@127\.' "$out" ;;   # ✓ USER@ADDR:PORT, then the output
    asyncssh|paramiko) grep -c '^127\.[0-9.]*:[0-9]*: ' "$out" ;;
    pssh) grep -c '\[SUCCESS\]' "$out" ;;
    ansible) grep -c ' | CHANGED | rc=0 ' "$out" ;;
    ssh) grep -c . "$out" ;;
  esac || true
}

RESULTS=
# run_one TOOL WORKLOAD SIZE ROUND: one measured run, appended to RESULTS
# as: workload size tool round ok expected rc wall cpu rss_kb server warm_ms
# mem_src max1_kb
run_one() {
  local tool=$1 workload=$2 size=$3 round=$4
  tool_command "$tool" "$workload" "$size" || return 0
  local out=$LAB/out/$workload-$size-$tool-$round
  local ok expected warm_ms=- rc wall cpu rss server mem_src max1
  read -r rc wall cpu rss server mem_src max1 < <("$VENV/bin/python" "$ROOT/bench/peers/measure.py" \
    --stdout "$out" --timeout "$TOOL_TIMEOUT" --sshd-pids "$LAB/sshd.pids" -- "${CMD[@]}")
  if [ "$workload" = w2 ]; then
    expected=1
    warm_ms=$(grep -o 'warm_per_command_ms=[0-9.]*' "$out" | cut -d= -f2 || true)
    if [ -n "$warm_ms" ]; then ok=1; else ok=0; warm_ms=-; fi
  else
    expected=$size
    ok=$(answered "$tool" "$out")
  fi
  [ "$rc" = 0 ] || ok=$(( ok < expected ? ok : expected - 1 ))  # a non-zero exit is a failed run
  echo "$workload $size $tool $round $ok $expected $rc $wall $cpu $rss $server $warm_ms $mem_src $max1" >> "$RESULTS"
  if [ "$ok" != "$expected" ]; then
    printf '  FAILED %s %s on %s hosts (round %s): %s of %s answered; stderr:\n' "$tool" "$workload" "$size" "$round" "$ok" "$expected"
    head -5 "$out.err" | sed 's/^/    /'
  fi
}

# rotated ROUND: TOOLS, starting at a different tool each round.
rotated() {
  local -a t=($TOOLS)
  local n=${#t[@]} i
  for i in $(seq 0 $(( n - 1 ))); do echo "${t[$(( (i + $1) % n ))]}"; done
}

# ---------------------------------------------------------------- main

install_peers
ulimit -n "$(ulimit -Hn)"   # 1,000 connections (pssh: 3 pipes per ssh child)
lab_up
SSH_OPTS=(-F /dev/null -i "$KEY" -o UserKnownHostsFile="$KNOWN" -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=60)
mkdir -p "$LAB/out" "$LAB/bssh-home/.ssh" "$LAB/ansible-tmp"
head -c 1048576 /dev/urandom > "$LAB/upload-1MiB.bin"
cp "$KNOWN" "$LAB/bssh-home/.ssh/known_hosts"
write_ansible_cfg
for size in 1 $SIZES; do write_inventories "$size"; done

# Every tool once against the lab before timing (first-use costs such as
# Python's bytecode cache land here, and a broken setup shows at once).
RESULTS=$LAB/warmup.txt
for tool in $TOOLS ssh; do run_one "$tool" cold 1 0; done

RESULTS=$LAB/results.txt
: > "$RESULTS"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $ROUNDS round(s): W1 on $SIZES hosts, W2 $WARM_N commands, cold x$COLD_REPS"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS ($(date -u +%H:%M:%S))"
  for size in $SIZES; do
    for tool in $(rotated "$round"); do run_one "$tool" w1 "$size" "$round"; done
  done
  for tool in $(rotated "$round"); do run_one "$tool" w2 1 "$round"; done
  for size in $SIZES; do
    run_one remex up "$size" "$round"
    run_one remex check "$size" "$round"
  done
  for rep in $(seq 1 "$COLD_REPS"); do
    for tool in $(TOOLS="$TOOLS ssh" rotated $(( round + rep ))); do run_one "$tool" cold 1 "$round"; done
  done
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
"$VENV/bin/python" "$ROOT/bench/peers/report.py" "$RESULTS" "$(nproc)"
