"""Helpers for Molecule verify tests: run the scenario's playbooks again the way a user would, and read the recap."""

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                        r"\s+failed=(?P<failed>\d+)", re.M)


def scenario_dir():
    return Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])


def run_playbook(playbook="converge.yml", *args):
    """Run a playbook of the scenario against the Molecule inventory; return (exit code, output, recap)."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    cmd = ["ansible-playbook", "-i", inventory, str(scenario_dir() / playbook), *args]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    output = proc.stdout + proc.stderr
    recap = {m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
             for m in RECAP_LINE.finditer(output)}
    return proc.returncode, output, recap


def wait_for(check, timeout=120, interval=2):
    """Call check() until it returns something truthy; return it, or the last value after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def curl_json(host, url, *args):
    """GET url from inside a lab host (a testinfra host) with curl; return the decoded JSON."""
    command = " ".join(shlex.quote(a) for a in ["curl", "-sf", "--max-time", "20", *args, url])
    return json.loads(host.check_output(command))


def query(host, expr, at=None):
    """Instant query on the real Prometheus of a lab host; fails the test on an API or PromQL error."""
    args = ["-G", "--data-urlencode", "query=" + expr] + (["--data-urlencode", "time=%s" % at] if at else [])
    reply = curl_json(host, "http://localhost:9090/api/v1/query", *args)
    assert reply["status"] == "success", (expr, reply)
    return reply["data"]["result"]
