# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One smoke verdict per host (playbooks/smoke.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_smoke import smoke_report

DOCUMENTATION = r"""
name: falco_smoke_report
short_description: The smoke verdict for one host, each event checked through its own alert and Prometheus
version_added: 0.1.0
description:
  - Joins a host's P(fleetwatch.falco_stack.falco_smoke_plan#filter) plan, the alerts
    P(fleetwatch.falco_stack.falco_smoke_alerts#filter) found and the rules whose Prometheus counters for the host
    rose (P(fleetwatch.falco_stack.counters_risen#filter)).
  - An event passes only when both hold for the same rule; it fails when either is missing or its command failed.
    An event not run is reported as not tested. The host passes when no event failed and at least one passed, and
    fails whenever the plan names a problem (no Falco, alerts that cannot be read).
options:
  _input:
    description: The host's plan.
    type: dict
    required: true
  alerts:
    description: What falco_smoke_alerts returned.
    type: dict
    required: true
  risen:
    description: The rules whose counter for the host rose.
    type: list
    elements: str
    required: true
  caused:
    description: The results of the loop that ran the events' commands (their C(rc) and C(stderr)).
    type: list
    elements: dict
  deadline:
    description: Seconds the checks waited, for the message.
    type: int
"""

EXAMPLES = r"""
- name: Judge the host
  ansible.builtin.set_fact:
    smoke_report: "{{ smoke_plan | fleetwatch.falco_stack.falco_smoke_report(smoke_alerts, smoke_risen) }}"
"""

RETURN = r"""
_value:
  description: The verdict.
  type: dict
  contains:
    host: {description: The inventory host name., type: str}
    passed: {description: Whether the host passed., type: bool}
    waiting_for_counters: {description: Events whose Prometheus counter has not risen (yet)., type: list,
                           elements: str}
    events:
      description: "One per planned event: C(id), C(title), C(status) (C(passed), C(failed) or C(not tested)),
        C(rule), C(alert) and C(counter) (bool each), C(reason)."
      type: list
      elements: dict
    msg: {description: One line for people naming the host and what was tested and not tested., type: str}
"""


def falco_smoke_report(plan, alerts, risen, caused=None, deadline=None):
    if not isinstance(plan, dict) or "events" not in plan:
        raise AnsibleFilterError("falco_smoke_report: expects what falco_smoke_plan returned, got %r" % (plan,))
    if not isinstance(risen, (list, tuple)):
        raise AnsibleFilterError("falco_smoke_report: risen must be a list of rule names, got %r" % (risen,))
    return smoke_report(plan, alerts, risen, caused=caused, deadline=deadline)


class FilterModule(object):
    def filters(self):
        return {"falco_smoke_report": falco_smoke_report}
