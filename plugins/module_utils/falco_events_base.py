# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Falco alert triage, shared part: priorities, times, limits and the bounded tables every summary is made of.

Part of the triage split over ``falco_events_*.py``; ``falco_events.py`` says which file holds what.
"""

from __future__ import annotations

__metaclass__ = type

import calendar
import datetime
import re
import time

PRIORITIES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")
_PRIORITY_RANK_BY_NAME = dict((name.lower(), rank) for rank, name in enumerate(PRIORITIES))
_PRIORITY_RANK_BY_NAME["info"] = PRIORITIES.index("Informational")
# Ranks of unknown priority names sort after every known one.
_UNKNOWN_PRIORITY_RANK = len(PRIORITIES)

SKIP_REASONS = ("not_json", "truncated_json", "invalid_utf8", "oversized", "not_an_alert")

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
DEFAULT_TOP = 20
DEFAULT_MAX_FINGERPRINTS = 5000
DEFAULT_MAX_RULE_GROUPS = 5000
DEFAULT_SUGGEST_MIN_COUNT = 10
DEFAULT_SUGGEST_MIN_SPAN = 3600
DEFAULT_SUGGEST_MAX_PRIORITY = "warning"
MAX_HOSTS_PER_FINGERPRINT = 50

_FIRST_SENTINEL = "~"  # sorts after any ISO8601 time
_LAST_SENTINEL = ""  # sorts before any ISO8601 time

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)
# canonical_time()'s form, digits only: what epoch_seconds reads without strptime.
_CANONICAL_TIME_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{9})Z$")
_RELATIVE_TIME_RE = re.compile(r"^-\s*(\d+)\s*([smhdw])$")
_RELATIVE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FalcoTriageError(Exception):
    """A caller error: bad option value or unreadable input."""


# ---------------------------------------------------------------------------------------------------------------
# Priorities and times


def priority_rank(name):
    """Rank of a Falco priority name (0 = emergency ... 7 = debug), or None when unknown."""
    if not isinstance(name, str):
        return None
    return _PRIORITY_RANK_BY_NAME.get(name.strip().lower())


def _require_priority_rank(name, option):
    rank = priority_rank(name)
    if rank is None:
        raise FalcoTriageError(
            "%s: unknown Falco priority %r; use one of %s" % (option, name, ", ".join(p.lower() for p in PRIORITIES))
        )
    return rank


def canonical_time(text):
    """ISO8601 text to the form Falco writes, ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` in UTC, or None.

    In that form, string order is time order, so the hot loop compares times without parsing them.
    A time without an offset is taken as UTC, like Falco's own.
    """
    if not isinstance(text, str):
        return None
    match = _TIME_RE.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    if offset and offset not in ("Z", "z", "UTC"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        shift = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        moment = moment - sign * shift
    nanoseconds = (fraction or "")[:9].ljust(9, "0")
    return "%s.%sZ" % (moment.strftime("%Y-%m-%dT%H:%M:%S"), nanoseconds)


def parse_time_bound(text, option, now=None):
    """A user's since/until value: ISO8601, ``now`` or relative ``-30m``/``-24h``/``-7d``/``-1w``."""
    if text is None or text == "":
        return None
    value = str(text).strip()
    if value.lower() == "now" or _RELATIVE_TIME_RE.match(value):
        current = time.time() if now is None else now
        match = _RELATIVE_TIME_RE.match(value)
        if match:
            current -= int(match.group(1)) * _RELATIVE_UNITS[match.group(2)]
        whole = int(current)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        return "%s.%09dZ" % (stamp, int(round((current - whole) * 1e9)) % 1000000000)
    canonical = canonical_time(value)
    if canonical is None:
        raise FalcoTriageError(
            "%s: cannot read %r as a time; use ISO8601 (2024-05-01T19:30:00Z), now, or -30m/-24h/-7d" % (option, text)
        )
    return canonical


def epoch_seconds(canonical):
    """Seconds since the epoch of a canonical_time() string."""
    match = _CANONICAL_TIME_RE.match(canonical)
    if match:
        year, month, day, hour, minute, second, nanoseconds = map(int, match.groups())
        # The ranges strptime accepts below (seconds up to 61): the same result without its per-call cost (about
        # a quarter of a summary's suggestions, with cProfile) and the import of _strptime.
        if (year >= 1 and 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour < 24
                and minute < 60 and second < 62):
            return calendar.timegm((year, month, day, hour, minute, second)) + nanoseconds / 1e9
    whole = calendar.timegm(time.strptime(canonical[:19], "%Y-%m-%dT%H:%M:%S"))
    return whole + int(canonical[20:29]) / 1e9


# ---------------------------------------------------------------------------------------------------------------
# Tables

# Order of rows with the same count, so that tables are stable from one run (and one process) to the next.
_RULE_ROW_TIE_KEYS = ("rule", "host", "priority")
_RULE_TOTAL_TIE_KEYS = ("rule", "priority")


def _ordered_priorities(counts):
    return dict(
        sorted(counts.items(), key=lambda item: (_PRIORITY_RANK_BY_NAME.get(item[0].lower(), _UNKNOWN_PRIORITY_RANK), item[0]))
    )


def _bounded_table(rows, top, tie_keys, evicted=None):
    """{top: the N largest rows, distinct: how many rows there were, others: what the cut left out}."""
    rows = sorted(rows, key=lambda row: [-row["count"]] + [str(row.get(k)) for k in tie_keys])
    kept = rows[:top] if top is not None and top >= 0 else rows
    left_out = rows[len(kept):]
    others = {
        "entries": len(left_out) + (evicted["entries"] if evicted else 0),
        "events": sum(row["count"] for row in left_out) + (evicted["events"] if evicted else 0),
    }
    return {"top": kept, "distinct": len(rows) + (evicted["entries"] if evicted else 0), "others": others}


def _min_time(left, right):
    """The earlier of two times; an unknown one (None) gives way to the other."""
    return min((value for value in (left, right) if value is not None), default=None)


def _max_time(left, right):
    """The later of two times; an unknown one (None) gives way to the other."""
    return max((value for value in (left, right) if value is not None), default=None)
