"""Paramiko peer for bench/peers.sh: one thread per host (a thread pool as wide as the
host list), as a Paramiko script does it.

    paramiko_driver.py HOSTS_FILE USER KEY KNOWN_HOSTS COMMAND      one command on every host
    paramiko_driver.py HOSTS_FILE USER KEY KNOWN_HOSTS --warm N     N commands on one connection

HOSTS_FILE has one ADDR:PORT a line. Prints `ADDR:PORT: OUTPUT` for each host that
answered and `FAILED ADDR:PORT: ...` (on stderr) for the others; exit 1 if any failed.
"""
import sys, time
from concurrent.futures import ThreadPoolExecutor
import paramiko

def connect(addr, user, key, known):
    host, port = addr.rsplit(":", 1)
    client = paramiko.SSHClient()
    name = f"[{host}]:{port}"  # as OpenSSH writes a host on another port than 22
    for keytype, hostkey in (known.lookup(name) or {}).items():
        client.get_host_keys().add(name, keytype, hostkey)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())  # strict, like the others
    client.connect(host, int(port), username=user, pkey=key, allow_agent=False,
                   look_for_keys=False, timeout=60, banner_timeout=60, auth_timeout=60)
    return client

def run(client, cmd):
    _, stdout, _ = client.exec_command(cmd)
    out = stdout.read().decode()
    if stdout.channel.recv_exit_status() != 0:
        raise RuntimeError(f"exit status {stdout.channel.recv_exit_status()}")
    return out.strip()

def one(addr, user, key, known, cmd):
    try:
        client = connect(addr, user, key, known)
        try:
            return f"{addr}: {run(client, cmd)}"
        finally:
            client.close()
    except Exception as e:  # a host's failure is reported, the others go on
        return f"FAILED {addr}: {type(e).__name__}: {e}"

def main():
    hosts_file, user, key, known, *rest = sys.argv[1:]
    hosts = [l.strip() for l in open(hosts_file) if l.strip()]
    # Read once for all hosts (per connection, 1,000 hosts would parse
    # 1,000 lines 1,000 times: a minute of CPU).
    known, key = paramiko.HostKeys(known), paramiko.PKey.from_path(key)
    if rest[0] == "--warm":
        n = int(rest[1])
        client = connect(hosts[0], user, key, known)
        run(client, "true")
        start = time.perf_counter()
        for _ in range(n):
            run(client, "true")
        print(f"warm_per_command_ms={(time.perf_counter() - start) * 1e3 / n:.3f} n={n}")
        client.close()
        return
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        results = list(pool.map(lambda h: one(h, user, key, known, " ".join(rest)), hosts))
    for r in results:
        print(r, file=sys.stderr if r.startswith("FAILED") else sys.stdout)
    sys.exit(1 if any(r.startswith("FAILED") for r in results) else 0)

main()
