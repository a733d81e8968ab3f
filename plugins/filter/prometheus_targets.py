# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scrape targets for every inventory host, in one pass over hostvars."""

from __future__ import annotations

import json
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.compat.version import LooseVersion
from ansible.module_utils.parsing.convert_bool import boolean

DOCUMENTATION = r"""
name: prometheus_targets
short_description: Build Prometheus file_sd target groups and host labels from the inventory
version_added: 0.1.0
description:
  - Reads each target host's variables once (the expensive part of a big inventory is computing a host's variables),
    so the cost grows linearly with the fleet. Values a host leaves unset come from O(defaults), the other roles'
    defaults, which are not in hostvars.
  - Of O(defaults) only the variables the targets depend on are read, each once (a role's defaults file holds
    others, such as certificate lookups meant for its own hosts, which are never rendered here).
  - Plain values (numbers, booleans, strings that cannot hold a template) are taken as the inventory gives them
    (C(hostvars.raw_get)); only values that can hold a template are read through C(hostvars[host]), which templates
    them with the host's variables.
  - Booleans are read the way Ansible reads them, so C(-e falco_grpc_enabled=false) means false.
options:
  _input:
    description: C(hostvars).
    type: raw
    required: true
  job_hosts:
    description: Inventory hosts per kind of target; keys C(node-exporter), C(falco) (native metrics and the
      falco-exporter path), C(docker-exporter), C(falcosidekick).
    type: dict
    default: {}
  job_groups:
    description: Inventory groups per kind of target (keys as in O(job_hosts)), looked up in O(groups); their hosts
      join O(job_hosts)'s, each once. A group O(groups) does not have adds no host.
    type: dict
    default: {}
  groups:
    description: The inventory's groups (C(groups)), for O(job_groups).
    type: dict
    default: {}
  defaults:
    description:
      - Values for host variables a host leaves unset, a dict or a list of dicts (the other roles' defaults files,
        each read with C(include_vars)); the first that holds a variable gives its value.
    type: raw
    required: true
  label_vars:
    description: Host variables copied into target labels where a host sets them.
    type: list
    elements: str
    required: true
  address_var:
    description: Host variable holding the address to scrape; empty, or unset on a host, means the inventory name.
      A host that sets it to an empty value is reported in C(missing_address).
    type: str
    default: ""
  self_host:
    description: The Prometheus host; it gets labels even when it is no target.
    type: str
    default: ""
  native_min_version:
    description: First Falco version with native Prometheus metrics.
    type: str
    default: 0.39.0
  grpc_removed_version:
    description: First Falco version without gRPC (no falco-exporter).
    type: str
    default: 0.44.0
  with_groups:
    description: Also return C(jobs) and C(labels) as data. The roles need only C(files) and C(self_labels); with
      thousands of hosts, keeping the groups as a fact costs more than building them.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Compute the targets once
  ansible.builtin.set_fact:
    scrape: >-
      {{ hostvars | fleetwatch.falco_stack.prometheus_targets(
           job_groups={'node-exporter': ['falco', 'monitoring'], 'falco': ['falco']}, groups=groups,
           defaults={'falco_version': '0.44.1'}, label_vars=['cloud']) }}
"""

RETURN = r"""
_value:
  description: C(jobs) (with O(with_groups); job name to a list of C({targets, labels}) groups, one per host, for the jobs node-
    exporter, node-exporter-tls, falco, falco-tls, falco-exporter, falco-exporter-tls, docker-exporter and
    falcosidekick; the C(-tls) jobs hold the hosts whose C(node_exporter_tls_enabled), C(falco_metrics_tls_enabled)
    or C(falco_exporter_tls_enabled) is on), C(labels) (with O(with_groups); host to its labels), C(basic_auth_hosts)
    (hosts whose node_exporter or falco-exporter proxy asks for basic auth, each once),
    C(missing_address) (target hosts whose address variable is empty) and C(invalid_targets) (one line per host
    whose address or port Prometheus would refuse, naming the variable). C(self_labels) are the labels of
    O(self_host). C(unscraped_falco) lists the Falco hosts older than O(grpc_removed_version) that no job scrapes
    (C(falco_grpc_enabled) off, so no falco-exporter, and no native metrics, being older than O(native_min_version) or
    with C(falco_metrics_enabled) off), each a dict of C(host), C(falco_version) and C(native_metrics_supported), in
    inventory order.
    C(files) holds each job's file_sd file as JSON text (keys sorted, indented by two, ending in a newline), so the
    same targets always give the same bytes and a converged host sees no change. Prometheus reads JSON file_sd files
    natively.
  type: dict
"""

# A scrape address Prometheus accepts in a target: a DNS name or IPv4 address, or an IPv6 address in brackets.
ADDRESS = re.compile(r"^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])\Z")
PORT = re.compile(r"^[0-9]{1,5}\Z")
JOBS = ("node-exporter", "node-exporter-tls", "falco", "falco-tls", "falco-exporter", "falco-exporter-tls", "docker-exporter",
        "falcosidekick")


def _port(listen_address):
    return to_text(listen_address).rsplit(":", 1)[-1]


def _may_template(value):
    """Whether Ansible could template value: strings with a template marker, and containers (which may hold one)."""
    if value is None or isinstance(value, (bool, int, float)):
        return False
    if isinstance(value, str):
        return "{" in value or value.startswith("#jinja2:")
    return True


# The host variables the targets depend on; the only ones taken from the defaults.
TARGET_VARS = (
    "node_exporter_web_listen_address", "node_exporter_tls_enabled", "node_exporter_basic_auth_users",
    "falco_version", "falco_metrics_enabled", "falco_metrics_port", "falco_metrics_tls_enabled", "falco_grpc_enabled",
    "falco_exporter_listen_address", "falco_exporter_tls_enabled", "falco_exporter_basic_auth_users",
    "docker_metrics_port", "falcosidekick_listen_port",
)


def _target_defaults(defaults):
    """The defaults of TARGET_VARS as one plain dict, each value read (and so templated by Ansible) once: a lazy
    container hands a value out templated on every access, and the walk asks for them once per host."""
    sources = defaults if isinstance(defaults, (list, tuple)) else [defaults]
    found = {}
    for key in TARGET_VARS:
        for source in sources:
            if key in source:
                found[key] = source[key]
                break
    return found


class _Host:
    """One host's variables, computed once, with the other roles' defaults behind them."""

    def __init__(self, hostvars, name, defaults):
        if name not in hostvars:
            raise AnsibleFilterError("prometheus_targets: %s is in a target group but not in the inventory" % name)
        # Ansible's hostvars[name] templates every value it hands out, plain ones too (about a sixth of the walk's
        # time at 5,000 hosts); its public raw_get gives the same variables untemplated. Values that can hold a
        # template are read through hostvars[name]. Tests and other callers may pass a dict of dicts: nothing to
        # template there.
        raw_get = getattr(hostvars, "raw_get", None)
        self.vars = raw_get(name) if raw_get is not None else hostvars[name]
        self._hostvars = hostvars if raw_get is not None else None
        self._templating_view = None
        self.name = name
        self.defaults = defaults

    def value(self, key):
        """The host's value of key, templated where it can hold a template; the caller checks key is set."""
        value = self.vars[key]
        if self._hostvars is None or not _may_template(value):
            return value
        if self._templating_view is None:
            # Computes the host's variables a second time: only hosts with such values pay for it.
            self._templating_view = self._hostvars[self.name]
        return self._templating_view[key]

    def get(self, key):
        if key in self.vars:
            value = self.value(key)
            if value is not None:
                return value
        return self.defaults.get(key)

    def flag(self, key):
        if self.get(key) is None:
            return False
        try:
            return boolean(self.get(key), strict=True)
        except TypeError:
            raise AnsibleFilterError("%s: %s must be true or false, got %r" % (self.name, key, self.get(key)))


def _version_at_least(version, minimum):
    try:
        return LooseVersion(to_text(version)) >= LooseVersion(minimum)
    except TypeError:
        raise AnsibleFilterError("falco_version %r is not a version such as 0.44.1" % (version,))


def _file_sd_text(groups):
    """A job's target groups as the JSON file_sd file Prometheus reads; the same groups give the same bytes."""
    return json.dumps(groups, indent=2, sort_keys=True) + "\n"


def _job_members(job_hosts, job_groups, groups):
    """Host names per kind of target, as plain lists: Ansible hands filters lazy containers that template every
    element on each access, which adds up over thousands of hosts read several times."""
    members = {}
    for kind in ("node-exporter", "falco", "docker-exporter", "falcosidekick"):
        names = list(job_hosts.get(kind) or [])
        for group_name in job_groups.get(kind) or []:
            if group_name in groups:
                names.extend(groups[group_name])
        members[kind] = names
    return members


def prometheus_targets(hostvars, defaults, label_vars, job_hosts=None, address_var="", self_host="",
                       native_min_version="0.39.0", grpc_removed_version="0.44.0", with_groups=True, job_groups=None,
                       groups=None):
    job_hosts = _job_members(job_hosts or {}, job_groups or {}, groups or {})
    defaults = _target_defaults(defaults)
    hosts = {}
    order = []
    for kind in ("node-exporter", "falco", "docker-exporter", "falcosidekick"):
        for name in job_hosts[kind]:
            if name not in hosts:
                hosts[name] = _Host(hostvars, name, defaults)
                order.append(name)
    if self_host and self_host not in hosts:
        hosts[self_host] = _Host(hostvars, self_host, defaults)
        order.append(self_host)

    labels = {}
    for name in order:
        host_labels = {"host": "%s" % (name,)}
        for var in label_vars:
            if var in hosts[name].vars:
                value = hosts[name].value(var)
                if value is not None:
                    host_labels["%s" % (var,)] = "%s" % (to_text(value),)
        labels[name] = host_labels

    missing_address = []
    invalid = []

    def group(host, port, port_var):
        address, source = host.name, "the inventory name"
        if address_var and address_var in host.vars:
            address, source = to_text(host.value(address_var) or ""), address_var
            if not address:
                missing_address.append(host.name)
        if address and not ADDRESS.match(address):
            invalid.append("%s: %s %r is not a host name or address" % (host.name, source, address))
        port = to_text(port)
        if not PORT.match(port) or not 0 < int(port) < 65536:
            invalid.append("%s: %s %r is not a port" % (host.name, port_var, port))
        return {"targets": ["%s:%s" % (address, port)], "labels": labels[host.name]}

    def members(kind):
        """The hosts of one kind of target, each once, in inventory order."""
        seen = set()
        for name in job_hosts[kind]:
            if name not in seen:
                seen.add(name)
                yield hosts[name]

    jobs = dict((job, []) for job in JOBS)
    unscraped_falco = []
    basic_auth_hosts = []
    basic_auth_seen = set()
    for host in members("node-exporter"):
        job = "node-exporter-tls" if host.flag("node_exporter_tls_enabled") else "node-exporter"
        jobs[job].append(group(host, _port(host.get("node_exporter_web_listen_address")),
                               "node_exporter_web_listen_address"))
        if host.get("node_exporter_basic_auth_users"):
            basic_auth_seen.add(host.name)
            basic_auth_hosts.append(host.name)
    for host in members("falco"):
        version = host.get("falco_version")
        native_supported = _version_at_least(version, native_min_version)
        has_grpc = not _version_at_least(version, grpc_removed_version)
        if native_supported and host.flag("falco_metrics_enabled"):
            job = "falco-tls" if host.flag("falco_metrics_tls_enabled") else "falco"
            jobs[job].append(group(host, host.get("falco_metrics_port"), "falco_metrics_port"))
        elif has_grpc and not host.flag("falco_grpc_enabled"):
            # Neither path: left out of Prometheus. Reported, since nothing else would show it (a 0.44 host with
            # metrics off has no other path and chose that).
            unscraped_falco.append({"host": "%s" % (host.name,), "falco_version": "%s" % (to_text(version),),
                                    "native_metrics_supported": native_supported})
        if has_grpc and host.flag("falco_grpc_enabled"):
            exporter_port = _port(host.get("falco_exporter_listen_address"))
            job = "falco-exporter-tls" if host.flag("falco_exporter_tls_enabled") else "falco-exporter"
            jobs[job].append(group(host, exporter_port, "falco_exporter_listen_address"))
            # The TLS proxy in front of falco-exporter asks for basic auth as node_exporter does.
            if host.get("falco_exporter_basic_auth_users") and host.name not in basic_auth_seen:
                basic_auth_seen.add(host.name)
                basic_auth_hosts.append(host.name)
    for kind, port_var in (("docker-exporter", "docker_metrics_port"), ("falcosidekick", "falcosidekick_listen_port")):
        for host in members(kind):
            jobs[kind].append(group(host, host.get(port_var), port_var))
    files = dict((job, _file_sd_text(groups)) for job, groups in jobs.items())
    result = {"self_labels": labels.get(self_host, {}), "files": files, "basic_auth_hosts": basic_auth_hosts,
              "missing_address": sorted(set(missing_address)), "invalid_targets": sorted(set(invalid)),
              "unscraped_falco": unscraped_falco}
    if with_groups:
        result.update(jobs=jobs, labels=labels)
    return result


class FilterModule(object):
    def filters(self):
        return {"prometheus_targets": prometheus_targets}
