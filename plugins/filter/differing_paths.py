# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare the files and directories a role wants with what a one-shot inspection of the host reported."""

from __future__ import annotations

import hashlib

DOCUMENTATION = r"""
name: differing_paths
short_description: Keep the wanted paths whose state on the host differs from the wish
version_added: 0.1.0
description:
  - Roles inspect a host once (content checksum, mode, owner and group of each path they own) and pass only the paths
    that differ to their file tasks, so a converged host costs one round trip instead of one per file.
  - A wanted item with C(present=false) differs when the path exists. A wanted directory differs when it is missing or
    its mode, owner or group differ. A wanted file (an item with C(content)) differs also when the SHA-1 of the
    content differs.
options:
  _input:
    description: Wanted paths, each a dict with C(path), C(mode) (octal string such as C(640)), C(group) (name or
      number), optional C(owner) (name or number, default C(root)), optional C(present) (default true) and, for
      files, C(content).
    type: list
    elements: dict
    required: true
  reported:
    description: What the host reported, by path; each a dict with C(type), C(mode), C(user), C(uid) (optional),
      C(group), C(gid) and, for regular files, C(sha1). Paths that do not exist are absent.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Write only the files that differ
  ansible.builtin.copy:
    content: "{{ item.content }}"
    dest: "{{ item.path }}"
    mode: "0{{ item.mode }}"
  loop: "{{ wanted_files | fleetwatch.falco_stack.differing_paths(inspection.paths) }}"
"""

RETURN = r"""
_value:
  description: The wanted items that differ, unchanged, in their input order.
  type: list
  elements: dict
"""


def _is_present(item):
    present = item.get("present", True)
    if isinstance(present, str):
        return present.strip().lower() in ("true", "yes", "1")
    return bool(present)


def _differs(item, state):
    if not _is_present(item):
        return state is not None
    if state is None:
        return True
    if "content" in item:
        if not str(state.get("type", "")).startswith("regular"):
            return True
        if hashlib.sha1(str(item["content"]).encode("utf-8")).hexdigest() != state.get("sha1"):
            return True
    elif state.get("type") != "directory":
        return True
    if str(item.get("mode", "")).lstrip("0") != str(state.get("mode", "")).lstrip("0"):
        return True
    if str(item.get("owner", "root")) not in (state.get("user"), state.get("uid")):
        return True
    return str(item.get("group", "root")) not in (state.get("group"), state.get("gid"))


def differing_paths(wanted, reported):
    reported = reported or {}
    return [item for item in wanted if _differs(item, reported.get(item["path"]))]


class FilterModule(object):
    def filters(self):
        return {"differing_paths": differing_paths}
