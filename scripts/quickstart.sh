#!/usr/bin/env bash
# remex quickstart: installs what is missing, builds and installs remex,
# starts a lab of 4 real OpenSSH hosts on loopback (127.0.0.2-5) in ./lab,
# and runs `remex exec all -- uname -a` on them.
#
#   scripts/quickstart.sh [HOSTS]
#
# remex is installed with `cargo install --path . --locked` into cargo's bin
# directory ($CARGO_INSTALL_ROOT/bin, else $CARGO_HOME/bin, else
# ~/.cargo/bin), where rustup's setup puts every cargo-installed program on
# PATH. It builds in cargo's target directory (CARGO_TARGET_DIR is honoured).
#
# Afterwards: remex --config lab/config.yml exec all -- uptime
# Stop the lab: remex lab down
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

# Where `cargo install` puts programs (its `install.root` setting aside).
BIN_DIR="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
echo "==> building remex (release) and installing it into $BIN_DIR"
cargo install --path . --locked --quiet --force --root "${BIN_DIR%/bin}" --bin remex
REMEX="$BIN_DIR/remex"

# What to type: `remex` if that is the program just installed, else its path.
if [ "$(command -v remex || true)" = "$REMEX" ]; then
  CMD=remex
else
  CMD=$REMEX
  echo "note: $BIN_DIR is not on your PATH (or another remex comes first);" >&2
  echo "      add it with: export PATH=\"$BIN_DIR:\$PATH\"" >&2
fi

# A lab left running by an earlier quickstart is replaced.
"$REMEX" lab down --dir lab >/dev/null 2>&1 || true
echo "==> starting a lab of $HOSTS sshd hosts in ./lab"
"$REMEX" lab up --hosts "$HOSTS" --dir lab
echo
echo "==> $CMD --config lab/config.yml exec all -- uname -a"
"$REMEX" --config lab/config.yml exec all -- uname -a
echo
echo "Next: $CMD --config lab/config.yml hosts check"
echo "      $CMD --config lab/config.yml --json exec all -- df -h /"
echo "      $CMD lab down     (stops the lab's sshd processes)"
