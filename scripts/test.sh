#!/usr/bin/env bash
# Runs the whole remex test suite the way CI does: installs what is missing
# (OpenSSH server and client, Dropbear, ProFTPD with mod_sftp, sudo), then
# format check, clippy with warnings as errors, and every test (unit,
# integration against real servers on loopback, doc tests, the n8n
# example workflows run by real n8n against remex serve, and Schemathesis
# holding remex serve to its OpenAPI document).
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# --- system packages: the suite runs real servers, never mocks --------------
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
[ -x /usr/sbin/dropbear ] || missing+=(dropbear-bin)
# ProFTPD's mod_sftp: an SFTP-only server that refuses every command.
[ -x /usr/sbin/proftpd ] || missing+=(proftpd-core)
[ -f /usr/lib/proftpd/mod_sftp.so ] || missing+=(proftpd-mod-crypto)
command -v sudo >/dev/null 2>&1 || missing+=(sudo)
command -v setsid >/dev/null 2>&1 || missing+=(util-linux)
# Bastion labs put their hosts in a network namespace (ip netns, veth).
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The service's tests: a real HTTP client for TLS, and certificates for it.
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Real n8n runs the example workflows (tests/n8n/run.sh): Node.js and npm
# (n8n itself comes from the npm registry into a cache dir), python3 for the
# checks, make and g++ for n8n's SQLite driver.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
# Schemathesis (tests/schemathesis/run.sh) comes from PyPI into a virtualenv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "==> installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Rust toolchain ------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust 1.89 or newer (https://rustup.rs) and rerun" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
echo "==> cargo clippy --lib --no-default-features -- -D warnings (the library alone: no lab, service or CLI)"
cargo clippy --lib --no-default-features --locked -- -D warnings
echo "==> cargo nextest run"
cargo nextest run --all-targets --locked --no-fail-fast
echo "==> cargo test --doc"
cargo test --doc --locked
echo "==> n8n workflows against remex serve (tests/n8n/run.sh)"
tests/n8n/run.sh
echo "==> Schemathesis against remex serve: the OpenAPI document is the contract (tests/schemathesis/run.sh)"
tests/schemathesis/run.sh
