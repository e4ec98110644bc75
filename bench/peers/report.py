"""Prints bench/peers.sh's table from its results file.

    report.py RESULTS CORES

RESULTS has one line per run: workload size tool round ok expected rc wall
cpu rss_kb server warm_ms mem_src max1_kb. Each figure is the median over the runs
in which every host answered (each metric on its own; min-max: the main
figure's spread over those runs); a tool whose runs all
failed shows no figures, only how many runs succeeded. Ratios are
tool/remex (so below 1 means the tool did better than remex).
"""
import statistics, sys
from collections import defaultdict

path, cores = sys.argv[1], int(sys.argv[2])
runs = defaultdict(list)
order = []
mem_srcs = set()
for line in open(path):
    f = line.split()
    if len(f) < 14:
        continue
    wl, size, tool, rnd, ok, exp, rc = f[0], int(f[1]), f[2], f[3], int(f[4]), int(f[5]), f[6]
    key = (wl, size, tool)
    if key not in runs:
        order.append(key)
    runs[key].append({"round": rnd, "ok": ok, "exp": exp, "rc": rc, "wall": float(f[7]),
                      "cpu": float(f[8]), "rss": int(f[9]) / 1024, "server": float(f[10]), "max1": int(f[13]) / 1024,
                      "warm": None if f[11] == "-" else float(f[11])})
    mem_srcs.add(f[12])


def med(key, metric):
    good = [r[metric] for r in runs.get(key, []) if r["ok"] == r["exp"] and r[metric] is not None]
    return statistics.median(good) if good else None


def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}"


def section(title, wl, size, main):
    keys = [k for k in order if k[0] == wl and k[1] == size]
    if not keys:
        return
    ref = (wl, size, "remex")
    print(title)
    print(f"  {'tool':<14} {'ok runs':>7} {main:>10} {'min-max':>15} {'cpu_s':>8} {'cpu_ms/host':>11} {'rss_MB':>8} {'rss1_MB':>8} {'sshd_cpu_s':>10}"
          f"   {'/remex:':<7} {main:>8} {'cpu':>6} {'rss':>6} {'sshd':>6}")
    metric = "warm" if wl == "w2" else "wall"
    for key in keys:
        rs = runs[key]
        good = sum(r["ok"] == r["exp"] for r in rs)
        m, c, r, r1, s = (med(key, x) for x in (metric, "cpu", "rss", "max1", "server"))
        per_host = None if c is None or wl == "w2" else c * 1000 / size
        vals = [r[metric] for r in rs if r["ok"] == r["exp"] and r[metric] is not None]
        spread = f"{min(vals):.3f}-{max(vals):.3f}" if vals else "-"
        print(f"  {key[2]:<14} {f'{good}/{len(rs)}':>7} {fmt(m):>10} {spread:>15} {fmt(c):>8} {fmt(per_host, 2):>11} {fmt(r, 1):>8} {fmt(r1, 1):>8} {fmt(s):>10}"
              f"   {'':<7} {ratio(m, med(ref, metric)):>8} {ratio(c, med(ref, 'cpu')):>6} {ratio(r, med(ref, 'rss')):>6} {ratio(s, med(ref, 'server')):>6}")
    if wl == "w1" and med(ref, "wall"):
        # The floor: sshd's CPU spread over the cores the client leaves it.
        # With the client's CPU c and sshd's s on N cores, a run cannot end
        # sooner than (s + c) / N (that is s over N - c/wall cores, solved
        # for wall).
        w, c, s = med(ref, "wall"), med(ref, "cpu"), med(ref, "server")
        floor = (s + c) / cores
        print(f"  server floor: sshd {s:.3f} cpu-s + remex {c:.3f} cpu-s over {cores} cores = {floor:.3f} s;"
              f" remex wall/floor {w / floor:.2f} (target <= 1.15); sshd alone on {cores} cores {s / cores:.3f} s")
    print()


sizes = sorted({k[1] for k in order if k[0] == "w1"})
for size in sizes:
    section(f"W1: `hostname` on {size} hosts, all at once (wall_s: median of rounds)", "w1", size, "wall_s")
section("W2: sequential `true` on one warm connection (per_cmd_ms; cpu/rss/sshd of the whole process)", "w2", 1, "per_cmd_ms")
section("cold: `hostname` on one host, connection included", "cold", 1, "wall_s")
for size in sorted({k[1] for k in order if k[0] == "up"}):
    section(f"up: remex upload of 1 MiB to {size} hosts (verified, atomic; default settings: max_parallel 64)", "up", size, "wall_s")
for size in sorted({k[1] for k in order if k[0] == "check"}):
    section(f"check: remex hosts check on {size} hosts (default settings)", "check", size, "wall_s")

failed = [(k, r) for k in order for r in runs[k] if r["ok"] != r["exp"]]
if failed:
    print("failed runs (not in the figures):")
    for (wl, size, tool), r in failed:
        print(f"  {tool} {wl} on {size} hosts, round {r['round']}: {r['ok']} of {r['exp']} answered, exit {r['rc']}, after {r['wall']:.1f} s")
print(f"rss_MB: peak memory of the whole process tree, from {', '.join(sorted(mem_srcs))} (cgroup: pages the run")
print("  itself brought in, each once; shared library pages already in memory are not counted)")
print("rss1_MB: the largest single process's peak RSS (ru_maxrss, as ps shows it: shared pages included)")
