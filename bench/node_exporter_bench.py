"""Cost of the node_exporter role per run, against the floor of a one-task play on the same 2-host lab.

Creates two lab hosts (one package mode, one container mode under podman), then times in one run:
  floor     a play with one ping task (inventory, connection set-up, one round trip per host)
  converge  the first run of playbooks/node_exporter.yml
  re-run    the same playbook on the converged hosts (must report no change)
and prints the seconds and the ratios to the floor. Goal: re-run within 2.5x the floor.

With --prometheus-community GITDIR (a git clone of prometheus-community/ansible) the same run also sets our role
beside prometheus.prometheus's node_exporter role, each alone on a lab host of the same kind: ours in package mode,
theirs installing its binary (from 127.0.0.1, prometheus_community.py). It times each one's first converge and
re-runs, alternating, each against a one-task play on its host, checks both hosts serve metrics, and prints
ours / theirs for the re-run. Goal: at most 0.5.
Run from a machine set up by scripts/setup.sh:  scripts/bench.sh node_exporter [--prometheus-community GITDIR]
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lab_transport
import prometheus_community

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = """\
all:
  vars:
{connection}    ansible_python_interpreter: /usr/bin/python3
  hosts:
    bench-ne-package: {lab_kind: systemd, node_exporter_mode: package}
    bench-ne-podman:
      lab_kind: engine
      node_exporter_mode: container
      node_exporter_container_image: localhost/fleetwatch-test/node-exporter
      node_exporter_container_tag: debian12
      node_exporter_container_pull: false
{compare}  children:
    lab_container_engine:
      hosts:
        bench-ne-podman: {lab_preload_images: [localhost/fleetwatch-test/node-exporter:debian12]}
"""
OURS = "bench-ne-package,bench-ne-podman"
# The comparison's two hosts: the variables of prometheus.prometheus's role go to its host only.
COMPARE_HOSTS = """\
    bench-cmp-ours: {lab_kind: systemd, node_exporter_mode: package}
    bench-cmp-theirs:
      lab_kind: systemd
      node_exporter_version: "%(version)s"
      node_exporter_binary_url: "%(url)s/%(tarball)s"
      node_exporter_checksums_url: "%(url)s/sha256sums.txt"
      node_exporter_local_cache_path: "%(cache)s"
"""
FLOOR_PLAY = """\
- name: Floor
  hosts: all
  gather_facts: false
  tasks:
    - name: One round trip
      ansible.builtin.ping:
"""
# As prometheus.prometheus's README runs the role (facts gathered: the role reads them).
THEIRS_PLAY = """\
- name: node_exporter by prometheus.prometheus
  hosts: bench-cmp-theirs
  roles:
    - prometheus.prometheus.node_exporter
"""


def timed(cmd, env):
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), proc.stdout[-4000:], proc.stderr[-4000:]))
    return elapsed, proc.stdout


def rerun(cmd, env, hosts):
    """Time a run that must change nothing on any of its hosts (the play recap has one line per host)."""
    seconds, output = timed(cmd, env)
    if output.count(" changed=0 ") != hosts:
        sys.exit("the re-run changed something:\n" + output[-3000:])
    return seconds


def serves_metrics(inventory, hosts, env):
    """Fail unless node_exporter answers on each host (asked on the host itself, with the host's python3)."""
    cmd = ["ansible", "-i", str(inventory), hosts, "-m", "ansible.builtin.uri",
           "-a", "url=http://127.0.0.1:9100/metrics return_content=true"]
    output = timed(cmd, env)[1]
    if output.count("node_exporter_build_info{") != len(hosts.split(",")):
        sys.exit("node_exporter does not serve metrics on every host of %s:\n%s" % (hosts, output[-3000:]))


def compare(args, tmp, inventory, env, floor_play):
    """Our package mode and prometheus.prometheus's binary install, each alone on a host: converge, then re-runs."""
    ours = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "node_exporter.yml"),
            "--limit", "bench-cmp-ours"]
    theirs_play = Path(tmp, "theirs.yml")
    theirs_play.write_text(THEIRS_PLAY)
    theirs = ["ansible-playbook", "-i", str(inventory), str(theirs_play)]
    result = {"ours converge": timed(ours, env)[0], "theirs converge": timed(theirs, env)[0]}
    serves_metrics(inventory, "bench-cmp-ours,bench-cmp-theirs", env)
    runs = {"ours floor": [], "ours re-run": [], "theirs floor": [], "theirs re-run": []}
    for run in range(args.repeat):
        # Alternating, so that the machine's load reaches both roles alike.
        for who, host, play in (("ours", "bench-cmp-ours", ours), ("theirs", "bench-cmp-theirs", theirs)):
            runs[who + " floor"].append(timed(["ansible-playbook", "-i", str(inventory), str(floor_play),
                                               "--limit", host], env)[0])
            runs[who + " re-run"].append(rerun(play, env, 1))
    result.update({name: statistics.median(values) for name, values in runs.items()})
    return result


def run_lab(args, tmp, inventory, env):
    floor_play = Path(tmp, "floor.yml")
    floor_play.write_text(FLOOR_PLAY)
    fleet = [sys.executable, str(ROOT / "lab" / "fleet.py")]
    subprocess.run(fleet + ["down", str(inventory)], check=True)
    subprocess.run(fleet + ["up", str(inventory), "--lab-name", "bench"], check=True, stdout=subprocess.DEVNULL)
    try:
        timed(["ansible-playbook", "-i", str(inventory), str(ROOT / "lab" / "prepare.yml")], env)
        playbook = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "node_exporter.yml"),
                    "--limit", OURS]
        floor = [timed(["ansible-playbook", "-i", str(inventory), str(floor_play), "--limit", OURS], env)[0]
                 for run in range(args.repeat)]
        result = {"floor": statistics.median(floor), "converge": timed(playbook, env)[0]}
        result["re-run"] = statistics.median([rerun(playbook, env, 2) for run in range(args.repeat)])
        if args.prometheus_community:
            result.update(compare(args, tmp, inventory, env, floor_play))
        return result
    finally:
        if not args.keep:
            subprocess.run(fleet + ["down", str(inventory)], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of the floor and of the re-run (median)")
    parser.add_argument("--keep", action="store_true", help="leave the lab hosts running")
    parser.add_argument("--prometheus-community", metavar="GITDIR", type=Path,
                        help="a git clone of prometheus-community/ansible: compare with its node_exporter role")
    lab_transport.add_argument(parser)
    args = parser.parse_args()
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as served:
        inventory = Path(tmp, "hosts.yml")
        connection = lab_transport.inventory_lines(args.transport, Path(tmp, "ssh"))
        compare_hosts, beside = "", ""
        with contextlib.ExitStack() as stack:
            if args.prometheus_community:
                version = prometheus_community.install_collection(args.prometheus_community, Path(tmp, "collections"))
                env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
                    [str(Path(tmp, "collections"))] + [p for p in [os.environ.get("ANSIBLE_COLLECTIONS_PATH")] if p])
                binary, ne_version, debian_version = prometheus_community.debian_node_exporter(tmp)
                tarball = prometheus_community.release_files(served, binary, ne_version)
                url = stack.enter_context(prometheus_community.serve(served))
                beside = ("prometheus.prometheus %s's node_exporter role (binary install of Debian's node_exporter %s, "
                          "package %s)" % (version, ne_version, debian_version))
                compare_hosts = COMPARE_HOSTS % {"version": ne_version, "url": url, "tarball": tarball,
                                                 "cache": Path(tmp, "cache")}
            inventory.write_text(INVENTORY.replace("{connection}", connection).replace("{compare}", compare_hosts))
            result = run_lab(args, tmp, inventory, env)
    print("node_exporter role on 2 hosts, over %s (median of %d)" % (args.transport, args.repeat))
    print("  floor (one-task play)  %6.2f s" % result["floor"])
    print("  converge (first run)   %6.2f s  %5.2fx floor" % (result["converge"], result["converge"] / result["floor"]))
    print("  re-run (no change)     %6.2f s  %5.2fx floor  (goal <= 2.5x)"
          % (result["re-run"], result["re-run"] / result["floor"]))
    if beside:
        print("beside %s, one host each:" % beside)
        for who in ("ours", "theirs"):
            floor_s = result[who + " floor"]
            print("  %-6s floor %6.2f s  converge %6.2f s (%5.2fx)  re-run %6.2f s (%5.2fx)"
                  % (who, floor_s, result[who + " converge"], result[who + " converge"] / floor_s,
                     result[who + " re-run"], result[who + " re-run"] / floor_s))
        print("  re-run ours / theirs   %5.2f  (goal <= 0.5)" % (result["ours re-run"] / result["theirs re-run"]))
    print("load average: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
