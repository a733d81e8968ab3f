# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""falcosidekick's outputs as its config.yaml holds them, from the falcosidekick role's variables."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.utils.vars import merge_hash

DOCUMENTATION = r"""
name: falcosidekick_outputs
short_description: Complete falcosidekick's outputs with the collection's Alertmanager and the web UI
version_added: 0.1.0
description:
  - The part of the falcosidekick role's C(config.yaml) that is logic rather than shape; the role's template
    C(config.yaml.j2) places the result in the file, and its preflight checks the same outputs.
  - O(_input) (C(falcosidekick_outputs)) verbatim, in its order, except for two outputs.
  - C(alertmanager), when O(_input) has it, is the collection's Alertmanager on this host with the user's keys on top
    (the user's values win). C(hostport) is O(alertmanager_listen) reached from this host (a wildcard or empty
    address means the loopback, C(0.0.0.0) and empty C(127.0.0.1), C([::]) C([::1])), over C(https) when
    O(alertmanager_ca_cert) is set; C(endpoint) is Alertmanager's API v2 (0.27 removed v1, falcosidekick's default);
    C(extralabels) names the alerts C(FalcoEvent), since falcosidekick sets no alertname. With a CA, C(checkcert) is
    true; with O(alertmanager_basic_auth), C(customHeaders) carries its C(Authorization) header.
  - C(webui), when O(ui_enabled), points at falcosidekick-ui on this host (a wildcard or empty O(ui_listen_address)
    means the loopback, C(::) C([::1])).
options:
  _input:
    description: The outputs (C(falcosidekick_outputs)), output name to its keys as falcosidekick names them.
    type: dict
    required: true
  alertmanager_listen:
    description: Alertmanager's listen address, C(host:port) (C(alertmanager_web_listen_address)).
    type: str
    default: 0.0.0.0:9093
  alertmanager_ca_cert:
    description: The CA Alertmanager's certificate is checked against, PEM (C(falcosidekick_alertmanager_ca_cert)); empty
      for plain HTTP.
    type: str
    default: ""
  alertmanager_basic_auth:
    description: C(username) and C(password) towards Alertmanager (C(falcosidekick_alertmanager_basic_auth)); empty for
      none.
    type: dict
    default: {}
  ui_enabled:
    description: Whether falcosidekick-ui runs beside falcosidekick (C(falcosidekick_ui_enabled)).
    type: bool
    default: false
  ui_listen_address:
    description: falcosidekick-ui's listen address (C(falcosidekick_ui_listen_address)).
    type: str
    default: 0.0.0.0
  ui_listen_port:
    description: falcosidekick-ui's port (C(falcosidekick_ui_listen_port)).
    type: int
    default: 2802
"""

EXAMPLES = r"""
- name: The outputs of falcosidekick's config.yaml
  ansible.builtin.debug:
    msg: >-
      {{ falcosidekick_outputs | fleetwatch.falco_stack.falcosidekick_outputs(
           alertmanager_listen=alertmanager_web_listen_address | default('0.0.0.0:9093'),
           alertmanager_ca_cert=falcosidekick_alertmanager_ca_cert,
           alertmanager_basic_auth=falcosidekick_alertmanager_basic_auth,
           ui_enabled=falcosidekick_ui_enabled | bool, ui_listen_address=falcosidekick_ui_listen_address,
           ui_listen_port=falcosidekick_ui_listen_port) }}
"""

RETURN = r"""
_value:
  description: The outputs for the top level of C(config.yaml), output name to its keys.
  type: dict
"""

# Where a client on this host reaches a service listening on a wildcard (or unnamed) address.
ALERTMANAGER_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}
UI_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}


def alertmanager_hostport(listen, tls):
    """scheme://host:port of an Alertmanager listening on ``listen``, as a client on the same host reaches it.

    The host is ``listen`` without its trailing ``:port``, the port whatever follows the last colon. The role's
    preflight refuses a ``listen`` without a port before this runs.
    """
    listen = to_text(listen)
    host = re.sub(r":[0-9]+$", "", listen)
    port = re.sub(r"^.*:", "", listen)
    return "%s://%s:%s" % ("https" if tls else "http", ALERTMANAGER_LOOPBACK.get(host, host), port)


def basic_auth_header(basic_auth):
    """The Authorization header value of HTTP basic auth for a dict with username and password."""
    credential = to_text(basic_auth.get("username")) + ":" + to_text(basic_auth.get("password"))
    return "Basic " + to_text(base64.b64encode(to_bytes(credential, errors="surrogate_or_strict")))


def alertmanager_defaults(listen, ca_cert, basic_auth):
    """The keys of the alertmanager output that the collection's Alertmanager needs, before the user's own."""
    defaults = {"hostport": alertmanager_hostport(listen, bool(ca_cert)), "endpoint": "/api/v2/alerts",
                "extralabels": "alertname:FalcoEvent"}
    if ca_cert:
        defaults["checkcert"] = True
    if basic_auth:
        defaults["customHeaders"] = {"Authorization": basic_auth_header(basic_auth)}
    return defaults


def falcosidekick_outputs(outputs, alertmanager_listen="0.0.0.0:9093", alertmanager_ca_cert="",
                          alertmanager_basic_auth=None, ui_enabled=False, ui_listen_address="0.0.0.0",
                          ui_listen_port=2802):
    if not isinstance(outputs, Mapping):
        raise AnsibleFilterError("falcosidekick_outputs: falcosidekick_outputs must be a dict of outputs, got %s"
                                 % type(outputs).__name__)
    basic_auth = alertmanager_basic_auth or {}
    if not isinstance(basic_auth, Mapping):
        raise AnsibleFilterError("falcosidekick_outputs: falcosidekick_alertmanager_basic_auth must be a dict with "
                                 "username and password, or {}")
    # merge_hash is what the combine filter runs, so the outputs keep the order and values they had when the role
    # merged them in Jinja.
    completed = dict(outputs)
    if "alertmanager" in outputs:
        # An output named without keys (null, {}) is the collection's Alertmanager as it is.
        own = outputs["alertmanager"] or {}
        if not isinstance(own, Mapping):
            raise AnsibleFilterError("falcosidekick_outputs: falcosidekick_outputs.alertmanager must be a dict of "
                                     "falcosidekick's alertmanager keys, got %s" % type(own).__name__)
        defaults = alertmanager_defaults(alertmanager_listen, alertmanager_ca_cert, basic_auth)
        completed = merge_hash(completed, {"alertmanager": merge_hash(defaults, dict(own), recursive=False)},
                               recursive=False)
    if ui_enabled:
        host = to_text(ui_listen_address)
        url = "http://%s:%s" % (UI_LOOPBACK.get(host, host), to_text(ui_listen_port))
        completed = merge_hash(completed, {"webui": {"url": url}}, recursive=False)
    return completed


class FilterModule(object):
    def filters(self):
        return {"falcosidekick_outputs": falcosidekick_outputs}
