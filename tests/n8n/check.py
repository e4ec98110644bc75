#!/usr/bin/env python3
"""Checks what real n8n did with one of the workflows in examples/n8n/.

    check.py WORKFLOW N8N_OUTPUT LAB_DIR

N8N_OUTPUT is what `n8n execute --id=… --rawOutput` printed: log lines, then
the execution as pretty-printed JSON (from a line that is exactly `{`).
Exits 1 naming what is wrong.
"""
import hashlib
import json
import os
import sys

UP = ["vm01", "vm02", "vm03"]  # the lab's hosts
DOWN = "vm04"                  # a host in the config whose machine is down


def fail(message):
    sys.exit(f"n8n workflow {WORKFLOW}: {message}")


def execution(path):
    text = open(path, encoding="utf-8").read()
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == "{"), None)
    if start is None:
        fail(f"n8n printed no execution:\n{text}")
    run, _ = json.JSONDecoder().raw_decode("".join(lines[start:]))
    return run


def runs(run, node):
    """Every run of `node`: a list (per run) of lists (per output) of items."""
    data = run["data"]["resultData"]["runData"].get(node)
    if data is None:
        fail(f"node {node!r} never ran")
    return [[[item["json"] for item in (out or [])] for out in r.get("data", {}).get("main", [])] for r in data]


def items(run, node, output=0):
    """The items of `node`'s last run on `output`."""
    last = runs(run, node)[-1]
    return last[output] if output < len(last) else []


def by_host(rows):
    hosts = [row["host"] for row in rows]
    if sorted(hosts) != sorted(UP + [DOWN]):
        fail(f"expected one item per host {UP + [DOWN]}, got {hosts}")
    return {row["host"]: row for row in rows}


def expect_down(row):
    if row["ok"] is not False or not row.get("error"):
        fail(f"{DOWN} (down) should be a failed host with an error, got {row}")


def run_and_wait(run, lab):
    rows = by_host(items(run, "One item per host"))
    for host in UP:
        row = rows[host]
        if row["ok"] is not True or row["exit_code"] != 0 or not isinstance(row["used_percent"], int):
            fail(f"{host} should have answered df, got {row}")
    expect_down(rows[DOWN])
    if rows[DOWN]["error_kind"] != "connect":
        fail(f"{DOWN}: expected error kind `connect`, got {rows[DOWN]}")
    failed = [row["host"] for row in items(run, "Failed?", 0)]
    answered = [row["host"] for row in items(run, "Failed?", 1)]
    if failed != [DOWN] or sorted(answered) != UP:
        fail(f"the IF node should split {DOWN} from the others: failed {failed}, answered {answered}")


def long_job_poll(run, lab):
    started = items(run, "Start the job")[0]
    if started.get("state") not in ("queued", "running") or not started.get("job_id"):
        fail(f"POST /v1/runs without wait should answer with a running job, got {started}")
    polls = runs(run, "Get the job")
    if len(polls) < 2:
        fail(f"the job (8 s) should have been polled more than once, was polled {len(polls)} time(s)")
    rows = by_host(items(run, "One item per host"))
    for host in UP:
        row = rows[host]
        if row["job_id"] != started["job_id"] or row["state"] != "failed":
            fail(f"{host}: expected job {started['job_id']} in state failed (one host is down), got {row}")
        if row["ok"] is not True or " /" not in row["stdout"]:
            fail(f"{host} should have run the job, got {row}")
    expect_down(rows[DOWN])


def upload_binary(run, lab):
    lines = ["n,square,label"] + [f"{n},{n * n},row-{n % 97}" for n in range(20000)]
    content = ("\n".join(lines) + "\n").encode()
    digest = hashlib.sha256(content).hexdigest()
    rows = by_host(items(run, "One item per host"))
    for host in UP:
        row = rows[host]
        if row["ok"] is not True or row["status"] != "written" or row["sha256"] != digest:
            fail(f"{host}: expected the file written with SHA-256 {digest}, got {row}")
        # The lab's hosts share this machine's file system: each wrote here.
        path = os.path.join(lab, "reports", "report.csv")
        try:
            with open(path, "rb") as f:
                on_host = f.read()
        except OSError as e:
            fail(f"{host}: {e}")
        if on_host != content:
            fail(f"{host}: {path} does not hold the bytes n8n sent ({len(on_host)} bytes, expected {len(content)})")
        mode = os.stat(path).st_mode & 0o777
        if mode != 0o640:
            fail(f"{host}: {path} has mode {mode:o}, expected 640")
    expect_down(rows[DOWN])


CHECKS = {
    "run-and-wait": run_and_wait,
    "long-job-poll": long_job_poll,
    "upload-binary": upload_binary,
}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in CHECKS:
        sys.exit(f"usage: check.py {{{','.join(CHECKS)}}} N8N_OUTPUT LAB_DIR")
    WORKFLOW = sys.argv[1]
    run = execution(sys.argv[2])
    if run.get("status") != "success":
        error = run["data"]["resultData"].get("error") or {}
        fail(f"execution {run.get('status')}: {error.get('message')} {error.get('description') or ''}")
    CHECKS[WORKFLOW](run, sys.argv[3])
    print(f"n8n workflow {WORKFLOW}: ok")
