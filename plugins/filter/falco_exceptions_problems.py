# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that lists what Falco would refuse in rule exceptions given as {rule, name, fields, comps, values}."""

from __future__ import annotations

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_rules_check import exceptions_problems

DOCUMENTATION = r"""
name: falco_exceptions_problems
short_description: Check rule exceptions given as data (the falco role's falco_rule_exceptions) before they reach a host
version_added: 0.1.0
description:
  - Each entry is C({rule, name, fields, comps, values}), the shape the triage tool suggests. Returns one message per
    problem, naming the variable, the entry (counted from 1, with its exception and rule names) and the fix.
  - Refused are unknown keys (with the closest known key as a hint); a missing C(rule), C(name), C(fields) or
    C(values); C(fields) and C(comps) of different lengths; operators Falco does not know (C(=), C(!=), C(in),
    C(startswith), C(pmatch), ...); with a single field (a string), C(comps) other than C(in), C(intersects) or
    C(pmatch); rows of C(values) without one value per field; list values for an operator that compares with one
    value; values YAML read as booleans (unquoted C(yes), C(no)) and empty values.
  - Whether the named rule exists is not checked here (it may be in a rules file the controller does not have).
options:
  _input:
    description: The exceptions, for example C(falco_rule_exceptions).
    type: list
    elements: raw
    required: true
  variable:
    description: The variable name the messages start with.
    type: str
    default: falco_rule_exceptions
"""

EXAMPLES = r"""
- name: Refuse exceptions Falco would not load
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems }}"
  vars:
    problems: "{{ falco_rule_exceptions | fleetwatch.falco_stack.falco_exceptions_problems }}"
    # [{rule: R, name: n, fields: [proc.name, fd.name], comps: ["="], values: [[a, b]]}] ->
    # ["falco_rule_exceptions item 1 (exception 'n' on rule 'R'): fields has 2 entries but comps has 1: ..."]
"""

RETURN = r"""
_value:
  description: One message per problem, in entry order; empty when there is none.
  type: list
  elements: str
"""


def falco_exceptions_problems(exceptions, variable="falco_rule_exceptions"):
    return exceptions_problems(exceptions, variable=variable)


class FilterModule(object):
    def filters(self):
        return {"falco_exceptions_problems": falco_exceptions_problems}
