# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules files the falco role owns in rules.d: their names and, for the ones it renders, their data."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

DOCUMENTATION = r"""
name: falco_rule_files
short_description: The falco role's own rules files, extra rulesets, local rules and exceptions, in load order
version_added: 0.1.0
description:
  - The file list of the falco role's C(rules.d), which Falco loads in name order after the stable rules.
  - C(ruleset_names), one per entry of O(_input) (C(falco_rulesets)) in its order, C(fleetwatch-1NN-NAME.yaml), NN
    the entry's place in the list from C(00); the role stages their content from the controller or a download.
  - C(rendered), the files the role writes from data, each a dict with C(name) and C(data). C(fleetwatch-500-local.yaml)
    holds O(local_rules) when there are any. C(fleetwatch-600-exceptions.yaml) holds one rule item per entry of
    O(exceptions), so the triage tool's list maps line by line onto the file, each C(rule), then C(exceptions) (the
    entry without its C(rule)), then the keys of O(exception_style).
  - The disabled rules file (C(700), only where the configuration has no C(rules) selection) is the generation's,
    added by the role after these.
options:
  _input:
    description: The extra rulesets (C(falco_rulesets)), each a dict with a C(name).
    type: list
    elements: dict
    required: true
  local_rules:
    description: Local rules, macros and lists (C(falco_local_rules)).
    type: list
    elements: dict
    default: []
  exceptions:
    description: The exceptions (C(falco_rule_exceptions)), each a dict with C(rule), C(name), C(fields), C(comps)
      and C(values).
    type: list
    elements: dict
    default: []
  exception_style:
    description: >-
      The keys that make an item add its exceptions to the rule's, C({override: {exceptions: append}}) from Falco
      0.37, C({append: true}) before.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The rules files the role owns
  ansible.builtin.debug:
    msg: >-
      {{ falco_rulesets | fleetwatch.falco_stack.falco_rule_files(local_rules=falco_local_rules,
           exceptions=falco_rule_exceptions, exception_style={'override': {'exceptions': 'append'}}) }}
"""

RETURN = r"""
_value:
  description: C(ruleset_names), the extra rulesets' file names relative to C(rules.d), and C(rendered), the files
    written from data, each C(name) and C(data).
  type: dict
"""

LOCAL_RULES_FILE = "fleetwatch-500-local.yaml"
EXCEPTIONS_FILE = "fleetwatch-600-exceptions.yaml"


def ruleset_names(rulesets):
    """fleetwatch-1NN-NAME.yaml per extra ruleset, NN its place in the list."""
    return ["fleetwatch-1%02d-%s.yaml" % (index, to_text(ruleset.get("name"))) for index, ruleset in enumerate(rulesets)]


def plain(value):
    """A copy of nested dicts and lists that shares no dict or list with the input or with another copy.

    to_nice_yaml writes an object met twice as a YAML anchor and aliases; every item gets its own objects, so the
    file spells each one out, as it did when the role built the items through to_json and from_json.
    """
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def exception_items(exceptions, style):
    """One rule item per exception, so the triage tool's list maps line by line onto the file.

    Each item is the rule's name, the exception without its rule, then the generation's style keys (``override``
    from Falco 0.37, ``append`` before), in that order, as the file has always shown them.
    """
    items = []
    for index, exception in enumerate(exceptions):
        if not isinstance(exception, Mapping) or "rule" not in exception:
            raise AnsibleFilterError("falco_rule_files: falco_rule_exceptions item %d must be a dict with rule, name, "
                                     "fields, comps and values" % (index + 1))
        item = {"rule": exception["rule"], "exceptions": [{k: v for k, v in exception.items() if k != "rule"}]}
        item.update(style)
        items.append(plain(item))
    return items


def falco_rule_files(rulesets, local_rules=None, exceptions=None, exception_style=None):
    local_rules = local_rules or []
    exceptions = exceptions or []
    for name, value in (("falco_rulesets", rulesets), ("falco_local_rules", local_rules),
                        ("falco_rule_exceptions", exceptions)):
        if not isinstance(value, list):
            raise AnsibleFilterError("falco_rule_files: %s must be a list, got %s" % (name, type(value).__name__))
    if not all(isinstance(ruleset, Mapping) for ruleset in rulesets):
        raise AnsibleFilterError("falco_rule_files: every falco_rulesets item must be a dict with name and src")
    if not isinstance(exception_style, Mapping):
        raise AnsibleFilterError("falco_rule_files: exception_style must be a dict (override or append keys)")
    rendered = []
    if local_rules:
        rendered.append({"name": LOCAL_RULES_FILE, "data": local_rules})
    if exceptions:
        rendered.append({"name": EXCEPTIONS_FILE, "data": exception_items(exceptions, exception_style)})
    return {"ruleset_names": ruleset_names(rulesets), "rendered": rendered}


class FilterModule(object):
    def filters(self):
        return {"falco_rule_files": falco_rule_files}
