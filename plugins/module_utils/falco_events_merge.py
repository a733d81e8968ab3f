# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Falco alert triage: summaries of several hosts merged into one, and alert rates compared before and after.

Part of the triage split over ``falco_events_*.py``; ``falco_events.py`` says which file holds what.
"""

from __future__ import annotations

__metaclass__ = type

from .falco_events_base import (
    DEFAULT_TOP,
    FalcoTriageError,
    MAX_HOSTS_PER_FINGERPRINT,
    SKIP_REASONS,
    _RULE_ROW_TIE_KEYS,
    _RULE_TOTAL_TIE_KEYS,
    _UNKNOWN_PRIORITY_RANK,
    _bounded_table,
    _max_time,
    _min_time,
    _ordered_priorities,
    epoch_seconds,
    priority_rank,
)


def merge_summaries(summaries, top=DEFAULT_TOP):
    """Combine summaries (from FalcoTriage.summary or the falco_events module) into one, cut to ``top``.

    Totals, skip counts and by_priority/by_host stay exact. Rows each host left in ``others`` cannot be matched
    across hosts, so ``others`` adds them up and ``distinct`` is an upper bound once any input was cut.

    ``rule_totals`` (alerts per rule and priority over all hosts) adds up each summary's own ``rule_totals`` rows,
    or, for a summary saved before they existed, totals derived from its ``rules`` rows. Its ``host_count`` is the
    sum of the summaries' host counts: an upper bound when the same host appears in two summaries.
    """
    summaries = [summary for summary in summaries if summary]
    merged = {
        "format": 1,
        "parser": None,
        "lines_read": 0,
        "alerts": 0,
        "matched": 0,
        "filtered_out": 0,
        "skipped_lines": dict((reason, 0) for reason in SKIP_REASONS),
        "skipped_examples": {},
        "first_seen": None,
        "last_seen": None,
        "approximate": False,
        "filters": None,
        "fingerprint_fields": None,
        "by_priority": {},
        "merged_summaries": len(summaries),
    }
    filters_seen = []
    fields_seen = []
    rules = {}
    rule_totals = {}
    fingerprints = {}
    hosts = {}
    others = {"by_host": [0, 0], "rule_totals": [0, 0], "rules": [0, 0], "fingerprints": [0, 0]}
    for summary in summaries:
        for counter in ("lines_read", "alerts", "matched", "filtered_out"):
            merged[counter] += int(summary.get(counter) or 0)
        for reason, count in (summary.get("skipped_lines") or {}).items():
            merged["skipped_lines"][reason] = merged["skipped_lines"].get(reason, 0) + count
        for reason, example in (summary.get("skipped_examples") or {}).items():
            merged["skipped_examples"].setdefault(reason, example)
        merged["first_seen"] = _min_time(merged["first_seen"], summary.get("first_seen"))
        merged["last_seen"] = _max_time(merged["last_seen"], summary.get("last_seen"))
        merged["approximate"] = merged["approximate"] or bool(summary.get("approximate"))
        if summary.get("parser") and merged["parser"] is None:
            merged["parser"] = summary["parser"]
        if summary.get("filters") not in filters_seen:
            filters_seen.append(summary.get("filters"))
        if summary.get("fingerprint_fields") not in fields_seen:
            fields_seen.append(summary.get("fingerprint_fields"))
        for priority, count in (summary.get("by_priority") or {}).items():
            merged["by_priority"][priority] = merged["by_priority"].get(priority, 0) + count
        for table_name, target, key_of in (
            ("by_host", hosts, lambda row: row["host"]),
            ("rules", rules, lambda row: (row["host"], row["rule"], row["priority"])),
            ("fingerprints", fingerprints, lambda row: row["id"]),
        ):
            table = summary.get(table_name) or {}
            left_out = table.get("others") or {}
            others[table_name][0] += int(left_out.get("entries") or 0)
            others[table_name][1] += int(left_out.get("events") or 0)
            for row in table.get("top") or []:
                key = key_of(row)
                if table_name == "fingerprints":
                    _merge_fingerprint_row(target, key, row)
                elif key in target:
                    target[key]["count"] += row["count"]
                else:
                    target[key] = dict(row)
        total_rows, left_out = _rule_total_rows(summary)
        others["rule_totals"][0] += int(left_out.get("entries") or 0)
        others["rule_totals"][1] += int(left_out.get("events") or 0)
        for row in total_rows:
            total = rule_totals.setdefault(
                (row["rule"], row["priority"]),
                {"rule": row["rule"], "priority": row["priority"], "count": 0, "host_count": 0},
            )
            total["count"] += row["count"]
            total["host_count"] += int(row.get("host_count") or 0)
    merged["filters"] = filters_seen[0] if len(filters_seen) == 1 else None
    merged["fingerprint_fields"] = fields_seen[0] if len(fields_seen) == 1 else None
    merged["by_priority"] = _ordered_priorities(merged["by_priority"])
    for table_name, target, tie_keys in (
        ("by_host", hosts, ("host",)),
        ("rule_totals", rule_totals, _RULE_TOTAL_TIE_KEYS),
        ("rules", rules, _RULE_ROW_TIE_KEYS),
        ("fingerprints", fingerprints, ("rule", "id")),
    ):
        entries, events = others[table_name]
        merged[table_name] = _bounded_table(list(target.values()), top, tie_keys, {"entries": entries, "events": events})
    return merged


def _rule_total_rows(summary):
    """(rows, others) of a summary's alerts per rule and priority over its hosts.

    A summary saved before ``rule_totals`` existed has only the per-host ``rules`` table: its totals are derived
    from those rows (one host per row), and what that table left out is what the totals leave out.
    """
    if summary.get("rule_totals") is not None:
        table = summary["rule_totals"]
        return table.get("top") or [], table.get("others") or {}
    table = summary.get("rules") or {}
    derived = {}
    for row in table.get("top") or []:
        total = derived.setdefault(
            (row["rule"], row["priority"]), {"rule": row["rule"], "priority": row["priority"], "count": 0, "host_count": 0}
        )
        total["count"] += row["count"]
        total["host_count"] += 1
    return list(derived.values()), table.get("others") or {}


def _merge_fingerprint_row(target, key, row):
    ours = target.get(key)
    if ours is None:
        copied = dict(row)
        copied["fields"] = dict(row.get("fields") or {})
        copied["hosts"] = list(row.get("hosts") or [])
        target[key] = copied
        return
    ours["count"] += row["count"]
    ours["first_seen"] = _min_time(ours.get("first_seen"), row.get("first_seen"))
    ours["last_seen"] = _max_time(ours.get("last_seen"), row.get("last_seen"))
    if (priority_rank(row.get("priority")) or _UNKNOWN_PRIORITY_RANK) < (
        priority_rank(ours.get("priority")) or _UNKNOWN_PRIORITY_RANK
    ):
        ours["priority"] = row.get("priority")
    union = sorted(set(ours.get("hosts") or []) | set(row.get("hosts") or []))
    truncated = bool(ours.get("hosts_truncated") or row.get("hosts_truncated"))
    if len(union) > MAX_HOSTS_PER_FINGERPRINT:
        union = union[:MAX_HOSTS_PER_FINGERPRINT]
        truncated = True
    ours["hosts"] = union
    ours["host_count"] = len(union)
    ours["hosts_truncated"] = truncated


def summary_window_seconds(summary):
    """Seconds a summary covers: its since/until filters where set, else its first and last alert."""
    filters = summary.get("filters") or {}
    start = filters.get("since") or summary.get("first_seen")
    end = filters.get("until") or summary.get("last_seen")
    if not start or not end:
        return None
    # At least an hour, so that a handful of alerts in a short window does not read as a huge rate.
    return max(epoch_seconds(end) - epoch_seconds(start), 3600.0)


def compare_rates(before, after):
    """Alerts per hour, overall and per rule, in two summaries: the measure of what new exceptions removed.

    Rules come from each summary's top table (summed over hosts); use a large ``top`` for both runs so the
    rules you tuned are in it. ``change_percent`` is negative for a reduction, None when there was no rate before.
    """
    windows = {"before": summary_window_seconds(before), "after": summary_window_seconds(after)}
    if not windows["before"] or not windows["after"]:
        raise FalcoTriageError("compare: both summaries need alerts or since/until to give a time window")
    per_rule = {}
    for label, summary in (("before", before), ("after", after)):
        for row in (summary.get("rules") or {}).get("top") or []:
            counts = per_rule.setdefault(row["rule"], {"before": 0, "after": 0})
            counts[label] += row["count"]

    def rate(count, label):
        return round(count * 3600.0 / windows[label], 3)

    def change(old, new):
        return None if not old else round((new - old) * 100.0 / old, 1)

    rules = []
    for rule, counts in per_rule.items():
        old, new = rate(counts["before"], "before"), rate(counts["after"], "after")
        rules.append({"rule": rule, "before_per_hour": old, "after_per_hour": new, "change_percent": change(old, new)})
    rules.sort(key=lambda row: (-row["before_per_hour"], row["rule"]))
    old, new = rate(before.get("matched") or 0, "before"), rate(after.get("matched") or 0, "after")
    return {
        "window_hours": {label: round(seconds / 3600.0, 2) for label, seconds in windows.items()},
        "total": {"before_per_hour": old, "after_per_hour": new, "change_percent": change(old, new)},
        "rules": rules,
    }
