# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the falco role's inspection found in the drop-in directories: ours no longer declared, and the others' drop-ins."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

DOCUMENTATION = r"""
name: falco_found_files
short_description: The falco role's files the inspection found but the role no longer declares, and the other drop-ins
version_added: 0.1.0
description:
  - Reads the C(listings) of C(fleetwatch.falco_stack.host_inspect) (the files of C(config.d) and C(rules.d) in the
    staging area and in C(/etc/falco)).
  - C(staged_undeclared) and C(live_undeclared), files whose name starts with O(owned_prefix) (the role's) that are
    not O(declared), in the staging area and in O(etc_dir); the role removes them.
  - C(other_dropins), the files of O(etc_dir)/C(config.d) that are not the role's and not hidden (the package's,
    falcoctl's, the user's), which Falco loads beside the role's; the configuration checks run with them.
options:
  _input:
    description: The inspection's C(listings), directory to the paths of the files in it.
    type: dict
    required: true
  declared:
    description: The files the role owns, relative to O(etc_dir) (C(config.d/...), C(rules.d/...), C(falco.yaml)).
    type: list
    elements: str
    required: true
  etc_dir:
    description: Falco's configuration directory.
    type: str
    required: true
  stage_dir:
    description: The role's staging area, the same layout as O(etc_dir).
    type: str
    required: true
  owned_prefix:
    description: How the names of the role's files start.
    type: str
    default: fleetwatch-
"""

EXAMPLES = r"""
- name: Remove our staged files no longer declared
  fleetwatch.falco_stack.files:
    absent: >-
      {{ (inspection.listings | fleetwatch.falco_stack.falco_found_files(declared=['config.d/fleetwatch-outputs.yaml'],
           etc_dir='/etc/falco', stage_dir='/var/lib/fleetwatch/falco/staging')).staged_undeclared }}
"""

RETURN = r"""
_value:
  description: C(staged_undeclared), C(live_undeclared) and C(other_dropins), each a list of paths in the order the
    listings give them.
  type: dict
"""


def _name(path):
    return path.rsplit("/", 1)[-1]


def falco_found_files(listings, declared, etc_dir, stage_dir, owned_prefix="fleetwatch-"):
    if not isinstance(listings, Mapping):
        raise AnsibleFilterError("falco_found_files: the input must be the inspection's listings (a dict), got %s"
                                 % type(listings).__name__)
    etc_dir, stage_dir = to_text(etc_dir).rstrip("/"), to_text(stage_dir).rstrip("/")
    declared = [to_text(name) for name in declared]
    ours = set("%s/%s" % (root, name) for root in (etc_dir, stage_dir) for name in declared)
    found = [to_text(path) for paths in listings.values() for path in paths or []]
    undeclared = [path for path in found if _name(path).startswith(owned_prefix) and path not in ours]
    return {
        "staged_undeclared": [path for path in undeclared if path.startswith(stage_dir + "/")],
        "live_undeclared": [path for path in undeclared if path.startswith(etc_dir + "/")],
        "other_dropins": [to_text(path) for path in listings.get(etc_dir + "/config.d") or []
                          if not _name(to_text(path)).startswith((owned_prefix, "."))],
    }


class FilterModule(object):
    def filters(self):
        return {"falco_found_files": falco_found_files}
