# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter that turns a role check's failed result into entries of the fleet preflight's list."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: preflight_problems
short_description: The problems a failed preflight check reports, one entry each
version_added: 0.1.0
description:
  - The fleet-wide preflight (C(playbooks/preflight.yml)) runs each role's checks on every host and, instead of
    stopping the host at a refusal, notes it in the host's list of problems. This filter reads the failed result
    (C(ansible_failed_result) in a C(rescue)) and returns one entry per problem it reports.
  - An argument spec refusal (C(ansible.builtin.validate_argument_spec)) gives one entry per error, with the role's
    variables the error names. A loop gives one entry per failed item. Anything else gives one entry with its message.
options:
  _input:
    description: The failed task's result, C(ansible_failed_result).
    type: dict
    required: true
  role:
    description: The role whose checks failed, such as C(falco).
    type: str
    required: true
  check:
    description: What was checked, usually the failed task's name (C(ansible_failed_task.name)).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Run the role's checks and note what they refuse
  block:
    - name: The role's own checks
      ansible.builtin.include_role:
        name: fleetwatch.falco_stack.falco
        tasks_from: preflight
  rescue:
    - name: Note the refusal
      ansible.builtin.set_fact:
        problems: "{{ problems + ansible_failed_result | fleetwatch.falco_stack.preflight_problems('falco', ansible_failed_task.name) }}"
"""

RETURN = r"""
_value:
  description: One entry per problem, each C({role, check, variables, message}); C(variables) lists the role's
    variables the problem is known to be about (empty when the message itself names them).
  type: list
  elements: dict
"""

SPEC_CHECK = "argument specs"
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def message_of(result):
    """The readable message of a result: a list message joined, whitespace folded."""
    msg = result.get("msg", "")
    if isinstance(msg, (list, tuple)):
        msg = "; ".join(str(part) for part in msg)
    msg = " ".join(str(msg).split())
    if result.get("unreachable"):
        msg = "did not answer: " + msg
    return msg or "failed without a message (see the task's output above)"


def names_in(text, known):
    """The known names that appear as words in text, in order of appearance, each once."""
    found = []
    for word in WORD.findall(text):
        if word in known and word not in found:
            found.append(word)
    return found


def entry(role, check, message, variables=()):
    return {"role": role, "check": check, "variables": list(variables), "message": message}


def preflight_problems(result, role, check=""):
    if not isinstance(result, dict):
        raise AnsibleFilterError("preflight_problems: expected a task result (a dict), got %s" % type(result).__name__)
    errors = result.get("argument_errors")
    if errors:
        known = set(result.get("argument_spec_data") or ())
        return [entry(role, SPEC_CHECK, " ".join(str(error).split()), names_in(str(error), known)) for error in errors]
    items = [item for item in result.get("results") or () if isinstance(item, dict) and item.get("failed")]
    if items:
        return [entry(role, check, message_of(item)) for item in items]
    return [entry(role, check, message_of(result))]


class FilterModule(object):
    def filters(self):
        return {"preflight_problems": preflight_problems}
