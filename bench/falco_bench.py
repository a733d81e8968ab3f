"""Cost of the falco role per run, against the floor of a one-task play on the same 2-host lab.

Creates two privileged lab hosts running the REAL Falco 0.44.1 (../shared/packages, the modern eBPF probe), one
installed from the package file on the controller, one with the incubating and sandbox rulesets as well, both with
the scenario's rules tuning, then times in one run:
  floor     a play with one ping task (inventory, connection set-up, one round trip per host)
  converge  the first run of playbooks/falco.yml (install, configure, start, confirm Falco runs)
  re-run    the same playbook on the converged hosts (must report no change)
and prints the seconds and the ratios to the floor. Goal, as for node_exporter: re-run within 2.5x the floor.
Run from a machine set up by scripts/setup.sh:  scripts/bench.sh falco
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lab_transport

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PACKAGE = SHARED / "packages" / "falco_0.44.1_amd64.deb"
RULES = SHARED / "upstream" / "falco"
INVENTORY = """\
all:
  vars:
{connection}    ansible_python_interpreter: /usr/bin/python3
    lab_falco_bpf_stub: true  # lab/falco-probe-stub.yml (docs/testing.md): no change where the kernel takes the probe
    falco_version: "0.44.1"
    falco_install_method: package
    falco_package_src: "{package}"
    falco_driver: modern_ebpf
    falco_file_output_path: /var/log/falco/events.json
    falco_local_rules:
      - list: fleetwatch_bench_tools
        items: [bench-probe]
      - rule: Fleetwatch bench probe
        desc: A bench tool ran
        condition: evt.type = execve and proc.name in (fleetwatch_bench_tools)
        output: bench probe ran (cmdline=%proc.cmdline)
        priority: NOTICE
        tags: [fleetwatch]
    falco_rule_exceptions:
      - rule: Read sensitive file untrusted
        name: backup_agent_reads_shadow
        fields: [proc.name, fd.name]
        comps: ["=", "="]
        values: [[backup-agent, /etc/shadow]]
    falco_disabled_rules:
      - rule: Clear Log Activities
  children:
    falco:
      hosts:
        bench-falco-stable:
          lab_kind: systemd
        bench-falco-rulesets:
          lab_kind: systemd
          falco_metrics_listen_address: 127.0.0.1
          falco_rulesets:
            - name: incubating
              src: "{rules}/falcosecurity-rules_falco-rules-5.1.0_falco-incubating_rules.yaml"
            - name: sandbox
              src: "{rules}/falcosecurity-rules_falco-rules-5.1.0_falco-sandbox_rules.yaml"
"""
FLOOR_PLAY = """\
- name: Floor
  hosts: all
  gather_facts: false
  tasks:
    - name: One round trip
      ansible.builtin.ping:
"""


def timed(cmd, env):
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), proc.stdout[-4000:], proc.stderr[-4000:]))
    return elapsed, proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of the floor and of the re-run (median)")
    parser.add_argument("--keep", action="store_true", help="leave the lab hosts running")
    lab_transport.add_argument(parser)
    args = parser.parse_args()
    for needed in (PACKAGE, RULES):
        if not needed.exists():
            sys.exit("not found: %s (the real Falco package and rulesets next to the project, ../shared)" % needed)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp, "hosts.yml")
        inventory.write_text(INVENTORY.replace("{package}", str(PACKAGE)).replace("{rules}", str(RULES)).replace(
            "{connection}", lab_transport.inventory_lines(args.transport, Path(tmp, "ssh"))))
        floor_play = Path(tmp, "floor.yml")
        floor_play.write_text(FLOOR_PLAY)
        fleet = [sys.executable, str(ROOT / "lab" / "fleet.py")]
        subprocess.run(fleet + ["down", str(inventory)], check=True)
        subprocess.run(fleet + ["up", str(inventory), "--lab-name", "bench", "--privileged-group", "falco"], check=True,
                       stdout=subprocess.DEVNULL)
        try:
            timed(["ansible-playbook", "-i", str(inventory), str(ROOT / "lab" / "prepare.yml")], env)
            playbook = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "falco.yml")]
            floor = [timed(["ansible-playbook", "-i", str(inventory), str(floor_play)], env)[0] for run in range(args.repeat)]
            converge = timed(playbook, env)[0]
            reruns = []
            for run in range(args.repeat):
                seconds, output = timed(playbook, env)
                if output.count(" changed=0 ") != 2:
                    sys.exit("the re-run changed something:\n" + output[-3000:])
                reruns.append(seconds)
        finally:
            if not args.keep:
                subprocess.run(fleet + ["down", str(inventory)], check=False)
    floor_s, rerun_s = statistics.median(floor), statistics.median(reruns)
    print("falco role on 2 hosts over %s, the real Falco 0.44.1 package, modern eBPF (median of %d re-runs, one converge)"
          % (args.transport, args.repeat))
    print("  floor (one-task play)  %6.2f s" % floor_s)
    print("  converge (first run)   %6.2f s  %5.2fx floor" % (converge, converge / floor_s))
    print("  re-run (no change)     %6.2f s  %5.2fx floor  (goal <= 2.5x)" % (rerun_s, rerun_s / floor_s))


if __name__ == "__main__":
    main()
