#!/usr/bin/env bash
# remex quickstart: installs what is missing, builds remex, starts a lab of
# 4 real OpenSSH hosts on loopback (127.0.0.2-5) in ./lab, and runs
# `remex exec all -- uname -a` on them.
#
#   scripts/quickstart.sh [HOSTS]
#
# Afterwards: ./target/release/remex --config lab/config.yml exec all -- uptime
# Stop the lab: ./target/release/remex lab down
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-4}

if [ ! -x /usr/sbin/sshd ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: OpenSSH's sshd is missing; install it with: sudo apt-get install -y openssh-server" >&2
    exit 1
  fi
  echo "==> installing openssh-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openssh-server >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust 1.89 or newer (https://rustup.rs) and rerun" >&2
  exit 1
fi

echo "==> building remex (release)"
cargo build --release --locked --quiet --bin remex
REMEX=./target/release/remex

# A lab left running by an earlier quickstart is replaced.
"$REMEX" lab down --dir lab >/dev/null 2>&1 || true
echo "==> starting a lab of $HOSTS sshd hosts in ./lab"
"$REMEX" lab up --hosts "$HOSTS" --dir lab
echo
echo "==> remex --config lab/config.yml exec all -- uname -a"
"$REMEX" --config lab/config.yml exec all -- uname -a
echo
echo "Next: $REMEX --config lab/config.yml hosts check"
echo "      $REMEX --config lab/config.yml --json exec all -- df -h /"
echo "      $REMEX lab down     (stops the lab's sshd processes)"
