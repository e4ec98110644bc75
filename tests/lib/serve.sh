# Sourced by the test scripts that drive a real `remex serve`
# (tests/n8n/run.sh, tests/schemathesis/run.sh). Needs `die`, `$REMEX`
# and `$work` from the script that sources it.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts `remex serve` with config $1 on a free loopback port and waits
# until it answers /healthz; sets api_port and serve_pid. Its log is
# $work/serve.log.
start_serve() {
  api_port=$(free_port)
  "$REMEX" --config "$1" serve --listen "127.0.0.1:$api_port" 2>"$work/serve.log" &
  serve_pid=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$api_port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; die "remex serve did not start"; }
    sleep 0.1
  done
  die "remex serve did not answer /healthz within 10 s"
}
