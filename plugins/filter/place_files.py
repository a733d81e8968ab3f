# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files a role writes, named relative to a directory, as the files module and the differing_paths filter take them."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

DOCUMENTATION = r"""
name: place_files
short_description: Place files named relative to a directory, with owner, group and mode
version_added: 0.1.0
description:
  - Turns the files a role wants under one directory into the items of C(fleetwatch.falco_stack.files) and
    C(fleetwatch.falco_stack.differing_paths), each C(path) (O(directory)/name O(suffix)), C(content) or C(src),
    C(owner), C(group), C(mode) and, when given, C(validate), keys in that order.
  - A dict O(_input), name to content, gives files written from the controller, in the dict's order. A list of names
    with O(src_dir) gives files copied on the host from O(src_dir)/name (the files module compares them there).
options:
  _input:
    description: Name (relative to O(directory), may hold subdirectories such as C(rules.d/x.yaml)) to content; or a
      list of names when O(src_dir) is set.
    type: raw
    required: true
  directory:
    description: The directory the names are relative to.
    type: str
    required: true
  owner:
    description: Owner of every file (name or number).
    type: raw
    default: root
  group:
    description: Group of every file (name or number; numbers come out as text).
    type: raw
    default: root
  mode:
    description: Mode of every file, an octal string.
    type: str
    default: "0644"
  src_dir:
    description: Where the host holds files of the same names to copy (O(_input) is then a list of names).
    type: str
  suffix:
    description: Appended to each name (C(.json) for the prometheus role's per-job target files).
    type: str
    default: ""
  validate:
    description: The files module's C(validate) command for every file (C(%s) is the candidate).
    type: str
"""

EXAMPLES = r"""
- name: Stage the rendered files
  fleetwatch.falco_stack.files:
    files: "{{ {'config.d/a.yaml': 'a: 1\n'} | fleetwatch.falco_stack.place_files('/var/lib/x/staging') }}"

- name: Put the staged downloads live, compared on the host
  fleetwatch.falco_stack.files:
    files: "{{ ['rules.d/r.yaml'] | fleetwatch.falco_stack.place_files('/etc/falco', src_dir='/var/lib/x/staging') }}"
"""

RETURN = r"""
_value:
  description: One item per name, in input order, C(path), C(content) or C(src), C(owner), C(group), C(mode) and
    C(validate) when given.
  type: list
  elements: dict
"""


def _checked_name(name):
    name = to_text(name)
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise AnsibleFilterError("place_files: %r is not a name relative to the directory" % name)
    return name


def place_files(files, directory, owner="root", group="root", mode="0644", src_dir=None, suffix="", validate=None):
    directory = to_text(directory).rstrip("/")
    if not directory:
        raise AnsibleFilterError("place_files: directory must be set")
    if src_dir is None:
        if not isinstance(files, Mapping):
            raise AnsibleFilterError("place_files: the input must be a dict of name to content (or a list of names "
                                     "with src_dir), got %s" % type(files).__name__)
        sources = [(_checked_name(name), "content", content) for name, content in files.items()]
    else:
        if isinstance(files, (Mapping, str)) or not hasattr(files, "__iter__"):
            raise AnsibleFilterError("place_files: with src_dir the input must be a list of names")
        src_dir = to_text(src_dir).rstrip("/")
        sources = [(_checked_name(name), "src", "%s/%s%s" % (src_dir, _checked_name(name), suffix)) for name in files]
    placed = []
    for name, key, value in sources:
        item = {"path": "%s/%s%s" % (directory, name, suffix), key: value, "owner": to_text(owner),
                "group": to_text(group), "mode": to_text(mode)}
        if validate is not None:
            item["validate"] = to_text(validate)
        placed.append(item)
    return placed


class FilterModule(object):
    def filters(self):
        return {"place_files": place_files}
