# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that gathers every host's preflight problems into the one list playbooks/preflight.yml prints."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: preflight_report
short_description: Every host's preflight problems in one list
version_added: 0.1.0
description:
  - The end of the fleet-wide preflight (C(playbooks/preflight.yml)). Each checked host holds its problems in
    C(__fleetwatch_preflight_problems) (entries of C(fleetwatch.falco_stack.preflight_problems)) and, while a role's
    checks run, that role's name in C(__fleetwatch_preflight_checking).
  - A host that is no longer in the run (not in O(live)) failed or stopped answering; it is refused too, named with
    the role whose checks it was in, if any.
  - Hosts that did not answer the reachability check (O(not_answered)) were not checked; they are named, but do not
    count as refused (site.yml leaves them out and names them again at the end).
options:
  _input:
    description: The hosts the preflight covered, in inventory order (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: raw
    required: true
  live:
    description: The hosts still in the run (C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
  not_answered:
    description: Hosts left out before the preflight because they did not answer (group C(fleetwatch_unreachable)).
    type: list
    elements: str
    default: []
  leave_out:
    description: Whether refused hosts are left out and the others deployed (C(fleetwatch_preflight_refused=leave_out))
      rather than the whole run stopped; only the wording of the first line depends on it.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: One list of every host's problems
  ansible.builtin.assert:
    that: report.refused | length == 0
    fail_msg: "{{ report.lines }}"
  vars:
    report: >-
      {{ ansible_play_hosts_all | fleetwatch.falco_stack.preflight_report(hostvars, ansible_play_hosts,
         not_answered=groups['fleetwatch_unreachable'] | default([])) }}
"""

RETURN = r"""
refused:
  description: The refused hosts, in the order of O(_input).
  type: list
  elements: str
problems:
  description: Each refused host's problems, C({role, check, variables, message}).
  type: dict
lines:
  description:
    - The one list to print. Its first line says what happens next; then comes one line per problem, host, role and
      message separated by a colon and a space; then one line per host that was not checked.
  type: list
  elements: str
"""


def host_problems(host, variables, live):
    problems = list(variables.get("__fleetwatch_preflight_problems") or [])
    if host not in live:
        role = variables.get("__fleetwatch_preflight_checking") or ""
        problems.append({
            "role": role, "check": "connection", "variables": [],
            "message": ("failed or stopped answering during these checks (see its error above)" if role
                        else "failed or stopped answering before the checks (see its error above)")})
    return problems


def preflight_report(hosts, hostvars, live, not_answered=None, leave_out=False):
    if not isinstance(hosts, (list, tuple)) or not isinstance(live, (list, tuple)):
        raise AnsibleFilterError("preflight_report: expected lists of host names (ansible_play_hosts_all, "
                                 "ansible_play_hosts)")
    live = set(live)
    not_answered = [host for host in (not_answered or []) if host not in hosts]
    problems = {}
    for host in hosts:
        found = host_problems(host, hostvars[host], live)
        if found:
            problems[host] = found
    refused = [host for host in hosts if host in problems]
    checked = len(hosts)
    if not refused:
        head = "All %d checked host(s) passed every role's checks." % checked
    elif leave_out:
        counts = (len(refused), checked, checked - len(refused))
        head = ("The preflight refused %d of %d host(s); fleetwatch_preflight_refused is leave_out, so they are left "
                "out, the other %d are deployed, and the run fails at the end:" % counts)
    else:
        head = ("The preflight refused %d of %d host(s); no role has changed anything on any host. Fix every problem "
                "below and run again (fleetwatch_preflight_refused=leave_out deploys the other hosts without them):"
                % (len(refused), checked))
    lines = [head]
    for host in refused:
        for problem in problems[host]:
            role = problem.get("role") or "-"
            lines.append("%s: %s: %s" % (host, role, problem.get("message", "")))
    for host in not_answered:
        lines.append("%s: not checked: did not answer the reachability check (left out, named again at the end)"
                     % host)
    return {"refused": refused, "problems": problems, "lines": lines}


class FilterModule(object):
    def filters(self):
        return {"preflight_report": preflight_report}
