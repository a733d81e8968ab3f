# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test for the HOST:PORT listen and peer addresses the roles' preflights check."""

from __future__ import annotations

import ipaddress
import re

DOCUMENTATION = r"""
name: host_port
short_description: Is the value a HOST:PORT address a service can listen on or be reached at
version_added: 0.1.0
description:
  - Accepts a string C(HOST:PORT) where C(HOST) is empty (every address of the host), a name or IPv4 address made of
    letters, digits, C(_), C(.) and C(-), or an IPv6 address in square brackets (without a zone such as C(%eth0)),
    and C(PORT) is a number from 1 to 65535 (at most five digits).
  - Refuses anything else, such as an address without a port, port 0 (a port the kernel picks, which no scraper can
    find), an IPv6 address without brackets, whitespace anywhere, a trailing newline, and values that are not strings.
  - The form Prometheus, Alertmanager, node_exporter, falco-exporter and falcosidekick take for their addresses, so a
    preflight refuses a wrong value before a service fails to start with it.
options:
  _input:
    description: The value to check; only a string can be a C(HOST:PORT) address.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse a listen address without a usable port
  ansible.builtin.assert:
    that: node_exporter_web_listen_address is fleetwatch.falco_stack.host_port
    fail_msg: >-
      node_exporter_web_listen_address must be HOST:PORT, port 1-65535 (got '{{ node_exporter_web_listen_address }}')

# '0.0.0.0:9100' is fleetwatch.falco_stack.host_port  -> true
# ':9100' is fleetwatch.falco_stack.host_port         -> true (every address)
# '[::1]:9093' is fleetwatch.falco_stack.host_port    -> true
# '::1:9093' is fleetwatch.falco_stack.host_port      -> false (IPv6 needs brackets)
# '0.0.0.0:0' is fleetwatch.falco_stack.host_port     -> false
# 'localhost' is fleetwatch.falco_stack.host_port     -> false
"""

RETURN = r"""
_value:
  description: V(true) when the value is a C(HOST:PORT) string as described, V(false) otherwise.
  type: boolean
"""

# The host is optional (empty means every address); bracket contents are checked as IPv6 below.
HOST_PORT = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|[A-Za-z0-9_.-]*):(?P<port>[0-9]{1,5})")


def host_port(value):
    if not isinstance(value, str):
        return False
    match = HOST_PORT.fullmatch(value)
    if match is None or not 1 <= int(match.group("port")) <= 65535:
        return False
    if match.group("ipv6") is not None:
        try:
            ipaddress.IPv6Address(match.group("ipv6"))
        except ValueError:
            return False
    return True


class TestModule(object):
    def tests(self):
        return {"host_port": host_port}
