#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Confirm that Falco runs: its unit stays up past start-up, its driver opened, /healthz answers."""

from __future__ import annotations

DOCUMENTATION = r"""
module: falco_health
short_description: Confirm Falco is up, or fail with its last log lines and what to do
version_added: 0.1.0
description:
  - Watches the Falco systemd unit until its main process has stayed up O(settle) seconds with no restart, then,
    where O(healthz_url) is given, until Falco's C(/healthz) answers 200, and, where O(metrics_url) is given, until
    its driver has delivered events (C(falcosecurity_scap_n_evts_total) above zero). A Falco whose driver cannot
    load starts, answers for a moment and exits, and systemd restarts it; this module tells that apart from a Falco
    that runs. Loading the modern eBPF probe can take the kernel's verifier half a minute, during which Falco is up
    and answers C(/healthz) but sees nothing; only the events counter shows the probe is in.
  - Fails with the reason, the unit's last log lines and a hint (wrong driver, no kernel BTF, a missing capability,
    a refused configuration) when Falco does not run, exits, or is restarted while it watches.
  - With O(changed_files), first waits for Falco to reload those files itself (its C(watch_config_files) watcher
    logs C(SIGHUP received, restarting) after its own check of them passed), then watches the process stay up
    O(settle) seconds from the reload on. When Falco's own check refuses the files, it fails with Falco's message
    (Falco keeps running on the files it had loaded). When no reload comes within O(timeout) (the watcher is off,
    for example in a C(config.d) drop-in of the host's), it restarts the unit once and watches the new process;
    that restart is the only change this module makes.
options:
  unit:
    description: The systemd unit that runs Falco, for example C(falco-modern-bpf.service).
    type: str
    required: true
  driver:
    description: The driver the unit loads; picks the hint shown when Falco does not run.
    type: str
    choices: [modern_ebpf, kmod, nodriver]
    default: modern_ebpf
  settle:
    description: Seconds the same main process must have been up. Falco that cannot open its driver exits within
      a second or two of starting.
    type: int
    default: 10
  watch:
    description: Also require the process to stay up O(settle) seconds from now on, as after a reload signal (the
      process is older than the reload, which opens the driver and loads the rules again).
    type: bool
    default: false
  changed_files:
    description:
      - Files this run wrote or removed that Falco watches, for a Falco that reloads itself on their change
        (C(watch_config_files), Falco 0.37 and later). Its reload must be logged after the newest of these changes.
      - Do not also signal Falco, because a SIGHUP that reaches Falco while it restarts itself kills it.
    type: list
    elements: path
    default: []
  timeout:
    description: Seconds to wait for Falco to come up (and, with O(changed_files), to reload) before failing.
    type: int
    default: 90
  healthz_url:
    description: Falco's health endpoint, for example C(http://127.0.0.1:8765/healthz); empty when the webserver is
      off.
    type: str
    default: ""
  metrics_url:
    description: Falco's Prometheus endpoint, for example C(http://127.0.0.1:8765/metrics), with kernel event counters
      on; empty when Falco serves no metrics or has no driver (C(nodriver)). Over C(https://) the certificate is
      checked as for O(healthz_url).
    type: str
    default: ""
  healthz_cert_file:
    description:
      - For an C(https://) O(healthz_url) or O(metrics_url), the PEM file whose certificate Falco serves (the webserver's
        C(ssl_certificate)). The module accepts exactly that certificate, which proves it talks to this host's
        Falco without needing the address in the certificate's names.
    type: path
  log_lines:
    description: How many of the unit's last log lines the failure message shows.
    type: int
    default: 25
attributes:
  check_mode:
    description: Only reads in check mode, where O(changed_files) is ignored (nothing was written).
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
author:
  - fleetwatch engineers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Confirm Falco runs
  fleetwatch.falco_stack.falco_health:
    unit: falco-modern-bpf.service
    healthz_url: http://127.0.0.1:8765/healthz
"""

RETURN = r"""
state:
  description: The unit's properties at the last look (C(ActiveState), C(SubState), C(MainPID), C(NRestarts), ...).
  returned: always
  type: dict
reload:
  description: With O(changed_files), C(reloaded) when Falco reloaded them itself, C(restarted) when the module
    restarted the unit because no reload came; else C(none).
  returned: success
  type: str
uptime:
  description: Seconds the main process had been up when it was found healthy.
  returned: success
  type: float
log:
  description: The unit's last log lines.
  returned: failure
  type: list
  elements: str
"""

import http.client
import ssl
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_health import (
    EVENTS_METRIC,
    UNIT_PROPERTIES,
    Watch,
    as_int,
    events_seen,
    failure_message,
    newest_change,
    parse_show,
    reload_outcome,
)


def show(module, unit):
    cmd = [module.get_bin_path("systemctl", required=True), "show", unit, "--no-pager"]
    for prop in UNIT_PROPERTIES:
        cmd += ["-p", prop]
    rc, out, err = module.run_command(cmd)
    if rc != 0:
        module.fail_json(msg="systemctl show %s failed: %s" % (unit, err.strip() or out.strip()))
    return parse_show(out)


def journal(module, unit, *options, required):
    """The output of ``journalctl -u UNIT OPTIONS --no-pager``. Where ``required``, a missing journalctl or a failed
    run fails the module; where not (the log lines of a failure message), either gives None, so that the message
    can say the journal could not be read rather than that it is empty."""
    journalctl = module.get_bin_path("journalctl", required=required)
    if not journalctl:
        return None
    rc, out, err = module.run_command([journalctl, "-u", unit, *options, "--no-pager"])
    if rc == 0:
        return out
    if required:
        module.fail_json(msg="journalctl -u %s failed: %s" % (unit, err.strip() or out.strip()))
    return None


def restart(module, unit):
    rc, out, err = module.run_command([module.get_bin_path("systemctl", required=True), "restart", unit])
    if rc != 0:
        module.fail_json(msg="systemctl restart %s failed: %s" % (unit, err.strip() or out.strip()))


def served_certificate(cert_file):
    """The DER bytes of the certificate in a PEM file that may also hold the key."""
    with open(cert_file, encoding="ascii") as handle:
        pem = handle.read()
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(pem[pem.index(begin):pem.index(end) + len(end)])


def fetch(url, cert_file):
    """(None, body) when url answered 200 (over https: with the certificate in cert_file); else (why not, None)."""
    parts = urlsplit(url)
    try:
        if parts.scheme == "https":
            if not cert_file:
                return "an https URL needs healthz_cert_file", None
            # Exactly our certificate is accepted, compared after the handshake: that proves it is this host's
            # Falco whatever address the certificate names, with no chain or name check left out in its place.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=5, context=context)
            conn.connect()
            if conn.sock.getpeercert(binary_form=True) != served_certificate(cert_file):
                return "%s served a certificate other than the one in %s" % (url, cert_file), None
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=5)
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        conn.close()
        return (None, body) if response.status == 200 else ("%s answered %s" % (url, response.status), None)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return "%s did not answer (%s)" % (url, exc), None


def healthz(url, cert_file):
    """None when /healthz answered 200 (over https: with the certificate in cert_file); else why not."""
    return fetch(url, cert_file)[0]


def driver_problem(url, cert_file):
    """None when Falco's metrics show its driver delivered events; else why not."""
    problem, body = fetch(url, cert_file)
    if problem:
        return problem
    if events_seen(body) > 0:
        return None
    return "its driver has delivered no event yet (%s on %s)" % (EVENTS_METRIC, url)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            unit=dict(type="str", required=True),
            driver=dict(type="str", default="modern_ebpf", choices=["modern_ebpf", "kmod", "nodriver"]),
            settle=dict(type="int", default=10),
            watch=dict(type="bool", default=False),
            timeout=dict(type="int", default=90),
            healthz_url=dict(type="str", default=""),
            metrics_url=dict(type="str", default=""),
            healthz_cert_file=dict(type="path"),
            changed_files=dict(type="list", elements="path", default=[]),
            log_lines=dict(type="int", default=25),
        ),
        supports_check_mode=True,
    )
    params = module.params
    unit = params["unit"]
    start = time.monotonic()
    watch = Watch(params["settle"], watch_from=start if params["watch"] else None)
    deadline = start + params["timeout"]
    # Set while Falco has still to reload the changed files itself: the epoch second of their newest change. In
    # check mode nothing was written, and the restart that stands in for a missing reload must not happen.
    changed_at = newest_change(params["changed_files"]) if params["changed_files"] and not module.check_mode else None
    reload = "none"
    props = {}
    while True:
        if changed_at is not None:
            since_change = journal(module, unit, "--since", "@%d" % int(changed_at), "-o", "json", required=True)
            outcome, line = reload_outcome(since_change, changed_at)
            if outcome == "refused":
                module.fail_json(msg="Falco checked its changed files itself and refused them; it keeps running on "
                                 "the files it had loaded, which no longer match the files on disk. Falco said: %s"
                                 % line, state=props)
            if outcome == "reloaded":
                changed_at, reload = None, "reloaded"
                watch.watch_from = time.monotonic()
            elif time.monotonic() > deadline:
                restart(module, unit)
                module.warn("Falco did not reload its changed files by itself within %d s (is watch_config_files "
                            "off in a drop-in of /etc/falco/config.d?); %s was restarted to load them."
                            % (params["timeout"], unit))
                changed_at, reload = None, "restarted"
                watch = Watch(params["settle"])
                deadline = time.monotonic() + params["timeout"]
        props = show(module, unit)
        now = time.monotonic()
        verdict = watch.observe(props, now)
        if verdict == "healthy" and changed_at is not None:
            watch.reason = "it runs, but has not reloaded its changed files yet"
            verdict = "waiting"
        if verdict == "healthy" and params["healthz_url"]:
            problem = healthz(params["healthz_url"], params["healthz_cert_file"])
            if problem:
                watch.reason = "it is up, but " + problem
                verdict = "waiting"
        if verdict == "healthy" and params["metrics_url"]:
            problem = driver_problem(params["metrics_url"], params["healthz_cert_file"])
            if problem:
                watch.reason = "it is up, but " + problem
                verdict = "waiting"
        if verdict == "healthy":
            uptime = now - as_int(props, "ExecMainStartTimestampMonotonic") / 1e6
            module.exit_json(changed=reload == "restarted", state=props, reload=reload, uptime=round(uptime, 1))
        if verdict == "failed" or (now > deadline and changed_at is None):
            log = journal(module, unit, "-n", str(params["log_lines"]), "-o", "cat", required=False)
            lines = None if log is None else log.splitlines()
            reason = watch.reason if verdict == "failed" else "it did not come up within %d s (%s)" % (
                params["timeout"], watch.reason)
            module.fail_json(msg=failure_message(unit, reason, lines, params["driver"]), state=props, log=lines or [])
        time.sleep(1)


if __name__ == "__main__":
    main()
