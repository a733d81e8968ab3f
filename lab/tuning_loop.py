"""The tuning loop on the lab, with the real Falco: noise, triage, an exception, the noise gone.

1. On HOST, a benign job of its own name (nr-<random>, a link to cat) reads /etc/shadow REPEAT times.
2. playbooks/triage.yml on HOST proposes exceptions; the one for that job is taken, as an operator would after
   reviewing the proposal.
3. playbooks/falco.yml applies it on HOST, with the exceptions the inventory already has.
4. The job runs REPEAT times again; another reader of /etc/shadow and another rule (a symlink to /etc/shadow)
   must still alert.
5. playbooks/falco.yml runs again without the extra exception, so the lab is back to its inventory (verify stays
   at zero changes).

Alerts are counted in HOST's own journal and only those carrying HOST's host name and the job's unique name: every
lab Falco sees every container's syscalls (modern eBPF sees the whole machine).

Usage (from scripts/lab.sh tuning-loop, which sets up the venv and the collection):
    lab/tuning_loop.py --inventory inventories/lab/hosts.yml --host lab-agent-1 [--repeat 12]
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULE = "Read sensitive file untrusted"
# A stable rule the exception must leave alone.
OTHER_RULE = "Create Symlink Over Sensitive Files"
FALCO_UNITS = ("falco-modern-bpf", "falco-kmod", "falco-bpf", "falco-custom", "falco")


def on_host(host, script):
    """Run a shell script inside the lab container and return its output."""
    return subprocess.run(["podman", "exec", host, "sh", "-c", script], check=True, capture_output=True,
                          text=True).stdout


def alerts_since(host, since):
    """HOST's own Falco alerts (JSON) since the given epoch second."""
    units = " ".join("-u %s" % unit for unit in FALCO_UNITS)
    lines = on_host(host, "journalctl %s -o cat --no-pager --since @%d" % (units, since)).splitlines()
    for line in lines:
        if line.startswith("{"):
            try:
                alert = json.loads(line)
            except ValueError:
                continue
            if alert.get("hostname") == host:
                yield alert


def count(host, since, rule, program):
    return sum(1 for alert in alerts_since(host, since)
               if alert.get("rule") == rule and alert.get("output_fields", {}).get("proc.name") == program)


def sentinel_alert(host, since, rule, sentinel):
    return [alert for alert in alerts_since(host, since) if alert.get("rule") == rule and sentinel in alert.get("output", "")]


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    return predicate()


def playbook(inventory, name, *args):
    command = ["ansible-playbook", "-i", inventory, str(ROOT / "playbooks" / name), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(command), result.stdout[-4000:]))
    return result.stdout


def inventory_exceptions(inventory, host):
    result = subprocess.run(["ansible-inventory", "-i", inventory, "--host", host], check=True, capture_output=True,
                            text=True)
    return json.loads(result.stdout).get("falco_rule_exceptions", [])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--repeat", type=int, default=12)
    args = parser.parse_args(argv)
    host, repeat = args.host, args.repeat
    program = "nr-" + uuid.uuid4().hex[:8]
    job = "for i in $(seq %d); do %s /etc/shadow > /dev/null; done" % (repeat, program)

    on_host(host, "ln -sf /usr/bin/cat /usr/local/bin/%s" % program)
    try:
        start = int(on_host(host, "date +%s"))
        on_host(host, job)
        before = wait_for(lambda: count(host, start, RULE, program) >= repeat and count(host, start, RULE, program))
        print("1. %s: the job %s read /etc/shadow %d times: %d alerts '%s'" % (host, program, repeat, before, RULE))
        if before < repeat:
            return "expected %d alerts before the exception, found %d" % (repeat, before)

        with tempfile.TemporaryDirectory() as report:
            playbook(args.inventory, "triage.yml", "-e", json.dumps({
                "fleetwatch_triage_hosts": host, "fleetwatch_triage_report_dir": report,
                "fleetwatch_triage_since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)), "fleetwatch_triage_suggest_min_span": 0}))
            proposed = yaml.safe_load((Path(report) / "suggested-exceptions.yml").read_text())
        proposed = proposed.get("falco_rule_exceptions") or []
        ours = [item for item in proposed if item["rule"] == RULE and any(program in row for row in item["values"])]
        print("2. triage.yml proposed %d exception(s) on %s; %d for the job: %s" % (
            len(proposed), host, len(ours), json.dumps(ours)))
        if len(ours) != 1:
            return "expected exactly one proposed exception for %s" % program

        exceptions = inventory_exceptions(args.inventory, host) + ours
        playbook(args.inventory, "falco.yml", "--limit", host, "-e", json.dumps({"falco_rule_exceptions": exceptions}))
        applied = int(on_host(host, "date +%s"))
        print("3. falco.yml applied it on %s (with the inventory's %d exception(s))" % (host, len(exceptions) - 1))

        on_host(host, job)
        sentinel = "tuning-sentinel-" + uuid.uuid4().hex[:8]
        on_host(host, "cat /etc/shadow /tmp/%s > /dev/null 2>&1 || true" % sentinel)
        on_host(host, "ln -sf /etc/shadow /tmp/%s && rm -f /tmp/%s" % (sentinel, sentinel))
        same_rule = wait_for(lambda: sentinel_alert(host, applied, RULE, sentinel))
        other_rule = wait_for(lambda: sentinel_alert(host, applied, OTHER_RULE, sentinel))
        time.sleep(3)
        after = count(host, applied, RULE, program)
        print("4. the job ran %d times again: %d alerts after the exception (%d before); another reader of "
              "/etc/shadow still alerts: %s; '%s' still fires: %s" % (
                  repeat, after, before, "yes" if same_rule else "NO", OTHER_RULE, "yes" if other_rule else "NO"))
        if after or not same_rule or not other_rule:
            return "the exception did not silence exactly the job"
        return 0
    finally:
        playbook(args.inventory, "falco.yml", "--limit", host)
        on_host(host, "rm -f /usr/local/bin/%s" % program)
        print("5. %s is back to the inventory's exceptions" % host)


if __name__ == "__main__":
    sys.exit(main())
