"""Scrape-target generation at fleet scale, through the real playbook, against a floor play on the same inventory.

One lab container plays the monitoring host (Prometheus from Debian's package). For each fleet size it writes an
inventory of that many agent hosts (mixed clouds, Falco generations and exporter settings; never contacted: only
the monitoring host is), then times in the same run:
  floor     a one-task play on the monitoring host over that inventory that reads every host's variables once
            (inventory parsing, hostvars, one round trip)
  targets   playbooks/monitoring.yml --tags prometheus_configure on the monitoring host: preflight, target
            generation for every inventory host, the file_sd files and the configuration written and checked.
            Each size adds hosts to the previous one's inventory, so this run writes the changed file_sd files; the
            rest of the configuration is already in place (the role inspects the host once and skips it).
  re-run    the same again on the now converged host (nothing to write)
and checks that the written file_sd files hold exactly one target per expected host. Prints seconds per 1,000
hosts and the ratio to the floor at each size.
Goal: at 5,000 hosts the targets run within 1.5x the floor, and the per-host cost at 5,000 no more than at 1,000.
Run from a machine set up by scripts/setup.sh:  scripts/bench.sh targets   (sizes: --sizes 100,1000,5000)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import lab_transport

ROOT = Path(__file__).resolve().parent.parent
MONITOR = "bench-targets-monitor"
CLOUDS = ["aws", "gcp", "azure", "onprem", "hetzner"]
FLOOR_PLAY = """\
- name: Floor
  hosts: monitoring
  gather_facts: false
  tasks:
    - name: Read one variable of every inventory host on the monitoring host
      ansible.builtin.ping:
        data: "{{ groups['all'] | map('extract', hostvars, 'inventory_hostname') | list | length }}"
"""
# Targets the bench expects per job, so a fast but wrong run can't pass.
JOB_FILES = {"node-exporter": "node-exporter.json", "falco": "falco.json", "falco-exporter": "falco-exporter.json"}


def fleet_host(index):
    """Inventory variables of agent host number index: a realistic mix of the choices users make."""
    hv = {"ansible_host": "192.0.2.%d" % (index % 250 + 1), "cloud": CLOUDS[index % len(CLOUDS)],
          "site": "site-%d" % (index % 17)}
    if index % 10 == 0:  # the tutorial's generation on the legacy path
        hv.update(falco_version="0.31.1", falco_grpc_enabled=True)
    elif index % 10 == 1:
        hv.update(falco_version="0.43.1")
    if index % 7 == 0:
        hv["node_exporter_web_listen_address"] = "0.0.0.0:9101"
    return hv


def expected(hosts):
    jobs = {"node-exporter": set(hosts) | {MONITOR}, "falco": set(), "falco-exporter": set()}
    for name, hv in hosts.items():
        version = hv.get("falco_version", "0.44.1")
        if version != "0.31.1":
            jobs["falco"].add(name)
        if hv.get("falco_grpc_enabled"):
            jobs["falco-exporter"].add(name)
    return jobs


def write_inventory(path, size, connection):
    hosts = {"fleet-%05d" % i: fleet_host(i) for i in range(size)}
    inventory = {"all": {
        "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
        "children": {
            "monitoring": {"hosts": {MONITOR: dict(connection, cloud="onprem", lab_kind="systemd")},
                           "vars": {"prometheus_node_exporter_groups": ["monitoring", "falco"],
                                    "prometheus_target_label_vars": ["cloud", "site"],
                                    "prometheus_target_address_var": "ansible_host",
                                    "prometheus_alertmanagers": []}},
            "falco": {"hosts": hosts}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return hosts


def run(cmd, env, profile=None):
    """Run cmd; return its wall time. With profile (a label), print the play recap and the profile_tasks table."""
    if profile:
        env = dict(env, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="15")
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), proc.stdout[-4000:], proc.stderr[-4000:]))
    if profile:
        tail = proc.stdout[proc.stdout.rfind("PLAY RECAP"):]
        print("--- %s (%.2f s)\n%s" % (profile, elapsed, tail.strip()), flush=True)
    return elapsed


def written_targets(job_file):
    out = subprocess.run(["podman", "exec", MONITOR, "cat", "/etc/prometheus/targets/" + job_file],
                         capture_output=True, text=True, check=True).stdout
    return {group["labels"]["host"] for group in json.loads(out)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="fleet sizes, comma-separated")
    parser.add_argument("--keep", action="store_true", help="leave the monitoring container running")
    parser.add_argument("--profile", action="store_true",
                        help="print the recap and the slowest tasks of each timed run (profile_tasks)")
    lab_transport.add_argument(parser)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    fleet = [sys.executable, str(ROOT / "lab" / "fleet.py")]
    playbook = [str(ROOT / "playbooks" / "monitoring.yml"), "--limit", MONITOR, "--tags", "prometheus_configure",
                "-e", "fleetwatch_alertmanager_enabled=false", "-e", "fleetwatch_grafana_enabled=false"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        monitor_only = Path(tmp, "monitor.yml")
        connection = lab_transport.connection_vars(args.transport, Path(tmp, "ssh"))
        write_inventory(monitor_only, 0, connection)
        floor_play = Path(tmp, "floor.yml")
        floor_play.write_text(FLOOR_PLAY)
        subprocess.run(fleet + ["down", str(monitor_only)], check=True)
        subprocess.run(fleet + ["up", str(monitor_only), "--lab-name", "bench"], check=True, stdout=subprocess.DEVNULL)
        try:
            run(["ansible-playbook", "-i", str(monitor_only), str(ROOT / "lab" / "prepare.yml")], env)
            # Install and start Prometheus once; the timed runs only configure.
            run(["ansible-playbook", "-i", str(monitor_only)] + playbook[:3] + playbook[5:], env)
            for size in sizes:
                inventory = Path(tmp, "fleet-%d.yml" % size)
                hosts = write_inventory(inventory, size, connection)
                label = "%d hosts, %%s" % size if args.profile else None
                floor = run(["ansible-playbook", "-i", str(inventory), str(floor_play)], env,
                            label and label % "floor")
                targets = run(["ansible-playbook", "-i", str(inventory)] + playbook, env, label and label % "targets")
                rerun = run(["ansible-playbook", "-i", str(inventory)] + playbook, env, label and label % "re-run")
                for job, want in expected(hosts).items():
                    got = written_targets(JOB_FILES[job])
                    if got != want:
                        sys.exit("%d hosts: %s targets differ: %d missing, %d unexpected"
                                 % (size, job, len(want - got), len(got - want)))
                results.append((size, floor, targets, rerun))
                print("%5d hosts: floor %6.2f s, targets %6.2f s, re-run %6.2f s" % (size, floor, targets, rerun),
                      flush=True)
        finally:
            if not args.keep:
                subprocess.run(fleet + ["down", str(monitor_only)], check=False)
    print("\nTarget generation through playbooks/monitoring.yml (--tags prometheus_configure), over %s" % args.transport)
    print("  hosts   floor s   targets s   floor s/1k   targets s/1k   ratio   re-run s   re-run ratio")
    for size, floor, targets, rerun in results:
        row = (size, floor, targets, floor / size * 1000, targets / size * 1000, targets / floor, rerun, rerun / floor)
        print("  %5d  %8.2f  %10.2f  %11.2f  %13.2f  %5.2fx  %9.2f  %11.2fx" % row)
    print("  load average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    print("  goal: ratio <= 1.5x at 5000 hosts; targets s/1k at 5000 <= at 1000")


if __name__ == "__main__":
    main()
