#!/usr/bin/env bash
# Holds `remex serve` to its OpenAPI document: Schemathesis (a third-party
# API fuzzer, from PyPI) generates requests from /v1/openapi.json, valid
# and invalid, and runs every check it has (`--checks all`: no 5xx, every
# status and content type documented, bodies and headers as the schema
# says, data the schema refuses is refused and data it allows is taken,
# 405 with `Allow`, auth ignored nowhere, ...) against the real service on
# a lab of real sshd hosts. Exits non-zero on any failure. Part of
# scripts/test.sh; runs alone too:
#
#   tests/schemathesis/run.sh             # seed chosen by Schemathesis
#   REMEX_ST_SEED=7 tests/schemathesis/run.sh
#   REMEX_ST_EXAMPLES=100 tests/schemathesis/run.sh   # more cases per operation
#
# Schemathesis is installed once into a virtualenv
# ($REMEX_ST_VENV, default ~/.cache/remex/schemathesis-venv) at the version
# pinned below. Needs python3 with venv, curl; root, for the lab's
# throwaway user.
#
# The lab is safe to fuzz: 2 hosts whose login is a throwaway local user
# (`remex lab up --password-user`), removed by `lab down`; the generated
# commands and uploads run as that user, never as root. Its key is deployed
# with the lab's password before the run, so runs, uploads and downloads
# reach the hosts.
set -euo pipefail
cd "$(dirname "$0")/../.."

ST_VERSION=4.32.5
VENV=${REMEX_ST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/remex/schemathesis-venv}
# Cases per operation, and the run's time budget in seconds (its stateful
# phase, which chains operations by their links, goes on until it is
# spent): about 3 minutes in all on a loaded 2-core machine.
EXAMPLES=${REMEX_ST_EXAMPLES:-40}
MAX_TIME=${REMEX_ST_MAX_TIME:-150}

say() { echo "==> schemathesis: $*"; }
die() { echo "error: schemathesis tests: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root: the lab logs in as a throwaway local user it creates"
for tool in python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing; run scripts/test.sh (it installs it)"
done

# --- Schemathesis, once, into its virtualenv --------------------------------
ST="$VENV/bin/st"
if ! "$ST" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
  say "installing Schemathesis $ST_VERSION from PyPI into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION" ||
    die "pip install schemathesis==$ST_VERSION failed"
fi

# --- remex, a lab, an admin token, and remex serve ---------------------------
cargo build --locked --quiet --bin remex
REMEX="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/remex"

work=$(mktemp -d /tmp/remex-st.XXXXXX)
# The lab user's homes are inside: it must get through (its keys and the
# store stay in directories of mode 0700).
chmod 755 "$work"
lab="$work/lab"
serve_pid=
cleanup() {
  if [ -n "$serve_pid" ]; then
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  "$REMEX" lab down --dir "$lab" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# free_port, start_serve
. tests/lib/serve.sh   # the working directory is the repository

# A user name of its own per run (at most 32 characters), so that two runs
# do not share (or remove) one user.
user="rmxst$$"
"$REMEX" lab up --hosts 2 --dir "$lab" --password-user "$user" >"$work/lab.log" 2>&1 ||
  { cat "$work/lab.log" >&2; die "remex lab up failed"; }
config="$lab/config.yml"
REMEX_PASSWORD=$(cat "$lab/password") "$REMEX" --config "$config" keys deploy all \
  --password-env REMEX_PASSWORD >"$work/deploy.log" 2>&1 ||
  { cat "$work/deploy.log" >&2; die "deploying the lab's key failed"; }

# The service's limits, high enough that the fuzzer is never rate-limited
# (a 429 is documented, but it would stop the fuzzer testing anything),
# and short waits and small downloads so that no case takes long.
grep -q '^service:$' "$config" && [ "$(tail -n 1 "$config" | cut -c1-2)" = "  " ] ||
  die "the lab's config.yml does not end with its service section"
cat >>"$config" <<'EOF'
  limits:
    requests_per_minute: 1000000
    unauthenticated_per_minute: 1000000
    jobs_per_token: 1000
    max_wait: 2s
    max_download: 1M
    max_body: 16M
EOF

token=$("$REMEX" --config "$config" tokens create schemathesis --scope admin 2>/dev/null)
start_serve "$config"
say "remex serve on 127.0.0.1:$api_port, lab of 2 hosts (user $user)"

# --- the deliberate exceptions, each with its reason -------------------------
cat >"$work/schemathesis.toml" <<'EOF'
# `GET /v1/files/download` answers 502 (`host_failed`, documented) when the
# host cannot be reached or refuses the login: the failure is the host's,
# not the request's, and a download has no report to carry it as data. The
# fuzzer cannot cause one on a healthy lab, but `POST /v1/keys/revoke` with
# `force: true` may remove the key the lab logs in with (it is what that
# operation is for), after which every download is a 502. Kept: every other
# 5xx is a failure.
[[operations]]
include-path = "/v1/files/download"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502"]

# `POST /v1/keys/rotate` gets only requests its schema refuses (each must be
# a 400 or another documented refusal): every request it takes generates a
# key — RSA up to 16384 bits, minutes of a core in a debug build, which the
# fuzzer would ask for dozens of times — and makes it the lab's login key.
# What its schema takes is held to what the service takes by the unit test
# `openapi::tests::the_other_request_schemas_take_what_the_service_takes`,
# and rotations run against real sshd in the integration tests.
[[operations]]
include-path = "/v1/keys/rotate"
generation.mode = "negative"
EOF

# A `callback_url` is checked against the operator's `service.callbacks.allow`
# (off here), which no schema can hold: one the schema takes is still a 400
# naming `callback_url` unless the operator named its receiver (issue 23:
# "400 with a hint until it is configured"). So generated bodies with a
# `callback_url` are left out; the policy is attacked, spelling by spelling,
# in tests/integration/hostile/callbacks.rs.
cat >"$work/remex_hooks.py" <<'EOF'
import schemathesis


@schemathesis.hook
def filter_body(ctx, body):
    return not (isinstance(body, dict) and "callback_url" in body)
EOF

# --- the run -------------------------------------------------------------------
seed=()
[ -n "${REMEX_ST_SEED:-}" ] && seed=(--seed "$REMEX_ST_SEED")
say "st run --checks all, $EXAMPLES cases per operation, at most ${MAX_TIME}s"
rc=0
(cd "$work" && PYTHONPATH="$work" SCHEMATHESIS_HOOKS=remex_hooks "$ST" --config-file "$work/schemathesis.toml" run \
  "http://127.0.0.1:$api_port/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --max-examples "$EXAMPLES" \
  --max-time "$MAX_TIME" \
  --workers 2 \
  --request-timeout 30 \
  --generation-database none \
  --no-color \
  "${seed[@]}") || rc=$?

kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; die "remex serve died during the run"; }
[ "$rc" -eq 0 ] || { tail -n 20 "$work/serve.log" >&2; die "Schemathesis found failures (exit $rc)"; }
say "0 failures"
