# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet reports from merged falco_events summaries: Markdown for people, CSV for spreadsheets.

The summaries come from ``falco_events.merge_summaries``; this file only renders them.
"""

from __future__ import annotations

__metaclass__ = type

import csv
import io
from urllib.parse import quote


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return lines


def _dashboard_link(url, rule, hosts=()):
    """The Falco fleet dashboard filtered on one rule (and its hosts), or None when no dashboard URL is set.

    Values are percent-encoded whole; the base URL keeps its URL syntax but loses what would end a Markdown link
    target or a table cell (spaces, parentheses, pipes).
    """
    if not url:
        return None
    filters = [("var-rule", rule)] + [("var-host", host) for host in hosts]
    query = "&".join("%s=%s" % (name, quote(str(value), safe="")) for name, value in filters)
    base = quote(url, safe=":/?#@!$&'*+,;=%~[]")
    return base + ("&" if "?" in base else "?") + query


def _rule_cell(rule, url, hosts=()):
    """A rule name for a table cell: a Markdown link to the dashboard filtered on it when a URL is set."""
    link = _dashboard_link(url, rule, hosts)
    if link is None:
        return rule
    # Backslash and brackets would end or alter the link text; _cell escapes pipes and newlines afterwards.
    text = str(rule).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return "[%s](%s)" % (text, link)


def _actor(fields):
    return ", ".join("%s=%s" % (name, value) for name, value in sorted(fields.items())) or "(no actor fields)"


def _rules_section(title, summary, dashboard_url=""):
    rules = summary["rules"]
    out = ["## %s" % title, ""]
    if not rules["top"]:
        return out + ["No Falco alert matched.", ""]
    out += _table(["Alerts", "Priority", "Host", "Rule"],
                  [(row["count"], row["priority"], row["host"], _rule_cell(row["rule"], dashboard_url, [row["host"]]))
                   for row in rules["top"]])
    if rules["others"]["events"]:
        out.append("| %d | | | %d more host/rule rows |" % (rules["others"]["events"], rules["others"]["entries"]))
    return out + [""]


def _fingerprints_section(summary, dashboard_url=""):
    fingerprints = summary["fingerprints"]
    out = ["## Top fingerprints (who did what)", ""]
    if not fingerprints["top"]:
        return out + ["None.", ""]
    out += _table(["Alerts", "Priority", "Hosts", "Rule", "Actor", "First seen", "Last seen"],
                  [(row["count"], row["priority"], ", ".join(row.get("hosts") or []),
                    _rule_cell(row["rule"], dashboard_url, row.get("hosts") or []),
                    _actor(row.get("fields") or {}), row.get("first_seen"), row.get("last_seen"))
                   for row in fingerprints["top"]])
    return out + [""]


def report_markdown(merged, per_host, suggestion, unreported_hosts=(), dashboard_url=""):
    """Markdown report: fleet totals, fleet-wide and per-host top rules, top fingerprints, suggested exceptions.

    With a dashboard_url (the Falco fleet dashboard), every rule name links to it filtered on that rule, and on
    the row's hosts where the row has any; without one, rule names are plain text.
    """
    skipped = ", ".join("%s %d" % (reason, count) for reason, count in merged["skipped_lines"].items() if count)
    missing = " (no report from: %s)" % ", ".join(unreported_hosts) if unreported_hosts else ""
    priorities = ", ".join("%s %d" % item for item in merged["by_priority"].items())
    out = [
        "# Falco fleet triage",
        "",
        "- Hosts reported: %d%s" % (len(per_host), missing),
        "- Alerts: %d matched of %d read (%d filtered out)" % (merged["matched"], merged["alerts"], merged["filtered_out"]),
        "- Lines skipped: %s" % (skipped or "none"),
        "- Seen from %s to %s" % (merged["first_seen"], merged["last_seen"]),
        "- By priority: %s" % (priorities or "none"),
        "",
    ]
    if merged.get("approximate"):
        out += ["Some tables outgrew their bound: their rarest rows were dropped; totals are exact.", ""]
    out += _rules_section("Top rules, fleet-wide", merged, dashboard_url)
    for host in sorted(per_host):
        out += _rules_section("Top rules on %s" % host, per_host[host], dashboard_url)
    out += _fingerprints_section(merged, dashboard_url)
    out += ["## Suggested exceptions", ""]
    if suggestion["exceptions"]:
        out += ["Frequent, long-lived, low-priority fingerprints. Review them, then add them to `falco_rule_exceptions`"
                " (see `suggested-exceptions.yml`); nothing is applied automatically.", ""]
        out += _table(["Rule", "Exception", "Fields", "Values"],
                      [(_rule_cell(e["rule"], dashboard_url), e["name"], ", ".join(e["fields"]),
                        "; ".join(", ".join(v) for v in e["values"]))
                       for e in suggestion["exceptions"]])
    else:
        out.append("None: no fingerprint is frequent, long-lived and below the priority threshold.")
    not_suggested = ", ".join("%s %d" % item for item in suggestion.get("not_suggested", {}).items() if item[1])
    if not_suggested:
        out += ["", "Not suggested: %s." % not_suggested]
    return "\n".join(out) + "\n"


def rules_csv(merged):
    """One row per (host, rule, priority) of the merged summary's rule table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["host", "rule", "priority", "count"])
    for row in merged["rules"]["top"]:
        writer.writerow([row["host"], row["rule"], row["priority"], row["count"]])
    return buffer.getvalue()
