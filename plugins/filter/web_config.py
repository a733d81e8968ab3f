# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Prometheus exporter-toolkit web configuration (TLS and basic auth), shared by every role that serves one."""

from __future__ import annotations

import hashlib

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

try:
    import bcrypt
except ImportError:
    bcrypt = None

DOCUMENTATION = r"""
name: web_config
short_description: Build an exporter-toolkit web configuration (tls_server_config, basic_auth_users)
version_added: 0.1.0
description:
  - node_exporter, Prometheus and Alertmanager read the same C(--web.config.file) format. The filter turns clear-text
    users into bcrypt hashes with a salt derived from O(salt_seed) (the host name), so a re-run renders the same hash
    and reports no change; the clear-text password never reaches the host.
  - Empty O(_input) and O(tls=false) give an empty dict (no web configuration needed).
  - Hashing needs the Python library bcrypt on the controller (C(pip install bcrypt)); bcrypt reads at most 72
    bytes of a password, so a longer one is refused rather than cut short.
requirements:
  - bcrypt (Python library, on the controller)
options:
  _input:
    description: User name to clear-text password.
    type: dict
    required: true
  tls:
    description: Whether to add C(tls_server_config).
    type: bool
    default: false
  cert_file:
    description: Path of the server certificate on the host.
    type: str
    default: ""
  key_file:
    description: Path of the server key on the host.
    type: str
    default: ""
  salt_seed:
    description: Text the bcrypt salt is derived from (the inventory host name).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Web configuration of an exporter
  ansible.builtin.set_fact:
    web: "{{ {'prometheus': vault_password} | fleetwatch.falco_stack.web_config(tls=true, cert_file='/etc/x/tls.crt',
            key_file='/etc/x/tls.key', salt_seed=inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: A dict with C(tls_server_config) (C(cert_file), C(key_file)) when O(tls), and C(basic_auth_users)
    (user to bcrypt hash) when O(_input) is not empty.
  type: dict
"""


# bcrypt's own limit: it reads no more of a password than this.
BCRYPT_MAX_PASSWORD_BYTES = 72


def bcrypt_salt(seed):
    """22 characters of bcrypt's alphabet from the seed, the last one leaving the padding bits clear."""
    return hashlib.sha256(to_text(seed).encode("utf-8")).hexdigest()[:21] + "e"


def web_config(users, salt_seed, tls=False, cert_file="", key_file=""):
    if not isinstance(users, dict):
        raise AnsibleFilterError("web_config: the users must be a dict of user name to password, got %s"
                                 % type(users).__name__)
    config = {}
    if tls:
        if not cert_file or not key_file:
            raise AnsibleFilterError("web_config: tls=true needs cert_file and key_file")
        config["tls_server_config"] = {"cert_file": to_text(cert_file), "key_file": to_text(key_file)}
    if users:
        if bcrypt is None:
            raise AnsibleFilterError("web_config: hashing the basic auth passwords needs the Python library bcrypt on "
                                     "the controller: pip install bcrypt")
        # $2b$, cost 12: the format and cost Prometheus's exporter-toolkit documents, and the hashes earlier
        # releases rendered (through passlib), so a converged host sees no change.
        salt = ("$2b$12$" + bcrypt_salt(salt_seed)).encode("ascii")
        hashed = {}
        for name, password in users.items():
            if not password:
                raise AnsibleFilterError("web_config: user %r has an empty password" % (to_text(name),))
            secret = to_text(password).encode("utf-8")
            if len(secret) > BCRYPT_MAX_PASSWORD_BYTES:
                raise AnsibleFilterError("web_config: the password of user %r is %d bytes long; bcrypt reads at most %d: "
                                         "use a shorter one" % (to_text(name), len(secret), BCRYPT_MAX_PASSWORD_BYTES))
            hashed[to_text(name)] = to_text(bcrypt.hashpw(secret, salt))
        config["basic_auth_users"] = hashed
    return config


class FilterModule(object):
    def filters(self):
        return {"web_config": web_config}
