# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide which smoke events a host can produce (playbooks/smoke.yml)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_smoke import SmokeError, smoke_plan

DOCUMENTATION = r"""
name: falco_smoke_plan
short_description: The smoke events a host can produce, each with a marker unique to the host and run
version_added: 0.1.0
description:
  - From what the M(fleetwatch.falco_stack.falco_smoke_probe) module found on a host, decides what
    playbooks/smoke.yml does there.
  - The tutorial's three events where their rules are enabled (a file written below /bin; a privileged container and
    a container with the host's /etc mounted where a container engine and a local image exist). Where any of the
    tutorial's rules is not loaded or disabled (a host on the falco role's defaults loads only the stable rules),
    also events the stable rules detect (/etc/shadow read by cat, a symbolic link to /etc/shadow, a shell with a
    terminal in a container).
  - An event whose rule is not enabled, or that needs a container the host cannot start, is planned as
    C(not tested) with the reason, never run and never passed.
  - Every event's command carries the event's marker (in the command line or a file name), which its alert must
    carry back.
options:
  _input:
    description: The registered result of the falco_smoke_probe module.
    type: dict
    required: true
  run_id:
    description: Letters and digits unique to this smoke run, the same for every host.
    type: str
    required: true
  host:
    description: The inventory host name.
    type: str
    required: true
  image:
    description: Image to start the container events from, instead of the one the probe chose.
    type: str
"""

EXAMPLES = r"""
- name: Plan the smoke events
  ansible.builtin.set_fact:
    smoke_plan: >-
      {{ smoke_probe | fleetwatch.falco_stack.falco_smoke_plan(run_id=smoke_run_id, host=inventory_hostname) }}
"""

RETURN = r"""
_value:
  description: What to do on the host.
  type: dict
  contains:
    host: {description: The inventory host name., type: str}
    hostname: {description: The hostname this host's Falco writes into its alerts., type: str}
    marker: {description: The host's marker; each event's marker starts with it., type: str}
    problem: {description: Why nothing can be tested on the host (empty when something can)., type: str}
    suite: {description: "C(tutorial), or C(tutorial and stable) where the tutorial's rules are not all enabled.",
            type: str}
    alerts: {description: "Where the host's alerts are read: C(journal) (bool) and C(file) (path or empty).",
             type: dict}
    engine: {description: The container engine, empty when none., type: str}
    image: {description: The image of the container events, empty when none., type: str}
    events:
      description: "One per event: C(id), C(title), C(suite), C(rules) (those that count), C(marker), C(command),
        C(status) (C(run) or C(not tested)) and C(reason)."
      type: list
      elements: dict
"""


def falco_smoke_plan(probe, run_id, host, image=None):
    try:
        return smoke_plan(probe, run_id, host, image=image or None)
    except SmokeError as exc:
        raise AnsibleFilterError("falco_smoke_plan: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"falco_smoke_plan": falco_smoke_plan}
