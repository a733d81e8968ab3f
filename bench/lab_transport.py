"""How a bench reaches its lab hosts: over SSH, as users reach their fleet (the default), or through podman.

Over SSH the hosts get the lab image's user `ansible` with sudo, pipelining and ControlPersist, and a key of the
bench's own in KEY_DIR; lab/prepare.yml (which each bench runs before timing anything) hands the key to the hosts
(lab/ssh.yml).
"""

import json

TRANSPORTS = ("ssh", "podman")


def add_argument(parser):
    parser.add_argument("--transport", choices=TRANSPORTS, default="ssh",
                        help="how Ansible reaches the lab hosts (default ssh, as users reach theirs; podman: podman "
                             "exec as root)")


def connection_vars(transport, key_dir):
    """The connection variables of a bench inventory, as a dict."""
    if transport == "podman":
        return {"ansible_connection": "containers.podman.podman"}
    return {"ansible_connection": "ssh", "ansible_user": "ansible", "ansible_become": True, "ansible_pipelining": True,
            "lab_ssh_dir": str(key_dir), "ansible_ssh_common_args": "-F %s/config" % key_dir}


def inventory_lines(transport, key_dir, indent=4):
    """connection_vars as YAML lines (JSON values are YAML) at the given indent, for an inventory's `vars:`."""
    return "".join("%s%s: %s\n" % (" " * indent, name, json.dumps(value))
                   for name, value in connection_vars(transport, key_dir).items())
