# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Falco alert triage: one alert's fingerprint (which fields, how their values are cleaned, its id).

Part of the triage split over ``falco_events_*.py``; ``falco_events.py`` says which file holds what.
"""

from __future__ import annotations

__metaclass__ = type

import json
import operator

# The output fields that name who did what: stable from one alert of the same actor to the next.
# Left out on purpose: pids, evt.time/evt.num, container.id/container.name (one value per container
# instance), k8s.pod.name (random suffix), user.uid/user.loginuid (uid repeats user.name; loginuid changes with
# whoever logged in, splitting one actor into many), proc.aname[N]/proc.pcmdline (ancestry with temporary
# names such as memfd:sealed-91), evt.type, proc.tty, thread.cap_permitted and container.mounts (describe the
# event, not the actor).
DEFAULT_FINGERPRINT_FIELDS = (
    "proc.name",
    "proc.exepath",
    "proc.pname",
    "proc.cmdline",
    "container.image.repository",
    "container.image.tag",
    "fd.name",
    "user.name",
    "k8s.ns.name",
)


def _clean_fingerprint_value(value, container_id):
    """The value as it goes into a fingerprint, or None to leave it out."""
    if value is None or value == "" or value == "<NA>":
        return None
    if isinstance(value, str):
        # Socket tuples carry the client's ephemeral port: a new value for every connection.
        if "->" in value:
            return None
        # Falco 0.31 container-start alerts put "container:<id>" into proc.cmdline: one value per container.
        if container_id and container_id in value:
            return None
        return value
    if isinstance(value, (int, float, bool)):
        return value
    return None


# What json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True) builds for every call.
_ID_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _fingerprint_id(rule, named_values):
    """A short, stable id over rule and field values, the same on every host and in every process."""
    # Imported here: OpenSSL adds megabytes to every parallel worker, and only summaries need ids.
    import hashlib

    payload = _ID_ENCODER.encode([rule, named_values])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _decode_for_display(raw, limit):
    text = raw[: limit * 4].decode("utf-8", "replace")
    return text[:limit]


def _host_set(hosts):
    return set((hosts,)) if isinstance(hosts, str) else set(hosts)


# The keys every alert has, fetched in one call by the hot loop (an itemgetter raises KeyError when one is missing).
ALERT_KEY_NAMES = ("rule", "priority", "time", "output_fields", "output")


def _values_getter(fields):
    """A function returning the tuple of an alert's values of ``fields`` (KeyError when one is missing)."""
    if len(fields) >= 2:
        return operator.itemgetter(*fields)
    # itemgetter of one field returns the value itself, not a tuple of one; the cache keys must be tuples.
    return lambda output_fields: tuple(output_fields[field] for field in fields)
