#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create directories, write files and remove paths with their owner, group and mode in one module call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Directories, files and removals in one round trip, each file checked before it replaces the old one
version_added: 0.1.0
description:
  - Creates each directory of O(directories) that is missing and fixes the owner, group and mode of those that differ.
  - Writes each file of O(files) whose content differs from the host's, through a temporary file in the same directory
    that the O(files[].validate) command checks first; only when every changed file passed do they atomically replace
    the old ones, so a refused file leaves all of them as they were. Sets owner, group and mode where they differ.
    A file's content comes from the controller (O(files[].content)) or from another file on the host
    (O(files[].src)), compared by checksum on the host, so it never travels over the connection.
  - Removes each path of O(absent) that exists, after the files are in place; a refused file removes nothing.
  - The order is directories, files, removals, so a file may go into a directory of the same call.
  - Meant for the paths a role found to differ in its one-shot inspection (filter
    C(fleetwatch.falco_stack.differing_paths)), one module call instead of a C(ansible.builtin.file) or
    C(ansible.builtin.copy) call per path.
  - Not for secrets; contents appear in C(--diff) output.
options:
  files:
    description: The files to write.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file; its directory must exist or be in O(directories).
        type: path
        required: true
      content:
        description: The whole content of the file. Exactly one of O(files[].content) and O(files[].src).
        type: str
      src:
        description:
          - A file on the host whose content the file gets; the two are compared by SHA-1 on the host.
          - Exactly one of O(files[].content) and O(files[].src).
          - In check mode a missing O(files[].src) (written by an earlier task that check mode skipped) counts as a
            change; otherwise it is an error.
        type: path
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
  directories:
    description:
      - Directories to create (with their missing parents) or whose owner, group and mode to fix.
      - Created before any file is written, and kept when a file is refused.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: path
        required: true
      owner:
        description: Owner, by name or number; unchanged when omitted.
        type: str
      group:
        description: Group, by name or number; unchanged when omitted.
        type: str
      mode:
        description: Permissions, octal (V(0755)) or symbolic; the umask's default for a new one when omitted.
        type: raw
  absent:
    description: Paths to remove when they exist (a directory with everything in it).
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    description: Reports which paths would change, and shows how with C(--diff), without changing any.
    support: full
  diff_mode:
    description:
      - Shows the content and the owner, group and mode changes, directories created and paths removed.
      - A content larger than 104448 bytes (the default of Ansible's C(max_diff_size)) is named by its size, not shown.
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

- name: Put checked files in place from a staging directory, and drop one no longer wanted
  fleetwatch.falco_stack.files:
    directories:
      - {path: /etc/example/conf.d, owner: root, group: root, mode: "0755"}
    files:
      - {path: /etc/example/conf.d/ours.yaml, src: /var/lib/example/staging/ours.yaml, mode: "0644"}
    absent:
      - /etc/example/conf.d/old.yaml
"""

RETURN = r"""
written:
  description: Paths of files whose content was (or, in check mode, would be) written.
  returned: always
  type: list
  elements: str
directories:
  description: Directories that were (or would be) created, or whose owner, group or mode were (or would be) fixed.
  returned: always
  type: list
  elements: str
removed:
  description: Paths that were (or would be) removed.
  returned: always
  type: list
  elements: str
"""

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

# Ansible's default max_diff_size: a larger content is named by its size in --diff output, as the copy module does.
MAX_DIFF_SIZE = 104448


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _shown(data):
    if data is None:
        return ""
    if len(data) > MAX_DIFF_SIZE:
        return "(%d bytes, larger than %d: not shown)\n" % (len(data), MAX_DIFF_SIZE)
    return to_text(data, errors="surrogate_or_replace")


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


def _attributes(module, spec, diffs, header_missing=False):
    """Set owner, group and mode where they differ; True when they did (or would)."""
    attributes = {"path": spec["path"], "owner": spec["owner"], "group": spec["group"], "mode": spec["mode"],
                  "attributes": None, "secontext": [None, None, None]}
    attribute_diff = {"before": {}, "after": {}} if module._diff else None
    changed = module.set_fs_attributes_if_different(attributes, False, attribute_diff)
    if changed and attribute_diff and attribute_diff["before"] and not header_missing:
        diffs.append(dict(attribute_diff, before_header=spec["path"], after_header=spec["path"]))
    return changed


def _directories(module, diffs):
    done = []
    for spec in module.params["directories"]:
        path = spec["path"]
        if os.path.lexists(path) and not os.path.isdir(path):
            module.fail_json(msg="%s exists and is not a directory" % path, path=path)
        if not os.path.isdir(path):
            done.append(path)
            if module._diff:
                diffs.append({"before_header": path, "after_header": path,
                              "before": {"path": path, "state": "absent"},
                              "after": {"path": path, "state": "directory"}})
            if module.check_mode:
                continue  # nothing on the host to compare owner, group and mode with
            os.makedirs(path)
            _attributes(module, spec, diffs, header_missing=True)
        elif _attributes(module, spec, diffs):
            done.append(path)
    return done


def _wanted_data(module, spec):
    """The new content, or None in check mode when src is not there yet."""
    if spec["content"] is not None:
        return to_bytes(spec["content"], errors="surrogate_or_strict")
    if not os.path.isfile(spec["src"]):
        if module.check_mode:
            return None
        module.fail_json(msg="src %s of %s is not a file on the host" % (spec["src"], spec["path"]), path=spec["path"])
    return _read(spec["src"])


def _differs(module, spec):
    """Whether the file's content differs; src files are compared by checksum without reading them."""
    if not os.path.exists(spec["path"]):
        return True
    if spec["src"] is not None:
        return not os.path.isfile(spec["src"]) or module.sha1(spec["src"]) != module.sha1(spec["path"])
    return _read(spec["path"]) != to_bytes(spec["content"], errors="surrogate_or_strict")


def _files(module, diffs):
    files = module.params["files"]
    for spec in files:
        # In check mode a missing directory is no error: this call's directories, or an earlier task, create it.
        if not os.path.isdir(os.path.dirname(spec["path"])) and not module.check_mode:
            module.fail_json(msg="the directory of %s does not exist" % spec["path"], path=spec["path"])
    # First every changed file is written next to its destination and checked; only when all pass do they replace
    # the old ones, so a refused file leaves the host as it was.
    candidates = []
    moves = []
    existed = {}
    for spec in files:
        existed[spec["path"]] = os.path.exists(spec["path"])
        if not _differs(module, spec):
            continue
        data = _wanted_data(module, spec)
        if module._diff:
            after = _shown(data) if data is not None else "(the content of %s, not there yet)\n" % spec["src"]
            diffs.append({"before_header": spec["path"], "after_header": spec["src"] or spec["path"],
                          "before": _shown(_read(spec["path"])), "after": after})
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
    written = [path for _tmp, path in moves]
    attributes_changed = False
    for spec in files:
        if module.check_mode and not existed[spec["path"]]:
            continue  # nothing on the host to compare owner, group and mode with
        attributes_changed = _attributes(module, spec, diffs, header_missing=not existed[spec["path"]]) \
            or attributes_changed
    return written, attributes_changed


def _absent(module, diffs):
    removed = []
    for path in module.params["absent"]:
        if not os.path.lexists(path):
            continue
        removed.append(path)
        is_directory = os.path.isdir(path) and not os.path.islink(path)
        if module._diff:
            diffs.append({"before_header": path, "after_header": path,
                          "before": {"path": path, "state": "directory" if is_directory else "file"},
                          "after": {"path": path, "state": "absent"}})
        if module.check_mode:
            continue
        if is_directory:
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return removed


def main():
    attribute_options = {"owner": {"type": "str"}, "group": {"type": "str"}, "mode": {"type": "raw"}}
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "dict", "default": [],
                      "mutually_exclusive": [["content", "src"]], "required_one_of": [["content", "src"]],
                      "options": dict(attribute_options, path={"type": "path", "required": True},
                                      content={"type": "str"}, src={"type": "path"}, validate={"type": "str"})},
            "directories": {"type": "list", "elements": "dict", "default": [],
                            "options": dict(attribute_options, path={"type": "path", "required": True})},
            "absent": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    diffs = []
    directories = _directories(module, diffs)
    written, attributes_changed = _files(module, diffs)
    removed = _absent(module, diffs)
    # The arguments are echoed back without the contents: on a large fleet they are megabytes of scrape targets.
    invocation = {"module_args": dict(module.params, files=[
        dict((k, v) for k, v in spec.items() if k != "content") for spec in module.params["files"]])}
    result = {"changed": bool(directories or written or attributes_changed or removed), "written": written,
              "directories": directories, "removed": removed, "invocation": invocation}
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
