# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The routes and receivers of alertmanager.yml, from the alertmanager role's variables."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.utils.vars import merge_hash

DOCUMENTATION = r"""
name: alertmanager_routing
short_description: Build Alertmanager's routes and receivers from receivers given as data and routing maps
version_added: 0.1.0
description:
  - The part of the alertmanager role's C(alertmanager.yml) that is logic rather than shape; the role's template
    C(alertmanager.yml.j2) places the result in the file.
  - Routes, in the order Alertmanager checks them, O(extra_routes) verbatim, then one route per entry of
    O(host_receivers) (matcher C(host="...") and C(continue), so the severity routes still see the alert), then one
    per entry of O(severity_receivers) (matcher C(severity="...")).
  - Receivers, O(_input) in its order; a receiver without integrations named C(null) is added at the end when
    O(default_receiver), O(host_receivers) or O(severity_receivers) name it and O(_input) does not define it.
  - Each C(slack_configs) and C(email_configs) entry of a receiver gets the texts of O(template_texts) for that
    integration that it does not set itself, merged as Ansible's C(combine) filter merges with C(recursive=true)
    (the receiver's own values win, also inside C(headers)). An empty O(template_texts) leaves the receivers
    verbatim.
options:
  _input:
    description: The receivers (C(alertmanager_receivers)), each a dict with a C(name), in Alertmanager's format.
    type: list
    elements: dict
    required: true
  default_receiver:
    description: Receiver of alerts no route matches (C(alertmanager_default_receiver)).
    type: str
    required: true
  severity_receivers:
    description: Severity label value to receiver name (C(alertmanager_severity_receivers)).
    type: dict
    default: {}
  host_receivers:
    description: Host label value to receiver name (C(alertmanager_host_receivers)).
    type: dict
    default: {}
  extra_routes:
    description: Routes checked before the generated ones, verbatim (C(alertmanager_extra_routes)).
    type: list
    elements: dict
    default: []
  template_texts:
    description: Integration key (C(slack_configs), C(email_configs)) to the fields filled into each of its entries
      that does not set them.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Routes and receivers of alertmanager.yml
  ansible.builtin.debug:
    msg: >-
      {{ alertmanager_receivers | fleetwatch.falco_stack.alertmanager_routing(
           default_receiver=alertmanager_default_receiver, severity_receivers=alertmanager_severity_receivers,
           host_receivers=alertmanager_host_receivers, extra_routes=alertmanager_extra_routes,
           template_texts={'slack_configs': {'text': '{{ template "fleetwatch.slack.text" . }}'}}) }}
"""

RETURN = r"""
_value:
  description: A dict with C(routes) (the list for the top-level route's C(routes)) and C(receivers) (the list for
    C(receivers)).
  type: dict
"""

# The receiver a route may name without defining it: Alertmanager drops what reaches a receiver without integrations.
NULL_RECEIVER = "null"


def routes(extra_routes, host_receivers, severity_receivers):
    """Extra routes, then host routes (continue: the severity routes still apply), then severity routes."""
    host_routes = [{"receiver": receiver, "matchers": ['host="%s"' % to_text(host)], "continue": True}
                   for host, receiver in host_receivers.items()]
    severity_routes = [{"receiver": receiver, "matchers": ['severity="%s"' % to_text(severity)]}
                       for severity, receiver in severity_receivers.items()]
    return list(extra_routes) + host_routes + severity_routes


def null_receivers(receivers, default_receiver, host_receivers, severity_receivers):
    """[{"name": "null"}] when a generated route or the default names "null" and no receiver defines it, else []."""
    used = [default_receiver] + list(severity_receivers.values()) + list(host_receivers.values())
    defined = [receiver.get("name") for receiver in receivers]
    return [{"name": NULL_RECEIVER}] if NULL_RECEIVER in used and NULL_RECEIVER not in defined else []


def with_template_texts(receiver, template_texts):
    """The receiver with each of its Slack and email entries merged over the texts (the entry's values win).

    merge_hash is what combine(recursive=true) runs, so a receiver renders exactly as it did when the role merged
    the texts in Jinja.
    """
    filled = receiver
    for kind, texts in template_texts.items():
        if kind not in receiver:
            continue
        configs = receiver[kind]
        if not isinstance(configs, list) or not all(isinstance(config, Mapping) for config in configs):
            raise AnsibleFilterError("alertmanager_routing: %s of receiver %r must be a list of dicts (check "
                                     "alertmanager_receivers)" % (kind, to_text(receiver.get("name"))))
        filled = merge_hash(filled, {kind: [merge_hash(texts, config) for config in configs]}, recursive=False)
    return filled


def alertmanager_routing(receivers, default_receiver, severity_receivers=None, host_receivers=None, extra_routes=None,
                         template_texts=None):
    severity_receivers = severity_receivers or {}
    host_receivers = host_receivers or {}
    extra_routes = extra_routes or []
    # One dict of texts for the whole file: entries that set no headers share the texts' headers dict, as they did
    # when the role merged the texts in Jinja, so the YAML (an anchor and its aliases) stays the same.
    template_texts = dict(template_texts or {})
    for name, value in (("alertmanager_receivers", receivers), ("alertmanager_extra_routes", extra_routes)):
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise AnsibleFilterError("alertmanager_routing: %s must be a list of dicts" % name)
    for name, value in (("alertmanager_severity_receivers", severity_receivers),
                        ("alertmanager_host_receivers", host_receivers), ("template_texts", template_texts)):
        if not isinstance(value, Mapping):
            raise AnsibleFilterError("alertmanager_routing: %s must be a dict, got %s" % (name, type(value).__name__))
    return {
        "routes": routes(extra_routes, host_receivers, severity_receivers),
        "receivers": [with_template_texts(receiver, template_texts) for receiver in receivers]
        + null_receivers(receivers, default_receiver, host_receivers, severity_receivers),
    }


class FilterModule(object):
    def filters(self):
        return {"alertmanager_routing": alertmanager_routing}
