# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find a host's own Falco alerts for the smoke events (playbooks/smoke.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_smoke import alerts_seen

DOCUMENTATION = r"""
name: falco_smoke_alerts
short_description: The smoke events a host's own Falco alerts show, by rule, marker and hostname
version_added: 0.1.0
description:
  - Reads Falco JSON alerts (one per line, as in C(journalctl -t falco -o cat) or Falco's file output; other lines
    are skipped) and finds, for each event of a P(fleetwatch.falco_stack.falco_smoke_plan#filter) plan that ran, an
    alert whose rule is one of the event's, whose output or output fields carry the event's marker, and whose
    hostname is the one this host's Falco writes.
  - A marker is unique to a host and a run, so an alert another host's Falco raised for this host's event (every
    Falco sharing a kernel sees every event) or an old run's alert never counts.
options:
  _input:
    description: The alert lines (a list, or one string).
    type: raw
    required: true
  plan:
    description: The host's plan.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Which events the host's own alerts show
  ansible.builtin.debug:
    msg: "{{ journal.stdout_lines | fleetwatch.falco_stack.falco_smoke_alerts(smoke_plan) }}"
"""

RETURN = r"""
_value:
  description: What was found.
  type: dict
  contains:
    seen: {description: Event id to the rules of its alerts (empty when none)., type: dict}
    missing: {description: The ids of the events that ran and have no alert yet., type: list, elements: str}
    foreign: {description: "Event id to hostnames of alerts that carried its marker and rule but another hostname.",
              type: dict}
"""


def falco_smoke_alerts(lines, plan):
    if not isinstance(plan, dict) or "events" not in plan:
        raise AnsibleFilterError("falco_smoke_alerts: plan must be what falco_smoke_plan returned, got %r" % (plan,))
    if lines is not None and not isinstance(lines, (list, str)):
        raise AnsibleFilterError("falco_smoke_alerts: expects alert lines (a list or a string), got %r" % (lines,))
    return alerts_seen(lines or [], plan)


class FilterModule(object):
    def filters(self):
        return {"falco_smoke_alerts": falco_smoke_alerts}
