# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that turns unknown variable names into a "did you mean" hint for preflight messages."""

from __future__ import annotations

import difflib

DOCUMENTATION = r"""
name: suggest_names
short_description: Suggest the closest known names for misspelled ones
version_added: 0.1.0
description:
  - For each unknown name, finds the closest known name, so a preflight message can say
    C(node_exporter_mdoe -> did you mean node_exporter_mode?).
options:
  _input:
    description: Names that are not known.
    type: list
    elements: str
    required: true
  known:
    description: The names that are known.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Explain a typo
  ansible.builtin.debug:
    msg: "{{ ['node_exporter_mdoe'] | fleetwatch.falco_stack.suggest_names(['node_exporter_mode']) }}"
    # -> "node_exporter_mdoe (did you mean node_exporter_mode?)"
"""

RETURN = r"""
_value:
  description: One phrase per unknown name, joined with "; ".
  type: str
"""


def suggest_names(unknown, known):
    phrases = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        phrases.append("%s (did you mean %s?)" % (name, close[0]) if close else "%s (no similar name)" % name)
    return "; ".join(phrases)


class FilterModule(object):
    def filters(self):
        return {"suggest_names": suggest_names}
