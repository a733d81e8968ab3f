# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the systemd units an inspection did not find both disabled and stopped."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: units_in_use
short_description: Keep the units that are enabled or running, or that the inspection did not report
version_added: 0.1.0
description:
  - A role that stops and disables units it does not want calls the service module only for those this returns, so a
    converged host gets no call. A unit the report leaves out (or no report at all) is kept, to be stopped anyway.
options:
  _input:
    description: Unit names.
    type: list
    elements: str
    required: true
  reported:
    description: The C(units) of C(fleetwatch.falco_stack.host_inspect), unit name to a dict with C(enabled) and
      C(active) (booleans); null when there was no inspection.
    type: dict
"""

EXAMPLES = r"""
- name: Stop and disable the other units
  ansible.builtin.systemd_service:
    name: "{{ item }}"
    state: stopped
    enabled: false
  loop: "{{ ['falco-kmod.service'] | fleetwatch.falco_stack.units_in_use(inspection.units) }}"
"""

RETURN = r"""
_value:
  description: The input units the report shows enabled or active, or does not report, in input order.
  type: list
  elements: str
"""


def units_in_use(units, reported=None):
    if reported is None:
        return list(units)
    if not isinstance(reported, Mapping):
        raise AnsibleFilterError("units_in_use: reported must be the inspection's units (a dict), got %s"
                                 % type(reported).__name__)
    idle = set(name for name, state in reported.items()
               if not (state or {}).get("enabled") and not (state or {}).get("active"))
    return [unit for unit in units if unit not in idle]


class FilterModule(object):
    def filters(self):
        return {"units_in_use": units_in_use}
