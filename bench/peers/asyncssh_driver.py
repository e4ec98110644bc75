"""AsyncSSH peer for bench/peers.sh: every host at once with asyncio.gather.

    asyncssh_driver.py HOSTS_FILE USER KEY KNOWN_HOSTS COMMAND      one command on every host
    asyncssh_driver.py HOSTS_FILE USER KEY KNOWN_HOSTS --warm N     N commands on one connection

HOSTS_FILE has one ADDR:PORT a line. Prints `ADDR:PORT: OUTPUT` for each host that
answered and `FAILED ADDR:PORT: ...` (on stderr) for the others; exit 1 if any failed.
"""
import asyncio, sys, time
import asyncssh

async def one(addr, user, key, known, cmd):
    host, port = addr.rsplit(":", 1)
    try:
        async with asyncssh.connect(host, int(port), username=user, client_keys=[key],
                                    known_hosts=known, agent_path=None, config=None) as conn:
            r = await conn.run(cmd, check=True)
            return f"{addr}: {r.stdout.strip()}"
    except Exception as e:  # a host's failure is reported, the others go on
        return f"FAILED {addr}: {type(e).__name__}: {e}"

async def warm(addr, user, key, known, n):
    host, port = addr.rsplit(":", 1)
    async with asyncssh.connect(host, int(port), username=user, client_keys=[key],
                                known_hosts=known, agent_path=None, config=None) as conn:
        await conn.run("true", check=True)  # untimed, as in remex's warm_commands
        start = time.perf_counter()
        for _ in range(n):
            await conn.run("true", check=True)
        per = (time.perf_counter() - start) * 1e3 / n
    print(f"warm_per_command_ms={per:.3f} n={n}")

async def main():
    hosts_file, user, key, known, *rest = sys.argv[1:]
    hosts = [l.strip() for l in open(hosts_file) if l.strip()]
    # Read once for all hosts, not once per connection.
    known, key = asyncssh.read_known_hosts(known), asyncssh.read_private_key(key)
    if rest[0] == "--warm":
        return await warm(hosts[0], user, key, known, int(rest[1]))
    results = await asyncio.gather(*(one(h, user, key, known, " ".join(rest)) for h in hosts))
    failed = [r for r in results if r.startswith("FAILED")]
    for r in results:
        print(r, file=sys.stderr if r.startswith("FAILED") else sys.stdout)
    sys.exit(1 if failed else 0)

asyncio.run(main())
