"""Cost of the node_exporter role per run, against the floor of a one-task play on the same 2-host lab.

Creates two lab hosts (one package mode, one container mode under podman), then times in one run:
  floor     a play with one ping task (inventory, connection set-up, one round trip per host)
  converge  the first run of playbooks/node_exporter.yml
  re-run    the same playbook on the converged hosts (must report no change)
and prints the seconds and the ratios to the floor. Goal: re-run within 2.5x the floor.
Run from a machine set up by scripts/setup.sh:  scripts/bench.sh node_exporter
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
INVENTORY = """\
all:
  vars:
{connection}    ansible_python_interpreter: /usr/bin/python3
    lab_preload_images: [localhost/fleetwatch-test/node-exporter:debian12]
    node_exporter_container_image: localhost/fleetwatch-test/node-exporter
    node_exporter_container_tag: debian12
    node_exporter_container_pull: false
  hosts:
    bench-ne-package: {lab_kind: systemd, node_exporter_mode: package}
    bench-ne-podman: {lab_kind: engine, node_exporter_mode: container}
  children:
    lab_container_engine:
      hosts:
        bench-ne-podman:
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
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp, "hosts.yml")
        inventory.write_text(INVENTORY.replace("{connection}", lab_transport.inventory_lines(args.transport, Path(tmp, "ssh"))))
        floor_play = Path(tmp, "floor.yml")
        floor_play.write_text(FLOOR_PLAY)
        fleet = [sys.executable, str(ROOT / "lab" / "fleet.py")]
        subprocess.run(fleet + ["down", str(inventory)], check=True)
        subprocess.run(fleet + ["up", str(inventory), "--lab-name", "bench"], check=True, stdout=subprocess.DEVNULL)
        try:
            timed(["ansible-playbook", "-i", str(inventory), str(ROOT / "lab" / "prepare.yml")], env)
            playbook = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "node_exporter.yml")]
            floor = [timed(["ansible-playbook", "-i", str(inventory), str(floor_play)], env)[0] for run in range(args.repeat)]
            converge = timed(playbook, env)[0]
            reruns = []
            for run in range(args.repeat):
                seconds, output = timed(playbook, env)
                if " changed=0 " not in output or output.count(" changed=0 ") != 2:
                    sys.exit("the re-run changed something:\n" + output[-3000:])
                reruns.append(seconds)
        finally:
            if not args.keep:
                subprocess.run(fleet + ["down", str(inventory)], check=False)
    floor_s, rerun_s = statistics.median(floor), statistics.median(reruns)
    print("node_exporter role on 2 hosts, over %s (median of %d)" % (args.transport, args.repeat))
    print("  floor (one-task play)  %6.2f s" % floor_s)
    print("  converge (first run)   %6.2f s  %5.2fx floor" % (converge, converge / floor_s))
    print("  re-run (no change)     %6.2f s  %5.2fx floor  (goal <= 2.5x)" % (rerun_s, rerun_s / floor_s))


if __name__ == "__main__":
    main()
