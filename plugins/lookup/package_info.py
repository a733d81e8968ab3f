# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name and version of a .deb or .rpm file on the controller, read from the package itself."""

from __future__ import annotations

DOCUMENTATION = r"""
name: package_info
short_description: Read the name and version of a .deb or .rpm package file on the controller
version_added: 0.1.0
description:
  - Reads the package's own metadata in pure Python, as dpkg and rpm would (a .deb's C(control) file inside its
    C(control.tar.gz), C(.xz), C(.zst) or uncompressed C(control.tar); an .rpm's header tags), so a renamed file is
    still known for what it is. The format comes from the content, not from the file name. Only the metadata at the
    start of the file is read.
  - Relative paths are looked up like C(ansible.builtin.copy)'s C(src) (the role's and the playbook's C(files)
    directories, then as given), so the file found is the file the role installs.
  - A .deb with a zstd-compressed control member needs Python 3.14 or the C(zstandard) module on the controller.
  - A file that is missing or is no package this lookup can read is an error naming the file and the reason.
options:
  _terms:
    description: Paths of package files on the controller.
    type: list
    elements: path
    required: true
"""

EXAMPLES = r"""
- name: Refuse a package file that is not the wanted release
  ansible.builtin.assert:
    that: found.version == falco_version
    fail_msg: "{{ falco_package_src }} holds {{ found.name }} {{ found.version }}, not {{ falco_version }}"
  vars:
    found: "{{ lookup('fleetwatch.falco_stack.package_info', falco_package_src) }}"
"""

RETURN = r"""
_raw:
  description: One dict per path.
  type: list
  elements: dict
  contains:
    format:
      description: C(deb) or C(rpm).
      type: str
    name:
      description: The package name (C(Package) field, C(NAME) tag).
      type: str
    version:
      description: The upstream version, comparable with a release number such as C(0.44.1) (a .deb's C(Version)
        without epoch and Debian revision; an .rpm's C(VERSION) tag).
      type: str
    full_version:
      description: The version as the package states it, with epoch and revision or release (C(1:0.44.1-2),
        C(0.31.1-1)).
      type: str
    architecture:
      description: The package's architecture (C(amd64), C(x86_64), ...), empty when it names none.
      type: str
"""

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.lookup import LookupBase

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.package_info import PackageInfoError, package_info


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if kwargs:
            raise AnsibleLookupError("package_info: unknown option(s) %s; it takes only paths" % ", ".join(sorted(kwargs)))
        results = []
        for term in terms:
            term = to_text(term)
            path = self.find_file_in_search_path(variables or {}, "files", term, ignore_missing=True)
            if not path:
                raise AnsibleLookupError("package_info: no package file %s on the controller (relative paths are "
                                         "looked up in the role's and the playbook's files/ directories, like copy's "
                                         "src)" % term)
            try:
                results.append(package_info(path))
            except PackageInfoError as error:
                raise AnsibleLookupError("package_info: %s is not a package file whose version can be read: %s"
                                         % (path, to_text(error)))
        return results
