# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the fleet triage: merge per-host falco_events summaries into one report."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils import falco_events
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_events_report import report_markdown, rules_csv

DOCUMENTATION = r"""
name: falco_triage_report
short_description: Merge per-host falco_events summaries into a fleet report
version_added: 0.1.0
description:
  - Takes the summaries the M(fleetwatch.falco_stack.falco_events) module returned on each host, merges them, and
    renders the fleet report playbooks/triage.yml writes. Suggested exceptions use the falco role's
    C(falco_rule_exceptions) format; nothing is applied.
options:
  _input:
    description: Host name to the C(summary) that host's falco_events task returned.
    type: dict
    required: true
  top:
    description: Rows kept per table.
    type: int
    default: 20
  min_count:
    description: Alerts a fingerprint needs before an exception is suggested for it.
    type: int
    default: 10
  min_span:
    description: Seconds between a fingerprint's first and last alert before an exception is suggested.
    type: int
    default: 3600
  max_priority:
    description: Most severe priority an exception is suggested for.
    type: str
    default: warning
  unreported_hosts:
    description: Hosts that were asked but returned no summary (unreachable or failed); the report names them.
    type: list
    elements: str
    default: []
  dashboard_url:
    description:
      - URL of the Falco fleet dashboard (uid C(fleetwatch-falco-fleet)) as people open it. The Markdown report links
        each rule name to it filtered on that rule (C(?var-rule=)) and on the row's hosts (C(&var-host=)).
      - Empty, the default, leaves rule names as plain text.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Build the report
  ansible.builtin.set_fact:
    report: "{{ summaries_by_host | fleetwatch.falco_stack.falco_triage_report(top=20) }}"
"""

RETURN = r"""
_value:
  description: The report in every format.
  type: dict
  contains:
    summary: {description: The merged summary, JSON-ready., type: dict}
    markdown: {description: The report for people., type: str}
    csv: {description: The fleet-wide rule table., type: str}
    exceptions: {description: Suggested exceptions in falco_rule_exceptions format., type: list}
    exceptions_yaml: {description: The same as group_vars YAML with the evidence as comments., type: str}
"""


def falco_triage_report(summaries_by_host, top=20, min_count=10, min_span=3600, max_priority="warning",
                        unreported_hosts=(), dashboard_url=""):
    if not isinstance(summaries_by_host, dict):
        raise AnsibleFilterError("falco_triage_report expects a dict of host name to falco_events summary")
    try:
        per_host = dict((host, summary) for host, summary in summaries_by_host.items() if summary)
        merged = falco_events.merge_summaries(list(per_host.values()), top=top)
        suggestion = falco_events.suggest_exceptions(merged["fingerprints"]["top"], min_count=min_count,
                                                     min_span=min_span, max_priority=max_priority)
    except (falco_events.FalcoTriageError, KeyError, TypeError) as error:
        raise AnsibleFilterError("falco_triage_report: %s" % error)
    return {
        "summary": merged,
        "markdown": report_markdown(merged, per_host, suggestion, sorted(unreported_hosts), dashboard_url or ""),
        "csv": rules_csv(merged),
        "exceptions": suggestion["exceptions"],
        "exceptions_yaml": falco_events.exceptions_to_yaml(suggestion["exceptions"], suggestion["evidence"]),
    }


class FilterModule(object):
    def filters(self):
        return {"falco_triage_report": falco_triage_report}
