# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Falco alert triage: rule exceptions suggested from frequent, long-lived fingerprints, and their YAML.

Part of the triage split over ``falco_events_*.py``; ``falco_events.py`` says which file holds what.
"""

from __future__ import annotations

__metaclass__ = type

import json
import re

from .falco_events_alert import DEFAULT_FINGERPRINT_FIELDS
from .falco_events_base import (
    DEFAULT_SUGGEST_MAX_PRIORITY,
    DEFAULT_SUGGEST_MIN_COUNT,
    DEFAULT_SUGGEST_MIN_SPAN,
    _require_priority_rank,
    epoch_seconds,
    priority_rank,
)

# A suggested exception must name at least one of these, so it never silences a rule as a whole.
EXCEPTION_ANCHOR_FIELDS = ("proc.name", "proc.exepath", "proc.cmdline", "container.image.repository")

# Falco quotes exception values that contain a space and does no escaping at all, so only values made of
# these characters are certain to reach the condition unchanged.
_SAFE_EXCEPTION_VALUE_RE = re.compile(r"^[A-Za-z0-9 /._:@+~%-]+$")
_SLUG_STRIP_RE = re.compile(r"[^a-z0-9]+")


def _slug(text):
    return _SLUG_STRIP_RE.sub("_", str(text).lower()).strip("_")


def _exception_name(record):
    fields = record.get("fields") or {}
    parts = []
    image = fields.get("container.image.repository")
    if image:
        parts.append(str(image).rsplit("/", 1)[-1])
    for field in ("proc.name", "proc.pname"):
        if fields.get(field):
            parts.append(fields[field])
    words = [_slug(part) for part in parts if _slug(part)]
    stem = "_".join(words)[:40].strip("_") or "actor"
    # The id suffix keeps names unique within a rule, as Falco requires.
    return "triage_%s_%s" % (stem, record.get("id", "")[:8])


def is_safe_exception_value(value):
    """True when Falco will compare the value as written (see _SAFE_EXCEPTION_VALUE_RE)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and bool(_SAFE_EXCEPTION_VALUE_RE.match(value)) and value[:1] not in ("'", '"')


def suggest_exceptions(
    fingerprint_records,
    min_count=DEFAULT_SUGGEST_MIN_COUNT,
    min_span=DEFAULT_SUGGEST_MIN_SPAN,
    max_priority=DEFAULT_SUGGEST_MAX_PRIORITY,
    limit=None,
):
    """Exceptions for fingerprints that are frequent, long-lived and not severe.

    A fingerprint qualifies when it was seen at least ``min_count`` times, its first and last alerts are at
    least ``min_span`` seconds apart (a one-off burst is not a habit), and its priority is ``max_priority`` or
    less severe. Fields whose value Falco could misread are left out of the exception; when no anchor field
    (process or image) is left, the fingerprint is skipped rather than suggesting a rule-wide silence.

    Returns ``{"exceptions": [...], "evidence": [...], "not_suggested": {reason: count}}``; ``exceptions`` is in
    the falco role's ``falco_rule_exceptions`` format and ``evidence[i]`` explains ``exceptions[i]``.
    """
    max_rank = _require_priority_rank(max_priority, "suggest_max_priority")
    exceptions = []
    evidence = []
    not_suggested = {"too_few": 0, "too_short": 0, "too_severe": 0, "no_safe_anchor": 0, "over_limit": 0}
    ordered = sorted(fingerprint_records, key=lambda record: (-record["count"], record["rule"], record.get("id", "")))
    for record in ordered:
        if record["count"] < min_count:
            not_suggested["too_few"] += 1
            continue
        rank = priority_rank(record.get("priority"))
        if rank is None or rank < max_rank:
            not_suggested["too_severe"] += 1
            continue
        first, last = record.get("first_seen"), record.get("last_seen")
        span = None if not first or not last else epoch_seconds(last) - epoch_seconds(first)
        if span is None or span < min_span:
            not_suggested["too_short"] += 1
            continue
        fields = []
        values = []
        left_out = []
        for field, value in sorted((record.get("fields") or {}).items(), key=lambda item: _field_order(item[0])):
            if is_safe_exception_value(value):
                fields.append(field)
                values.append(value)
            else:
                left_out.append(field)
        if not any(field in EXCEPTION_ANCHOR_FIELDS for field in fields):
            not_suggested["no_safe_anchor"] += 1
            continue
        if limit is not None and len(exceptions) >= limit:
            not_suggested["over_limit"] += 1
            continue
        exceptions.append(
            {
                "rule": record["rule"],
                "name": _exception_name(record),
                "fields": fields,
                "comps": ["="] * len(fields),
                "values": [values],
            }
        )
        evidence.append(
            {
                "fingerprint": record.get("id"),
                "rule": record["rule"],
                "priority": record.get("priority"),
                "count": record["count"],
                "first_seen": first,
                "last_seen": last,
                "span_seconds": int(span),
                "hosts": list(record.get("hosts") or []),
                "fields_left_out": left_out,
                "sample_output": record.get("sample_output"),
            }
        )
    return {"exceptions": exceptions, "evidence": evidence, "not_suggested": not_suggested}


def _field_order(field):
    if field in DEFAULT_FINGERPRINT_FIELDS:
        return (0, DEFAULT_FINGERPRINT_FIELDS.index(field), field)
    return (1, 0, field)


def _yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = json.dumps(str(value), ensure_ascii=False)
    # JSON leaves these raw but YAML reads them as line breaks or a byte order mark.
    for char, escape in (("\u0085", "\\N"), ("\u2028", "\\L"), ("\u2029", "\\P"), ("\ufeff", "\\uFEFF")):
        text = text.replace(char, escape)
    return text


def _yaml_flow_list(items):
    return "[" + ", ".join(_yaml_scalar(item) for item in items) + "]"


def exceptions_to_yaml(exceptions, evidence=None, variable="falco_rule_exceptions"):
    """YAML for group_vars: ``<variable>:`` and one commented entry per exception."""
    if not exceptions:
        return "%s: []\n" % variable
    out = ["%s:" % variable]
    for index, exception in enumerate(exceptions):
        why = evidence[index] if evidence and index < len(evidence) else None
        if why:
            hosts = why.get("hosts") or []
            out.append(
                "  # %d alerts (%s) on %d host(s) from %s to %s, fingerprint %s"
                % (why["count"], why.get("priority"), len(hosts), why.get("first_seen"), why.get("last_seen"), why.get("fingerprint"))
            )
            if why.get("fields_left_out"):
                out.append("  # left out (value Falco could misread): %s" % ", ".join(why["fields_left_out"]))
        out.append("  - rule: %s" % _yaml_scalar(exception["rule"]))
        out.append("    name: %s" % _yaml_scalar(exception["name"]))
        out.append("    fields: %s" % _yaml_flow_list(exception["fields"]))
        out.append("    comps: %s" % _yaml_flow_list(exception["comps"]))
        out.append("    values:")
        for row in exception["values"]:
            out.append("      - %s" % _yaml_flow_list(row))
    return "\n".join(out) + "\n"
