"""Create and remove lab hosts: podman containers with systemd as PID 1, described by an Ansible inventory.

Each inventory host names its image kind in `lab_kind` (systemd or engine). Used by scripts/lab.sh and bench/.
  fleet.py up INVENTORY [--privileged-group falco]
                            create the missing hosts, print NAME ADDRESS per host; the hosts of the group run
                            privileged (Falco loads its eBPF probe into the kernel), and an existing host whose
                            privilege differs is created anew
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


def inventory(path):
    return json.loads(subprocess.run(["ansible-inventory", "-i", path, "--list"], capture_output=True, text=True,
                                     check=True).stdout)


def inventory_hosts(data):
    """Map each inventory host to its lab_kind (hosts without one are not lab containers)."""
    hostvars = data.get("_meta", {}).get("hostvars", {})
    return {name: hv["lab_kind"] for name, hv in hostvars.items() if "lab_kind" in hv}


def group_hosts(data, group):
    """The hosts of a group and of its children."""
    entry = data.get(group, {})
    hosts = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts |= group_hosts(data, child)
    return hosts


def is_privileged(name):
    return podman("inspect", name, "--format", "{{.HostConfig.Privileged}}").stdout.strip() == "true"


def address(name):
    out = podman("inspect", name, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}").stdout
    return out.split()[0] if out.split() else ""


def up(hosts, lab_name, privileged=()):
    for name, kind in sorted(hosts.items()):
        if kind not in KINDS:
            sys.exit("host %s: lab_kind must be one of %s, not %r" % (name, ", ".join(KINDS), kind))
        if podman("container", "exists", name, check=False).returncode == 0:
            if is_privileged(name) == (name in privileged):
                podman("start", name)
                continue
            podman("rm", "--force", "--time", "2", "--volumes", name, check=False)
        # Falco's modern eBPF probe needs CAP_SYS_ADMIN (or CAP_BPF + CAP_PERFMON), CAP_SYS_PTRACE and the kernel's
        # tracing and BPF file systems: a privileged container has them all (docs/testing.md, "The lab").
        flags = ["--privileged"] if name in privileged else []
        podman("run", "--detach", "--name", name, "--hostname", name, "--label", "%s=%s" % (LAB_LABEL, lab_name),
               "--systemd=always", *flags, *KINDS[kind]["flags"], KINDS[kind]["image"], "/sbin/init")
    return {name: address(name) for name in sorted(hosts)}


def down(hosts):
    for name in sorted(hosts):
        podman("rm", "--force", "--time", "2", "--volumes", name, check=False)


def main():
    parser = argparse.ArgumentParser(description="lab hosts from an inventory")
    parser.add_argument("action", choices=["up", "list", "down"])
    parser.add_argument("inventory")
    parser.add_argument("--lab-name", default="lab")
    parser.add_argument("--privileged-group", default="", help="the hosts of this group run privileged")
    args = parser.parse_args()
    data = inventory(args.inventory)
    hosts = inventory_hosts(data)
    if not hosts:
        sys.exit("no host in %s has lab_kind set" % args.inventory)
    if args.action == "up":
        privileged = group_hosts(data, args.privileged_group) if args.privileged_group else set()
        for name, ip in up(hosts, args.lab_name, privileged).items():
            print(name, ip)
    elif args.action == "list":
        for name in sorted(hosts):
            if podman("container", "exists", name, check=False).returncode == 0:
                print(name, address(name))
    else:
        down(hosts)


if __name__ == "__main__":
    main()
