# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that picks, from the packages a role wants, those the host lacks or has at another version."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: packages_to_install
short_description: The package specs to install, from what a role wants and what the host has
version_added: 0.1.0
description:
  - Compares the packages a role wants with the installed ones, as C(dpkg-query) or C(rpm -q) list them, and returns
    the install specs (C(name=version) for apt, C(name-version) for dnf, the bare name when any version will do) of
    those missing or installed at another version. An empty result means nothing to install, so the role needs no
    package-list refresh and no package manager call.
options:
  _input:
    description: The wanted packages.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Package name.
        type: str
        required: true
      version:
        description: The version to have (a shell-style pattern such as C(1.5*) is allowed); empty for any.
        type: str
        default: ""
  installed:
    description: >-
      Lines C(NAME STATUS VERSION): C(dpkg-query --show --showformat='${Package} ${db:Status-Status} ${Version}\n')
      or C(rpm -q --queryformat '%{NAME} installed %{VERSION}-%{RELEASE}\n'). Only lines whose status is
      C(installed) count (dpkg also lists removed packages that kept their configuration files).
    type: str
    required: true
  manager:
    description: The package manager the specs are for.
    type: str
    choices: [apt, dnf]
    required: true
"""

EXAMPLES = r"""
- name: Install what is missing
  ansible.builtin.apt:
    name: "{{ [{'name': 'rsyslog'}, {'name': 'prometheus', 'version': '2.42.0+ds-5+b5'}]
              | fleetwatch.falco_stack.packages_to_install(probe.stdout, 'apt') }}"
    update_cache: true
"""

RETURN = r"""
_value:
  description: Install specs, in the order wanted; empty when everything is there.
  type: list
  elements: str
"""

SEPARATORS = {"apt": "=", "dnf": "-"}


def installed_versions(listing):
    """{name: version} of the installed packages in a dpkg-query or rpm listing."""
    versions = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == "installed":
            versions[fields[0]] = fields[2]
    return versions


def packages_to_install(wanted, installed, manager):
    if manager not in SEPARATORS:
        raise AnsibleFilterError("packages_to_install: manager must be apt or dnf, not %r" % (manager,))
    have = installed_versions(installed or "")
    specs = []
    for package in wanted:
        if not isinstance(package, dict) or not package.get("name"):
            raise AnsibleFilterError("packages_to_install: each wanted package is a dict with a name, not %r" % (package,))
        name, version = package["name"], package.get("version") or ""
        if name in have and (not version or fnmatchcase(have[name], version)):
            continue
        specs.append(name + SEPARATORS[manager] + version if version else name)
    return specs


class FilterModule:
    def filters(self):
        return {"packages_to_install": packages_to_install}
