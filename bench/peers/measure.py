"""Runs one benchmark command and prints one line of what it cost:

    RC WALL CPU RSS_KB SERVER MEM_SRC MAX1_KB


    measure.py --stdout FILE [--timeout S] [--sshd-pids FILE] [--mem-limit BYTES] -- COMMAND...

wall      seconds from fork to exit
cpu       user+sys seconds of the command and every descendant it waited for
          (getrusage(RUSAGE_CHILDREN): pssh's ssh processes and ansible's
          forks are reaped by the tool, so they are included)
rss_kb    peak memory of the whole process tree: a fresh memory cgroup per
          run (v1 memory.max_usage_in_bytes or v2 memory.peak), so ansible's
          forks and pssh's ssh processes add up and shared pages count once;
          without a usable cgroup, the peak of the summed VmRSS of the tree
          sampled every 20 ms (shared pages then count once per process)
mem_src   which of the two it was
max1_kb   the largest RSS of any single process of the tree (ru_maxrss), as
          ps or /usr/bin/time show it: shared library pages included
server    sshd CPU seconds in the run: the change of utime+stime+cutime+cstime
          of the lab's listeners (every session's sshd is their child and is
          reaped by them, so once they have no children left it is all there)
rc        exit status (124: killed at the timeout; -N: killed by signal N)
"""
import argparse, os, resource, signal, sys, time

TICK = os.sysconf("SC_CLK_TCK")


def listener_cpu(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def listeners_busy(pids):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                if f.read().strip():
                    return True
        except FileNotFoundError:
            pass
    return False


def memory_cgroup(limit):
    """A fresh memory cgroup below our own, or None when there is no usable one."""
    for line in open("/proc/self/cgroup"):
        hid, ctrls, path = line.rstrip("\n").split(":", 2)
        if "memory" in ctrls.split(","):
            base, peak = f"/sys/fs/cgroup/memory{path}", "memory.max_usage_in_bytes"
            limit_file = "memory.limit_in_bytes"
            break
    else:
        path = next((l.split("::", 1)[1].strip() for l in open("/proc/self/cgroup") if l.startswith("0::")), None)
        root = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
        if path is None or not os.path.exists(f"{root}{path}/memory.peak"):
            return None
        base, peak, limit_file = f"{root}{path}", "memory.peak", "memory.max"
    cg = f"{base}/remex-peers-{os.getpid()}"
    try:
        os.mkdir(cg)
        with open(f"{cg}/{limit_file}", "w") as f:
            f.write(str(limit))
    except OSError:
        return None
    return cg, peak


def tree_rss_kb(root):
    """The summed VmRSS of root and its descendants (the fallback)."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stdout", required=True)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--sshd-pids")
    ap.add_argument("--mem-limit", type=int, default=8 << 30)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    pids = [int(p) for p in open(a.sshd_pids).read().split()] if a.sshd_pids else []

    cg = memory_cgroup(a.mem_limit)
    server0 = listener_cpu(pids)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)  # its own group, so a timeout kills the whole tree
        if cg:
            with open(f"{cg[0]}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        out = os.open(a.stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(a.stdout + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1), os.dup2(err, 2)
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)

    peak_sampled, rc = 0, None
    deadline = start + a.timeout
    while rc is None:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            rc = 124
            break
        if not cg:
            peak_sampled = max(peak_sampled, tree_rss_kb(pid))
        time.sleep(0.02 if not cg else 0.005)
    wall = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)

    # Whatever the tool left behind (an ssh ControlPersist master, say) is
    # stopped, so it neither skews the next run nor outlives the benchmark.
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if cg:
        procs = open(f"{cg[0]}/cgroup.procs").read().split()
        for p in procs:
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass
        rss_kb = int(open(f"{cg[0]}/{cg[1]}").read()) // 1024
        for _ in range(200):
            try:
                os.rmdir(cg[0])
                break
            except OSError:
                time.sleep(0.01)
        mem_src = "cgroup"
    else:
        rss_kb, mem_src = peak_sampled, "proc-sum"

    # The server's share: wait (at most 10 s) until every session's sshd has
    # ended and been reaped by its listener.
    for _ in range(1000):
        if not listeners_busy(pids):
            break
        time.sleep(0.01)
    server = listener_cpu(pids) - server0
    print(rc, f"{wall:.4f}", f"{cpu:.4f}", rss_kb, f"{server:.3f}", mem_src, cpu1.ru_maxrss)


main()
