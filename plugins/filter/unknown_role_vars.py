# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that picks a role's undeclared variables out of the names carrying its prefix."""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: unknown_role_vars
short_description: The variables with a role's prefix that the role does not declare
version_added: 0.1.0
description:
  - A role's public variables start with its name and an underscore (C(falco_)). Another role of the collection whose
    name starts with that prefix (C(falco_exporter) after C(falco)) owns the names under its own prefix
    (C(falco_exporter_*)); those are left to that role's check, so a host running both roles passes both.
  - The sibling roles are the directories next to O(role_path) that hold a C(meta/argument_specs.yml).
options:
  _input:
    description: Variable names to check, usually C(query('ansible.builtin.varnames', '^ROLE_')).
    type: list
    elements: str
    required: true
  known:
    description: The names the role declares (its argument_specs options).
    type: list
    elements: str
    required: true
  role_path:
    description: The role's directory (C(ansible_parent_role_paths[0]) from an included task file); its name gives
      the prefix and its parent directory the collection's other roles.
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Refuse typos of the calling role's variables
  ansible.builtin.assert:
    that: unknown | length == 0
  vars:
    unknown: >-
      {{ query('ansible.builtin.varnames', '^falco_')
         | fleetwatch.falco_stack.unknown_role_vars(['falco_version', 'falco_driver'], ansible_parent_role_paths[0]) }}
    # falco_dirver -> unknown; falco_exporter_listen_address -> left to the falco_exporter role
"""

RETURN = r"""
_value:
  description: The names neither declared by the role nor under a sibling role's prefix, sorted.
  type: list
  elements: str
"""


def sibling_prefixes(role_path):
    """Prefixes of the collection's roles whose names extend this role's prefix, longest first."""
    role_path = os.path.normpath(role_path)
    role = os.path.basename(role_path)
    roles_dir = os.path.dirname(role_path)
    try:
        entries = os.listdir(roles_dir)
    except OSError as exc:
        raise AnsibleFilterError("unknown_role_vars: cannot list the roles next to %s: %s" % (role_path, exc))
    prefix = role + "_"
    return sorted((name + "_" for name in entries
                   if name.startswith(prefix) and os.path.isfile(os.path.join(roles_dir, name, "meta", "argument_specs.yml"))),
                  key=len, reverse=True)


def unknown_role_vars(names, known, role_path):
    role = os.path.basename(os.path.normpath(role_path))
    prefix = role + "_"
    others = sibling_prefixes(role_path)
    known = set(known)
    return sorted(name for name in names
                  if name.startswith(prefix) and name not in known and not any(name.startswith(p) for p in others))


class FilterModule(object):
    def filters(self):
        return {"unknown_role_vars": unknown_role_vars}
