# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drop-in files from several directories in the order Falco would load them from one: by file name."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

DOCUMENTATION = r"""
name: falco_load_order
short_description: Order drop-in paths by file name, as Falco loads config.d
version_added: 0.1.0
description:
  - The falco role checks its staged drop-ins together with the other live ones (the package's, falcoctl's) through a
    configuration whose C(config_files) lists them all; this puts them in the order Falco loads C(config.d), by file
    name, whatever directory each is in. Names compare as Falco 0.44.1 sorts them, byte by byte (C(B.yaml) before
    C(a.yaml)), then the whole paths.
options:
  _input:
    description: Paths of drop-in files.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: The drop-ins the checks load, in Falco's order
  ansible.builtin.debug:
    msg: >-
      {{ ['/etc/falco/config.d/falco.container_plugin.yaml', '/var/lib/x/staging/config.d/fleetwatch-outputs.yaml']
         | fleetwatch.falco_stack.falco_load_order }}
"""

RETURN = r"""
_value:
  description: The paths, ordered by file name.
  type: list
  elements: str
"""


def _key(path):
    # Falco sorts a config.d's paths as plain strings (upper case before lower case), which Python's str order
    # matches for UTF-8 names: code point order is byte order.
    name = path.rsplit("/", 1)[-1]
    return (name, path)


def falco_load_order(paths):
    if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__"):
        raise AnsibleFilterError("falco_load_order: the input must be a list of paths, got %s" % type(paths).__name__)
    return sorted((to_text(path) for path in paths), key=_key)


class FilterModule(object):
    def filters(self):
        return {"falco_load_order": falco_load_order}
