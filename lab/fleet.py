"""Create and remove lab hosts: podman containers with systemd as PID 1, described by an Ansible inventory.

Each inventory host names its image kind in `lab_kind` (systemd or engine). Used by scripts/lab.sh and bench/.
  fleet.py up INVENTORY     create the missing hosts, print NAME ADDRESS per host
  fleet.py list INVENTORY   print NAME ADDRESS for the hosts that exist
  fleet.py down INVENTORY   remove the hosts and every container they started
"""

import argparse
import json
import subprocess
import sys

LAB_LABEL = "fleetwatch.lab"
KINDS = {
    # A plain systemd host.
    "systemd": {"image": "localhost/fleetwatch-lab/debian12-systemd:latest", "flags": []},
    # A host that runs containers itself (nested podman); the flags are the ones lab/README.md explains.
    "engine": {
        "image": "localhost/fleetwatch-lab/debian12-podman:latest",
        "flags": [
            "--cap-add=SYS_ADMIN,NET_ADMIN,MKNOD",
            "--security-opt=unmask=/proc/sys",
            "--device-cgroup-rule=c 5:1 rwm",
            "--tmpfs=/var/lib/containers:rw,size=4g,mode=0700",
        ],
    },
}


def podman(*args, check=True):
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


def inventory_hosts(inventory):
    """Map each inventory host to its lab_kind (hosts without one are not lab containers)."""
    data = json.loads(subprocess.run(["ansible-inventory", "-i", inventory, "--list"], capture_output=True,
                                     text=True, check=True).stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    return {name: hv["lab_kind"] for name, hv in hostvars.items() if "lab_kind" in hv}


def address(name):
    out = podman("inspect", name, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}").stdout
    return out.split()[0] if out.split() else ""


def up(hosts, lab_name):
    for name, kind in sorted(hosts.items()):
        if kind not in KINDS:
            sys.exit("host %s: lab_kind must be one of %s, not %r" % (name, ", ".join(KINDS), kind))
        if podman("container", "exists", name, check=False).returncode == 0:
            podman("start", name)
            continue
        podman("run", "--detach", "--name", name, "--hostname", name, "--label", "%s=%s" % (LAB_LABEL, lab_name),
               "--systemd=always", *KINDS[kind]["flags"], KINDS[kind]["image"], "/sbin/init")
    return {name: address(name) for name in sorted(hosts)}


def down(hosts):
    for name in sorted(hosts):
        podman("rm", "--force", "--time", "2", "--volumes", name, check=False)


def main():
    parser = argparse.ArgumentParser(description="lab hosts from an inventory")
    parser.add_argument("action", choices=["up", "list", "down"])
    parser.add_argument("inventory")
    parser.add_argument("--lab-name", default="lab")
    args = parser.parse_args()
    hosts = inventory_hosts(args.inventory)
    if not hosts:
        sys.exit("no host in %s has lab_kind set" % args.inventory)
    if args.action == "up":
        for name, ip in up(hosts, args.lab_name).items():
            print(name, ip)
    elif args.action == "list":
        for name in sorted(hosts):
            if podman("container", "exists", name, check=False).returncode == 0:
                print(name, address(name))
    else:
        down(hosts)


if __name__ == "__main__":
    main()
