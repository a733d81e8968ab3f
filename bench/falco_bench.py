"""Cost of the falco role per run, against the floor of a one-task play on the same 2-host lab.

Builds the TEST FIXTURE Falco packages (tests/fixtures/falco-package/build.py, layout from ../shared/upstream/falco),
creates two lab hosts (0.31.1, the full falco.yaml generation, and 0.44.1, the drop-in generation, both installed
from the package files with the scenario's rules tuning), then times in one run:
  floor     a play with one ping task (inventory, connection set-up, one round trip per host)
  converge  the first run of playbooks/falco.yml
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

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT.parent / "shared" / "upstream" / "falco"
INVENTORY = """\
all:
  vars:
    ansible_connection: containers.podman.podman
    ansible_python_interpreter: /usr/bin/python3
    falco_install_method: package
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
        bench-falco-legacy:
          lab_kind: systemd
          falco_version: "0.31.1"
          falco_package_src: "{fixture}/falco-0.31.1-x86_64.deb"
          falco_driver: nodriver
          falco_grpc_enabled: true
        bench-falco-current:
          lab_kind: systemd
          falco_version: "0.44.1"
          falco_package_src: "{fixture}/falco-0.44.1-x86_64.deb"
          falco_metrics_listen_address: 127.0.0.1
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
    args = parser.parse_args()
    if not UPSTREAM.is_dir():
        sys.exit("upstream Falco reference files not found at %s: the fixture packages are built from them" % UPSTREAM)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    with tempfile.TemporaryDirectory() as tmp:
        fixture = Path(tmp, "falco-fixture")
        subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "falco-package" / "build.py"), str(fixture),
                        "--versions", "0.31.1", "0.44.1"], check=True, stdout=subprocess.DEVNULL)
        inventory = Path(tmp, "hosts.yml")
        inventory.write_text(INVENTORY.replace("{fixture}", str(fixture)))
        floor_play = Path(tmp, "floor.yml")
        floor_play.write_text(FLOOR_PLAY)
        fleet = [sys.executable, str(ROOT / "lab" / "fleet.py")]
        subprocess.run(fleet + ["down", str(inventory)], check=True)
        subprocess.run(fleet + ["up", str(inventory), "--lab-name", "bench"], check=True, stdout=subprocess.DEVNULL)
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
    print("falco role on 2 hosts, 0.31.1 and 0.44.1 TEST FIXTURE packages (median of %d)" % args.repeat)
    print("  floor (one-task play)  %6.2f s" % floor_s)
    print("  converge (first run)   %6.2f s  %5.2fx floor" % (converge, converge / floor_s))
    print("  re-run (no change)     %6.2f s  %5.2fx floor  (goal <= 2.5x)" % (rerun_s, rerun_s / floor_s))


if __name__ == "__main__":
    main()
