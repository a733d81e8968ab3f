#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Report in one module call what a role compares against: paths, units, packages, commands, sockets, images,
names and the firewall."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_inspect
short_description: Read the state a role compares against, in one round trip, without changing anything
version_added: 0.1.0
description:
  - Answers in one module call the questions a role asks a host before it decides what to change, so a converged
    host costs one round trip, and the role then compares on the controller (filter
    C(fleetwatch.falco_stack.differing_paths)) and touches only what differs.
  - Each option is one kind of question; leave out those the role does not need. A missing command or a service that
    does not run is an answer (not installed, not running), never a failure.
  - Always reports RV(os_family) from C(/etc/os-release), so a role that gathers no facts still knows the distribution.
  - Never changes anything, so it runs the same in check mode and never reports a change.
options:
  paths:
    description:
      - Paths whose type, mode, owner, group and, for files, SHA-1 to report (RV(paths)). A path that does not exist is
        left out of the report.
    type: list
    elements: path
    default: []
  list_dirs:
    description: Directories whose files (hidden ones too, not subdirectories) to list (RV(listings)).
    type: list
    elements: path
    default: []
  units:
    description:
      - systemd units whose unit file state and active state to report (RV(units)), with one C(systemctl is-enabled)
        and one C(systemctl is-active) call for all of them.
    type: list
    elements: str
    default: []
  packages:
    description: Distribution packages whose installed versions to report (RV(packages)), through dpkg-query or rpm.
    type: list
    elements: str
    default: []
  executables:
    description: Commands to look for on the PATH and in the sbin directories (RV(executables)).
    type: list
    elements: str
    default: []
  sockets:
    description: Paths to report as a Unix socket or not (RV(sockets)), for example a container engine's API socket.
    type: list
    elements: path
    default: []
  podman_images:
    description: Image references to report as present in podman's local store or not (RV(podman_images)).
    type: list
    elements: str
    default: []
  unloaded:
    description:
      - Files a service reads, for a role whose handlers touch a stamp after every reload or restart. Reports
        (RV(unloaded)) those of O(unloaded.paths) holding a file newer than O(unloaded.stamp) (every existing one when
        there is no stamp yet), written by a run that stopped before its handlers. A directory counts by the files in
        it, not by its own time; files named C(.fleetwatch-*) (the files module's candidates) never count.
    type: dict
    suboptions:
      stamp:
        description: The stamp file.
        type: path
        required: true
      paths:
        description: Files and directories to compare with the stamp.
        type: list
        elements: path
        required: true
  resolve:
    description: Host names to resolve as this host does (getaddrinfo, like C(getent ahosts)), for RV(resolved).
    type: list
    elements: str
    default: []
  firewall:
    description: Report ufw's and firewalld's state and the rules added through them (RV(firewall)).
    type: dict
    suboptions:
      zone:
        description: The firewalld zone whose permanent rich rules to list; its default zone when empty.
        type: str
        default: ""
attributes:
  check_mode:
    description: Runs the same in check mode; it only reads.
    support: full
  diff_mode:
    description: Changes nothing, so there is nothing to show.
    support: none
author:
  - fleetwatch engineers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Inspect the host once
  fleetwatch.falco_stack.host_inspect:
    paths: [/etc/node_exporter, /etc/node_exporter/web-config.yml]
    units: [prometheus-node-exporter.service]
    packages: [prometheus-node-exporter]
    executables: [podman]
    sockets: [/run/docker.sock]
  register: inspection

- name: Write only what differs
  fleetwatch.falco_stack.files:
    files: "{{ wanted_files | fleetwatch.falco_stack.differing_paths(inspection.paths) }}"

- name: Find the files Prometheus has not loaded, and the monitoring host's addresses
  fleetwatch.falco_stack.host_inspect:
    unloaded: {stamp: /etc/prometheus/.fleetwatch-loaded, paths: [/etc/prometheus/prometheus.yml, /etc/prometheus/rules]}
    resolve: [prometheus.example.com]
    firewall: {zone: public}
  register: inspection
"""

RETURN = r"""
os_family:
  description: C(Debian) or C(RedHat) by the IDs of C(/etc/os-release), or empty for another distribution.
  returned: always
  type: str
  sample: Debian
os_ids:
  description: C(ID) and then C(ID_LIKE) of C(/etc/os-release), lower case.
  returned: always
  type: list
  elements: str
  sample: [ubuntu, debian]
paths:
  description:
    - Each path of O(paths) that exists, with its C(type) (as C(stat -c %F) names it, for example C(regular file),
      C(regular empty file), C(directory), C(symbolic link)), C(mode) (octal, no leading zero), C(user), C(uid),
      C(group), C(gid) (numbers as strings) and, for a file or a link to one, C(sha1) of its content.
  returned: always
  type: dict
  sample: {/etc/node_exporter: {type: directory, mode: "750", user: root, uid: "0", group: prometheus, gid: "112"}}
listings:
  description: Each directory of O(list_dirs) and its files as full paths, sorted; an empty list when it is missing.
  returned: always
  type: dict
  sample: {/etc/prometheus/rules: [/etc/prometheus/rules/falco-alerts.yml]}
units:
  description:
    - Each unit of O(units) with C(unit_file_state) (what C(systemctl is-enabled) prints, C(not-found) for a unit
      systemd does not know), C(enabled) (true where C(is-enabled) succeeds, as for enabled, static, alias, indirect and
      the like), C(active_state) (what C(systemctl is-active) prints, C(unknown) without a running systemd) and
      C(active).
  returned: always
  type: dict
  sample: {falco-kmod.service: {unit_file_state: disabled, enabled: false, active_state: inactive, active: false}}
packages:
  description:
    - Each package of O(packages) with the versions a wanted version may be written as, empty when not installed
      (dpkg's version; rpm's version and version-release).
  returned: always
  type: dict
  sample: {prometheus-node-exporter: ["1.5.0-1+b6"]}
executables:
  description: Each command of O(executables) with its full path, or null when it was not found.
  returned: always
  type: dict
  sample: {podman: /usr/bin/podman, docker: null}
sockets:
  description: Each path of O(sockets), true when it is a Unix socket.
  returned: always
  type: dict
  sample: {/run/docker.sock: false}
podman_images:
  description: Each reference of O(podman_images), true when podman has that image (false without podman).
  returned: always
  type: dict
  sample: {"quay.io/prometheus/node-exporter:v1.8.2": true}
unloaded:
  description: The paths of O(unloaded.paths) holding a file newer than the stamp, in their order.
  returned: when O(unloaded) is given
  type: list
  elements: str
resolved:
  description: Each name of O(resolve) with its addresses, in the resolver's order; empty when it does not resolve.
  returned: always
  type: dict
  sample: {prometheus.example.com: [192.0.2.10, "2001:db8::10"]}
firewall:
  description:
    - C(ufw) (the status C(ufw status) prints, such as C(active), empty without ufw), C(ufw_added) (the lines of
      C(ufw show added)), C(firewalld) (C(running), C(not running), empty without firewalld) and C(rich_rules) (the
      zone's permanent rich rules, while firewalld runs).
  returned: when O(firewall) is given
  type: dict
  sample: {ufw: active, ufw_added: ["ufw allow 22/tcp"], firewalld: "", rich_rules: []}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.host_inspect import (
    firewall_state, is_socket, listing, os_family, os_release, package_versions, path_states, resolve, unit_states,
    unloaded)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", default=[]),
            list_dirs=dict(type="list", elements="path", default=[]),
            units=dict(type="list", elements="str", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            executables=dict(type="list", elements="str", default=[]),
            sockets=dict(type="list", elements="path", default=[]),
            podman_images=dict(type="list", elements="str", default=[]),
            unloaded=dict(type="dict", options=dict(stamp=dict(type="path", required=True),
                                                    paths=dict(type="list", elements="path", required=True))),
            resolve=dict(type="list", elements="str", default=[]),
            firewall=dict(type="dict", options=dict(zone=dict(type="str", default=""))),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def run(argv):
        # Read-only commands, each answering a question; their exit codes are answers, not failures.
        return module.run_command(argv, environ_update={"LC_ALL": "C"})

    def find(name):
        return module.get_bin_path(name)

    ids = os_release()
    result = dict(changed=False, os_family=os_family(ids), os_ids=ids,
                  paths=path_states(params["paths"], module.sha1),
                  listings={directory: listing(directory) for directory in params["list_dirs"]},
                  units=unit_states(run, find("systemctl") if params["units"] else None, params["units"]),
                  packages=package_versions(run, find("dpkg-query") if params["packages"] else None,
                                            find("rpm") if params["packages"] else None, params["packages"]),
                  executables={name: find(name) for name in params["executables"]},
                  sockets={path: is_socket(path) for path in params["sockets"]},
                  resolved=resolve(params["resolve"]))
    podman = find("podman") if params["podman_images"] else None
    result["podman_images"] = {image: bool(podman) and run([podman, "image", "exists", image])[0] == 0
                               for image in params["podman_images"]}
    if params["unloaded"] is not None:
        result["unloaded"] = unloaded(params["unloaded"]["stamp"], params["unloaded"]["paths"])
    if params["firewall"] is not None:
        result["firewall"] = firewall_state(run, find("ufw"), find("firewall-cmd"), params["firewall"]["zone"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
