#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What playbooks/smoke.yml needs to know about a host before it causes events there."""

from __future__ import annotations

DOCUMENTATION = r"""
module: falco_smoke_probe
short_description: Find the running Falco, the rules it has enabled, where its alerts go and a container engine
version_added: 0.1.0
description:
  - Looks once at a host for the smoke test (playbooks/smoke.yml) and returns what it found; changes nothing.
  - The active Falco unit, and the hostname its alerts carry (C(FALCO_HOSTNAME) in the running process's environment,
    else the host's name).
  - The rules Falco has enabled, as Falco itself lists them (C(falco -L) with JSON output), with the configuration's
    C(rules:) selection applied (C(falco --support) shows the merged configuration; C(-L) does not apply it). A Falco
    too old to list its rules in JSON falls back to the C(- rule:) items of its rules files.
  - Where the alerts can be read on the host (syslog, that is the journal, and file output), and whether they are
    JSON.
  - The first container engine that answers (podman, then docker) and a local image to start (O(image) when given
    and present, else the first the engine has).
options:
  units:
    description: Falco units to look for, the first active one wins.
    type: list
    elements: str
    default: [falco-modern-bpf.service, falco-kmod.service, falco-custom.service, falco-bpf.service, falco.service]
  engines:
    description: Container engines to try, in order.
    type: list
    elements: str
    default: [podman, docker]
  image:
    description: Image to start the container events from; must already be on the host (nothing is pulled).
      Empty to take the first local image.
    type: str
    default: ""
  falco:
    description: The Falco binary.
    type: str
    default: falco
attributes:
  check_mode:
    description: Reads only; runs in check mode as in a normal run.
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
author:
  - fleetwatch engineers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Look at the host
  fleetwatch.falco_stack.falco_smoke_probe:
  register: probe

- name: Plan the smoke events from it
  ansible.builtin.set_fact:
    plan: "{{ probe | fleetwatch.falco_stack.falco_smoke_plan(run_id='1234', host=inventory_hostname) }}"
"""

RETURN = r"""
unit:
  description: The active Falco unit, empty when none is active (the other keys about Falco are then empty too).
  returned: always
  type: str
  sample: falco-modern-bpf.service
hostname:
  description: The hostname this Falco writes into its alerts.
  returned: always
  type: str
  sample: web-01
version:
  description: Falco's version, as C(falco --support) reports it.
  returned: always
  type: str
  sample: 0.44.1
rules:
  description: Every rule Falco loads, name to whether it is enabled (after the configuration's selection).
  returned: always
  type: dict
rules_source:
  description: C(falco -L) or, for an older Falco, C(rules files).
  returned: always
  type: str
outputs:
  description: C(json) (bool), C(journal) (syslog output on, bool), C(file) (file output path, empty when off).
  returned: always
  type: dict
engine:
  description: The container engine that answered; empty when none did, and when no Falco runs (none is asked).
  returned: always
  type: str
image:
  description: The local image the container events start, empty when there is none.
  returned: always
  type: str
image_problem:
  description: Why there is no image, when there is an engine but no image.
  returned: always
  type: str
time:
  description: The host's clock (seconds since the epoch) when it was probed; alerts are read from then on.
  returned: always
  type: int
"""

import glob
import os
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_smoke import (
    SmokeError,
    apply_selection,
    hostname_from_environ,
    hostname_from_unit_environment,
    outputs_from_support,
    rules_from_files,
    rules_from_listing,
)

RULES_FILES = ("/etc/falco/falco_rules.yaml", "/etc/falco/falco_rules.local.yaml", "/etc/falco/rules.d/*.yaml",
               "/etc/falco/rules.d/*.yml")


def active_unit(module, units):
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return ""
    for unit in units:
        rc, _out, _err = module.run_command([systemctl, "is-active", "--quiet", unit])
        if rc == 0:
            return unit
    return ""


def falco_hostname(module, unit):
    systemctl = module.get_bin_path("systemctl", required=True)
    rc, out, _err = module.run_command([systemctl, "show", unit, "-p", "MainPID", "--value"])
    pid = out.strip() if rc == 0 else ""
    if pid.isdigit() and pid != "0":
        try:
            with open("/proc/%s/environ" % pid, "rb") as handle:
                name = hostname_from_environ(handle.read().decode("utf-8", "replace"))
            if name:
                return name
        except OSError:
            pass
    rc, out, _err = module.run_command([systemctl, "show", unit, "-p", "Environment", "--value"])
    return (hostname_from_unit_environment(out) if rc == 0 else None) or socket.gethostname()


def falco_facts(module, falco):
    """Version, rules (name to enabled), where they came from, and outputs, from Falco itself where it can tell."""
    rc, out, err = module.run_command([falco, "--support"])
    try:
        if rc != 0:
            raise SmokeError("falco --support failed (rc %s): %s" % (rc, (err or out).strip()[-300:]))
        outputs = outputs_from_support(out)
    except SmokeError as exc:
        # Before --support (Falco < 0.32): what the falco role configures, said as assumed.
        module.warn("%s; assuming JSON alerts in the journal and no rules selection" % exc)
        outputs = {"json": True, "journal": True, "file": "", "selection": [], "version": ""}
    rc, out, err = module.run_command([falco, "-L", "-o", "json_output=true"])
    source = "falco -L"
    try:
        if rc != 0:
            raise SmokeError("falco -L failed (rc %s): %s" % (rc, (err or out).strip()[-300:]))
        rules = rules_from_listing(out)
    except SmokeError:
        source = "rules files"
        texts = []
        for pattern in RULES_FILES:
            for path in sorted(glob.glob(pattern)):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    texts.append(handle.read())
        rules = rules_from_files(texts)
    rules = apply_selection(rules, outputs.pop("selection"))
    enabled = dict((name, rule["enabled"]) for name, rule in rules.items())
    return outputs.pop("version"), enabled, source, outputs


def container_engine(module, engines, wanted_image):
    """(engine, image, image_problem) for the first engine that answers."""
    for name in engines:
        binary = module.get_bin_path(name)
        if not binary:
            continue
        rc, _out, _err = module.run_command([binary, "info"])
        if rc != 0:
            continue
        if wanted_image:
            rc, _out, _err = module.run_command([binary, "image", "inspect", wanted_image])
            if rc == 0:
                return name, wanted_image, ""
            return name, "", "image %s is not on the host (nothing is pulled)" % wanted_image
        rc, out, _err = module.run_command([binary, "images", "--format", "{{.Repository}}:{{.Tag}}"])
        images = [line.strip() for line in out.splitlines() if line.strip() and "<none>" not in line]
        if rc == 0 and images:
            return name, images[0], ""
        return name, "", "no local image (set fleetwatch_smoke_image)"
    return "", "", ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="str",
                       default=["falco-modern-bpf.service", "falco-kmod.service", "falco-custom.service",
                                "falco-bpf.service", "falco.service"]),
            engines=dict(type="list", elements="str", default=["podman", "docker"]),
            image=dict(type="str", default=""),
            falco=dict(type="str", default="falco"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    result = dict(changed=False, unit="", hostname="", version="", rules={}, rules_source="",
                  outputs={"json": False, "journal": False, "file": ""}, time=int(time.time()))
    result["unit"] = active_unit(module, params["units"])
    if result["unit"]:
        falco = params["falco"] if os.path.isabs(params["falco"]) else module.get_bin_path(params["falco"])
        if not falco:
            module.fail_json(msg="%s is active but the falco binary is not on the PATH" % result["unit"], **result)
        result["hostname"] = falco_hostname(module, result["unit"])
        result["version"], result["rules"], result["rules_source"], result["outputs"] = falco_facts(module, falco)
        result["engine"], result["image"], result["image_problem"] = container_engine(
            module, params["engines"], params["image"])
    else:
        result.update(engine="", image="", image_problem="")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
