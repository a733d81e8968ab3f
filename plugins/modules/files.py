#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write several files with their owner, group and mode in one module call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Write several files in one round trip, each checked before it replaces the old one
version_added: 0.1.0
description:
  - Writes each file of O(files) whose content differs from the host's, through a temporary file in the same directory
    that the O(files[].validate) command checks first; only when every changed file passed do they atomically replace
    the old ones, so a refused file leaves all of them as they were. Sets owner, group and mode where they differ.
  - Meant for the files a role found to differ in its one-shot inspection (filter
    C(fleetwatch.falco_stack.differing_paths)), one module call instead of a C(ansible.builtin.copy) call per file.
  - Not for secrets; contents appear in C(--diff) output.
options:
  files:
    description: The files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the file; its directory must exist.
        type: path
        required: true
      content:
        description: The whole content of the file.
        type: str
        required: true
      owner:
        description: Owner, by name or number; unchanged when omitted.
        type: str
      group:
        description: Group, by name or number; unchanged when omitted.
        type: str
      mode:
        description: Permissions, octal (V(0644)) or symbolic; unchanged for an existing file when omitted.
        type: raw
      validate:
        description:
          - Command that checks the new content before it replaces the file; C(%s) stands for the temporary file.
          - When it fails for any file, the module fails and writes none of them.
        type: str
attributes:
  check_mode:
    description: Reports which files would change, and shows how with C(--diff), without writing.
    support: full
  diff_mode:
    description: Shows the content and the owner, group and mode changes.
    support: full
author:
  - fleetwatch engineers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the scrape targets that differ
  fleetwatch.falco_stack.files:
    files:
      - path: /etc/prometheus/targets/node-exporter.json
        content: "{{ targets | to_nice_json(indent=2) }}"
        owner: root
        group: prometheus
        mode: "0644"
      - path: /etc/prometheus/rules/extra.yml
        content: "{{ {'groups': groups} | to_nice_yaml }}"
        mode: "0644"
        validate: promtool check rules %s
"""

RETURN = r"""
written:
  description: Paths whose content was (or, in check mode, would be) written.
  returned: always
  type: list
  elements: str
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text


def _current(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _candidate(module, spec, data, candidates):
    """Write data next to spec's path and check it; on failure remove every candidate and fail the module."""
    path = spec["path"]
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fleetwatch-", suffix=".tmp")
    candidates.append(tmp)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    if spec.get("validate"):
        if "%s" not in spec["validate"]:
            _discard(candidates)
            module.fail_json(msg="validate must contain %%s: %s" % spec["validate"], path=path)
        rc, out, err = module.run_command(spec["validate"] % tmp)
        if rc != 0:
            _discard(candidates)
            module.fail_json(msg="failed to validate", path=path, exit_status=rc, stdout=out, stderr=err)
    return tmp


def _discard(candidates):
    for tmp in candidates:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(
        argument_spec={"files": {"type": "list", "elements": "dict", "required": True, "options": {
            "path": {"type": "path", "required": True},
            "content": {"type": "str", "required": True},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw"},
            "validate": {"type": "str"},
        }}},
        supports_check_mode=True,
    )
    files = module.params["files"]
    for spec in files:
        if not os.path.isdir(os.path.dirname(spec["path"])) and not module.check_mode:
            module.fail_json(msg="the directory of %s does not exist" % spec["path"], path=spec["path"])
    # First every changed file is written next to its destination and checked; only when all pass do they replace
    # the old ones, so a refused file leaves the host as it was.
    candidates = []
    moves = []
    diffs = []
    existed = {}
    for spec in files:
        data = to_bytes(spec["content"], errors="surrogate_or_strict")
        before = _current(spec["path"])
        existed[spec["path"]] = before is not None
        if before == data:
            continue
        if module._diff:
            diffs.append({"before_header": spec["path"], "after_header": spec["path"],
                          "before": "" if before is None else to_text(before, errors="surrogate_or_replace"),
                          "after": to_text(data, errors="surrogate_or_replace")})
        if module.check_mode:
            moves.append((None, spec["path"]))
        else:
            moves.append((_candidate(module, spec, data, candidates), spec["path"]))
    try:
        for tmp, path in moves:
            if tmp is not None:
                module.atomic_move(tmp, path, unsafe_writes=False)
    finally:
        _discard(candidates)
    changed = bool(moves)
    for spec in files:
        if module.check_mode and not existed[spec["path"]]:
            continue  # nothing on the host to compare owner, group and mode with
        attributes = {"path": spec["path"], "owner": spec["owner"], "group": spec["group"], "mode": spec["mode"],
                      "attributes": None, "secontext": [None, None, None]}
        attribute_diff = {"before": {}, "after": {}} if module._diff else None
        if module.set_fs_attributes_if_different(attributes, False, attribute_diff):
            changed = True
            if attribute_diff and attribute_diff["before"] and existed[spec["path"]]:
                diffs.append(dict(attribute_diff, before_header=spec["path"], after_header=spec["path"]))
    # The arguments are echoed back without the contents: on a large fleet they are megabytes of scrape targets.
    invocation = {"module_args": {"files": [dict((k, v) for k, v in spec.items() if k != "content") for spec in files]}}
    result = {"changed": changed, "written": [path for _tmp, path in moves], "invocation": invocation}
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
