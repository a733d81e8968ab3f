# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What falcosidekick would silently ignore in its outputs: keys it does not know, outputs left without their switch."""

from __future__ import annotations

from collections.abc import Mapping

DOCUMENTATION = r"""
name: falcosidekick_output_problems
short_description: Find the outputs keys falcosidekick would ignore and the outputs it would leave off
version_added: 0.1.0
description:
  - falcosidekick ignores keys it does not know and leaves an output off while the key that switches it on is empty,
    both without a word; the falcosidekick role's preflight refuses them with these lists.
  - C(unknown_keys) lists C(output.key) for each key of an output of O(supported) that is not among its keys (outputs
    that O(supported) lacks are the role's other check).
  - C(switched_off) lists C(output.switch) for each output of O(switches) present in O(_input) whose switch key is
    missing or empty.
options:
  _input:
    description: The outputs by name, each a dict of settings (or empty).
    type: dict
    required: true
  supported:
    description: The keys each supported output takes, by output name.
    type: dict
    default: {}
  switches:
    description: The key that switches each output on, by output name.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Refuse what falcosidekick would ignore
  ansible.builtin.assert:
    that: problems.unknown_keys | length == 0 and problems.switched_off | length == 0
  vars:
    problems: "{{ falcosidekick_outputs | fleetwatch.falco_stack.falcosidekick_output_problems(
                    supported={'slack': ['webhookurl', 'channel']}, switches={'slack': 'webhookurl'}) }}"
    # {slack: {channel: x, webhook: y}} -> {unknown_keys: [slack.webhook], switched_off: [slack.webhookurl]}
"""

RETURN = r"""
_value:
  description: The two lists, each in the outputs' order.
  type: dict
  contains:
    unknown_keys:
      description: C(output.key) for each unknown key.
      type: list
      elements: str
    switched_off:
      description: C(output.switch) for each output whose switch is missing or empty.
      type: list
      elements: str
"""


def _settings(value):
    return value if isinstance(value, Mapping) else {}


def falcosidekick_output_problems(outputs, supported=None, switches=None):
    supported = supported or {}
    switches = switches or {}
    # Not a dict at all is the role's first check (its message says so); nothing to list here.
    outputs = _settings(outputs)
    unknown_keys = ["%s.%s" % (name, key) for name, settings in outputs.items() if name in supported
                    for key in _settings(settings) if key not in supported[name]]
    switched_off = ["%s.%s" % (name, switches[name]) for name, settings in outputs.items() if name in switches
                    if not _settings(settings).get(switches[name])]
    return {"unknown_keys": unknown_keys, "switched_off": switched_off}


class FilterModule(object):
    def filters(self):
        return {"falcosidekick_output_problems": falcosidekick_output_problems}
