# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which series of a Prometheus instant query rose between two answers."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: counters_risen
short_description: Label values whose counter rose between two Prometheus query answers
version_added: 0.1.0
description:
  - Compares two answers of the same instant vector query (the JSON of C(/api/v1/query)) and returns the values of
    one label for the series whose value is higher in the later answer. A series missing from the earlier answer
    counts from zero (Falco's rule counters appear only after a rule's first match).
  - A series lower than before, but above zero, is a counter that restarted in between and counted again, and is
    returned too, since Falco restarts with every configuration change, and its counters with it (Prometheus's rate
    functions read a decrease the same way).
options:
  _input:
    description: The later answer, as returned by the query API.
    type: dict
    required: true
  before:
    description: The earlier answer of the same query.
    type: dict
    required: true
  label:
    description: The label whose values are returned; every series of the query must carry it.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Rules that matched since the first query
  ansible.builtin.debug:
    msg: "{{ after.json | fleetwatch.falco_stack.counters_risen(before.json, 'rule') }}"
"""

RETURN = r"""
_value:
  description: The label values of the series that rose, sorted.
  type: list
  elements: str
"""


def _values(answer, label):
    try:
        if answer["status"] != "success" or answer["data"]["resultType"] != "vector":
            raise AnsibleFilterError("counters_risen: not a successful instant vector answer: %r" % (answer,))
        return dict((series["metric"][label], float(series["value"][1])) for series in answer["data"]["result"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise AnsibleFilterError("counters_risen: unexpected query answer (%s): %r" % (exc, answer))


def counters_risen(after, before, label):
    earlier = _values(before, label)
    # Different and above zero: either it rose, or the process restarted (counters back to zero) and counted again.
    return sorted(value for value, count in _values(after, label).items() if count > 0 and count != earlier.get(value, 0.0))


class FilterModule(object):
    def filters(self):
        return {"counters_risen": counters_risen}
