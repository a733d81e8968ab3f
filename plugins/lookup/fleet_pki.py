# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates and keys of the collection's CA (role fleet_pki), read on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_pki
short_description: Read the CA certificate, or a host's certificate or key, made by the fleet_pki role
version_added: 0.1.0
description:
  - The fleet_pki role keeps its CA and one server certificate per inventory host in a directory on the controller
    (C(fleetwatch_pki_dir), default C(~/.fleetwatch/pki)). This lookup is the one place that knows the layout,
    C(ca.crt), C(hosts/HOST.crt), C(hosts/HOST.key). The roles' defaults read their TLS material through it when
    C(fleetwatch_tls_enabled) is on.
  - A missing file is an error that names the file and says to run the fleet_pki role (playbooks/pki.yml) or to set
    the role's own certificate variables.
options:
  _terms:
    description: What to return. C(ca), C(cert), C(key) return PEM content; C(ca_path), C(ca_key_path),
      C(cert_path), C(key_path), C(dir) return paths on the controller (they need not exist). C(users) returns the
      fleet's credential as a dict of user name to password (a web configuration's basic_auth_users), C(basic_auth) as
      a dict with username and password (a client's), from C(fleetwatch_scrape_username) (default C(prometheus)) and
      C(fleetwatch_scrape_password) (empty when unset; the roles' preflight refuses that).
    type: list
    elements: str
    required: true
  host:
    description: Inventory host whose certificate or key is meant; default the current C(inventory_hostname).
    type: str
  dir:
    description: The PKI directory; default the variable C(fleetwatch_pki_dir), else C(~/.fleetwatch/pki).
    type: str
"""

EXAMPLES = r"""
- name: The CA Prometheus trusts
  ansible.builtin.debug:
    msg: "{{ lookup('fleetwatch.falco_stack.fleet_pki', 'ca') }}"
"""

RETURN = r"""
_raw:
  description: One PEM text, path or credential dict per term.
  type: list
  elements: raw
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.lookup import LookupBase

DEFAULT_DIR = "~/.fleetwatch/pki"
FILES = {"ca": "ca.crt", "cert": "hosts/{host}.crt", "key": "hosts/{host}.key"}


def pki_path(directory, what, host):
    """Path of one PKI file; the single definition of the layout."""
    if what == "dir":
        return os.path.expanduser(directory)
    if what == "ca_key":
        return os.path.join(os.path.expanduser(directory), "ca.key")
    if what not in FILES:
        raise AnsibleLookupError("fleet_pki: unknown term %r; use one of ca, cert, key, ca_path, cert_path, key_path, dir"
                                 % (what,))
    if what != "ca" and (not host or "/" in host or host.startswith(".")):
        raise AnsibleLookupError("fleet_pki: %r is not an inventory host name that can name a file" % (host,))
    return os.path.join(os.path.expanduser(directory), FILES[what].format(host=host))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        unknown = sorted(set(kwargs) - {"host", "dir"})
        if unknown:
            raise AnsibleLookupError("fleet_pki: unknown option(s) %s; it takes host and dir" % ", ".join(unknown))
        variables = variables or {}
        host = kwargs.get("host") or variables.get("inventory_hostname") or ""
        directory = kwargs.get("dir") or variables.get("fleetwatch_pki_dir") or DEFAULT_DIR
        host, directory = to_text(self._templar.template(host)), to_text(self._templar.template(directory))
        results = []
        for term in terms:
            term = to_text(term)
            if term in ("users", "basic_auth"):
                username = to_text(self._templar.template(variables.get("fleetwatch_scrape_username") or "prometheus"))
                password = to_text(self._templar.template(variables.get("fleetwatch_scrape_password") or ""))
                results.append({username: password} if term == "users" else {"username": username, "password": password})
                continue
            if term.endswith("_path") or term == "dir":
                results.append(pki_path(directory, term[:-5] if term.endswith("_path") else term, host))
                continue
            path = pki_path(directory, term, host)
            try:
                with open(path, "r", encoding="utf-8") as handle:
                    results.append(handle.read())
            except (IOError, OSError) as error:
                raise AnsibleLookupError(
                    "fleet_pki: cannot read %s (%s). With fleetwatch_tls_enabled the certificates come from the "
                    "collection's CA: run the fleet_pki role for every host first (playbooks/pki.yml, which "
                    "playbooks/site.yml imports), point fleetwatch_pki_dir at the directory holding them, or set the "
                    "role's own certificate variables." % (path, to_text(error.strerror or error)))
        return results
