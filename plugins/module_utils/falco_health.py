# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide whether a Falco unit really runs, and say what to do when it does not.

A Falco whose driver cannot load starts, prints its banner, answers /healthz for a moment, then exits; systemd
restarts it every RestartSec. A single look at the unit can catch it in its active second, so the verdict needs
the same main process to have stayed up for a while (``settle`` seconds) and no restart while we watched.
"""

from __future__ import annotations

import json
import os

# systemctl show properties the verdict reads.
UNIT_PROPERTIES = ("ActiveState", "SubState", "MainPID", "NRestarts", "ExecMainStartTimestampMonotonic",
                   "InvocationID", "LoadState")

# The counter of system call events the driver delivered (kernel event counters on): above zero once the driver
# opened and events flow; Falco leaves a zero out of its metrics (include_empty_values: false).
EVENTS_METRIC = "falcosecurity_scap_n_evts_total"

# Lines of Falco's own log and what they mean for the operator, first match wins; each hint names what to change.
# The drivers a hint applies to (None: any).
HINTS = (
    (("Error reading config file", "LOAD_ERR", "Error loading rules", "Runtime error"), None,
     "Falco refused its configuration or rules at start-up: the lines above name the file and the key."),
    (("BPF program is too large", "processed 1000001 insns"), ("modern_ebpf",),
     "The kernel's BPF verifier refused the modern eBPF probe as too complex (its limit is a million instructions). "
     "Without CAP_SYS_ADMIN (or CAP_BPF with CAP_PERFMON) the verifier is stricter: give Falco those. With them, "
     "this Falco build's probe does not load on this kernel: use a Falco release whose probe it accepts, or "
     "falco_driver: kmod."),
    (("BTF", "vmlinux"), ("modern_ebpf",),
     "The kernel offers no BTF (/sys/kernel/btf/vmlinux), which modern_ebpf needs: set falco_driver: kmod, or boot "
     "a kernel built with CONFIG_DEBUG_INFO_BTF."),
    (("error occurred in an event source", "forcing termination", "RLIMIT_MEMLOCK", "Operation not permitted"),
     ("modern_ebpf",),
     "The modern eBPF probe could not be loaded: Falco needs CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON (and "
     "CAP_SYS_RESOURCE on kernels before 5.11). Run it on the host or in a privileged container, or choose "
     "falco_driver: kmod."),
    (("error occurred in an event source", "forcing termination", "Unable to load the driver", "/dev/falco"),
     ("kmod",),
     "The kernel module is not loaded: check that dkms built it for the running kernel (dkms status; the headers "
     "package of the running kernel must be installed), or choose falco_driver: modern_ebpf where the kernel has "
     "BTF."),
)


# What Falco logs when it restarts itself inside its process (the same text from 0.31 to 0.44): on SIGHUP, and from
# 0.32 when its watcher (watch_config_files) saw its configuration or rules files change and its own check of them
# passed. When that check fails, Falco keeps its loaded files and sends this rule's alert to its outputs instead.
RELOAD_LINE = "SIGHUP received, restarting"
RELOAD_REFUSED = "Falco internal: hot restart failure"


def parse_show(text):
    """``systemctl show -p A -p B UNIT`` output (KEY=VALUE lines) as a dict of strings."""
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def as_int(props, key):
    try:
        return int(props.get(key) or 0)
    except ValueError:
        return 0


def events_seen(metrics_text):
    """The value of EVENTS_METRIC in a Prometheus text exposition (0 when absent or unreadable)."""
    for line in metrics_text.splitlines():
        name, _space, value = line.partition(" ")
        if name == EVENTS_METRIC or name.startswith(EVENTS_METRIC + "{"):
            try:
                return float(value.split()[0])
            except (ValueError, IndexError):
                return 0
    return 0


def newest_change(paths, stat=os.stat):
    """Epoch seconds of the newest change among paths: a file's modification time, or for a path that is gone, its
    directory's (removing a file changes its directory). 0 when none of them exists."""
    newest = 0.0
    for path in paths:
        for candidate in (path, os.path.dirname(path)):
            try:
                newest = max(newest, stat(candidate).st_mtime)
                break
            except FileNotFoundError:
                continue
    return newest


def reload_outcome(journal_json, after):
    """What Falco did with files changed at ``after`` (epoch seconds), read from ``journalctl -o json`` lines:
    ``("reloaded", line)``, ``("refused", line)`` when its own check refused them, or ``(None, "")``."""
    for line in journal_json.splitlines():
        try:
            entry = json.loads(line)
            logged = int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6
        except (ValueError, TypeError, AttributeError):
            continue
        message = entry.get("MESSAGE")
        if not isinstance(message, str) or logged <= after:
            continue  # journald stores a message that is not UTF-8 as a list of bytes: not one of Falco's lines
        if RELOAD_REFUSED in message:
            return "refused", message
        if RELOAD_LINE in message:
            return "reloaded", message
    return None, ""


def hint_for(log_lines, driver):
    """What to do, read from Falco's last log lines; a generic pointer when none matches."""
    text = "\n".join(log_lines)
    for needles, drivers, hint in HINTS:
        if (drivers is None or driver in drivers) and any(needle in text for needle in needles):
            return hint
    return ("Read the unit's whole log on the host (journalctl -u UNIT) and fix what Falco names; a falco_driver "
            "this host cannot load is the usual cause.")


class Watch:
    """Successive looks at one unit, turned into a verdict.

    ``observe`` is fed the properties of each look and the monotonic time it was taken (seconds); it returns
    ``"healthy"``, ``"failed"`` or ``"waiting"``, and keeps ``reason`` for the message. ``watch_from`` (monotonic
    seconds) asks that the process also stays up ``settle`` seconds from then on: after a reload signal, the
    process is old but reloads its driver and rules.
    """

    def __init__(self, settle, watch_from=None):
        self.settle = settle
        self.watch_from = watch_from
        self.first_restarts = None
        self.pid = None
        self.reason = "not looked at yet"

    def observe(self, props, now):
        restarts = as_int(props, "NRestarts")
        if self.first_restarts is None:
            self.first_restarts = restarts
        if props.get("LoadState") == "not-found":
            self.reason = "the unit does not exist"
            return "failed"
        active, sub = props.get("ActiveState", ""), props.get("SubState", "")
        if restarts > self.first_restarts:
            self.reason = "systemd restarted it %d time(s) while we watched (it keeps exiting)" % (
                restarts - self.first_restarts)
            return "failed"
        if active == "failed" or sub == "auto-restart":
            self.reason = "its main process exited (ActiveState=%s, SubState=%s)" % (active, sub)
            return "failed"
        if active in ("inactive", "deactivating"):
            self.reason = "it is not running (ActiveState=%s)" % active
            return "failed"
        pid = as_int(props, "MainPID")
        if active != "active" or sub != "running" or pid == 0:
            self.reason = "it did not finish starting (ActiveState=%s, SubState=%s)" % (active, sub)
            return "waiting"
        if self.pid is not None and pid != self.pid:
            self.reason = "its main process changed from %d to %d while we watched" % (self.pid, pid)
            return "failed"
        self.pid = pid
        started = as_int(props, "ExecMainStartTimestampMonotonic") / 1e6
        since = max(started, self.watch_from) if self.watch_from is not None else started
        if now - since < self.settle:
            self.reason = "it has been up %.1f s, not yet the %d s that show it stays up" % (max(now - since, 0),
                                                                                             self.settle)
            return "waiting"
        self.reason = "up for %.0f s" % (now - started)
        return "healthy"


def failure_message(unit, reason, log_lines, driver):
    """The failure message; ``log_lines`` is None when the journal could not be read (no journalctl, or it failed)."""
    if log_lines is None:
        tail = "  (journalctl is missing or could not read the journal)"
    else:
        tail = "\n".join("  " + line for line in log_lines) or "  (the journal holds no lines of this unit)"
    return ("Falco is not protecting this host: %s: %s.\nFalco's last log lines:\n%s\nWhat to do: %s"
            % (unit, reason, tail, hint_for(log_lines or [], driver).replace("UNIT", unit)))
