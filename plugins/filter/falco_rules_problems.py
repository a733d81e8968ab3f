# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that lists what Falco would refuse (or silently ignore) in rules items given as data."""

from __future__ import annotations

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_rules_check import rules_problems

DOCUMENTATION = r"""
name: falco_rules_problems
short_description: Check Falco rules, macros and lists given as data, before they reach a host
version_added: 0.1.0
description:
  - Checks each item the way Falco's rule loader and its rule schema (C(falco --rule-schema)) read it and returns one
    message per problem, naming the variable, the item (counted from 1, with its rule, macro or list name) and the
    fix. An empty list means Falco's loader would accept the items' shape; conditions, outputs and field names are
    left to Falco's own validation (C(falco -V)).
  - Refused are items that are neither C(rule), C(macro), C(list), C(required_engine_version) nor
    C(required_plugin_versions), or more than one of them; unknown keys (Falco 0.44 and newer refuse them, older
    releases ignore them), with the closest known key as a hint; values of the wrong type; priorities Falco does not
    know (compared case-insensitively, C(info) standing for C(informational)); a new rule without C(condition),
    C(output), C(desc) and C(priority); a macro without C(condition), a list without C(items); macro and list names
    Falco refuses; C(override) entries Falco refuses and keys an C(override) item sets without an C(override) entry;
    C(append) together with C(override); keys an C(append) rule would have ignored; rule exceptions whose
    C(fields), C(comps) and C(values) disagree or whose operators Falco does not know.
  - Keys newer than O(falco_version) are refused too (C(override) needs 0.37, C(capture) and C(capture_duration)
    0.42), so a legacy host gets C(append) items.
options:
  _input:
    description: The rules items, for example C(falco_local_rules).
    type: list
    elements: raw
    required: true
  falco_version:
    description: The Falco release the items are for; keys it does not know yet are refused.
    type: str
    default: newest
  variable:
    description: The variable name the messages start with.
    type: str
    default: falco_local_rules
"""

EXAMPLES = r"""
- name: Refuse local rules Falco would not load
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems }}"
  vars:
    problems: "{{ falco_local_rules | fleetwatch.falco_stack.falco_rules_problems(falco_version=falco_version) }}"
    # [{rule: Foo, prio: Warning, ...}] ->
    # ["falco_local_rules item 1 (rule 'Foo'): unknown key 'prio', did you mean 'priority'? (a rule takes ...)", ...]
"""

RETURN = r"""
_value:
  description: One message per problem, in item order; empty when there is none.
  type: list
  elements: str
"""


def falco_rules_problems(items, falco_version=None, variable="falco_local_rules"):
    return rules_problems(items, falco_version=falco_version, variable=variable)


class FilterModule(object):
    def filters(self):
        return {"falco_rules_problems": falco_rules_problems}
