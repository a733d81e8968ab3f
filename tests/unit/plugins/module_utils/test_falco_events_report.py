"""The Markdown report links each rule to the Falco fleet dashboard filtered on it, or names it plainly."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_events_report import report_markdown

DASHBOARD = "https://mon-1.example:3000/d/fleetwatch-falco-fleet"
ODD_RULE = "Launch Privileged Container (k8s|docker) [beta]"


def rules_table(rows):
    return {"top": rows, "others": {"events": 0, "entries": 0}}


def summary(rows, fingerprints=()):
    return {
        "skipped_lines": {}, "by_priority": {"Warning": sum(r["count"] for r in rows)},
        "matched": sum(r["count"] for r in rows), "alerts": sum(r["count"] for r in rows), "filtered_out": 0,
        "first_seen": "2026-11-27T10:00:00Z", "last_seen": "2026-11-27T11:00:00Z",
        "rules": rules_table(rows), "fingerprints": {"top": list(fingerprints)},
    }


def render(dashboard_url, exceptions=()):
    row = {"host": "web-1", "rule": ODD_RULE, "priority": "Warning", "count": 12}
    fingerprint = dict(row, hosts=["web-1", "web-2"], fields={"proc.name": "runc"},
                       first_seen="2026-11-27T10:00:00Z", last_seen="2026-11-27T11:00:00Z")
    merged = summary([row], [fingerprint])
    suggestion = {"exceptions": list(exceptions), "evidence": [], "not_suggested": {}}
    return report_markdown(merged, {"web-1": summary([row])}, suggestion, dashboard_url=dashboard_url)


def table_cells(line):
    """A GFM table row's cells, with escaped pipes kept inside their cell."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def links(markdown):
    """(text, target) of every Markdown link in the report's table cells, as a Markdown renderer reads them."""
    found = []
    for line in markdown.splitlines():
        if not line.startswith("| "):
            continue
        for cell in table_cells(line):
            for text, target in re.findall(r"\[((?:\\.|[^\]\\])*)\]\(([^)\s]*)\)", cell):
                found.append((re.sub(r"\\(.)", r"\1", text), target))
    return found


def test_each_rule_links_to_the_dashboard_filtered_on_it_and_its_hosts():
    markdown = render(DASHBOARD)
    found = links(markdown)
    # fleet-wide rules, web-1's rules, the fingerprint
    assert len(found) == 3, markdown
    for text, target in found:
        assert text == ODD_RULE
        parts = urlsplit(target)
        assert parts.scheme + "://" + parts.netloc + parts.path == DASHBOARD
        # The raw target has no character that would end the link or split the table cell.
        assert not re.search(r"[\s()|]", target), target
        assert parse_qs(parts.query)["var-rule"] == [ODD_RULE]
    hosts = [parse_qs(urlsplit(target).query).get("var-host") for _text, target in found]
    assert hosts == [["web-1"], ["web-1"], ["web-1", "web-2"]]


def test_suggested_exceptions_link_their_rule_without_a_host():
    exception = {"rule": ODD_RULE, "name": "runc_shadow", "fields": ["proc.name"], "values": [["runc"]]}
    section = render(DASHBOARD, [exception]).split("## Suggested exceptions", 1)[1]
    (text, target), = links(section)
    assert text == ODD_RULE
    assert parse_qs(urlsplit(target).query) == {"var-rule": [ODD_RULE]}


def test_a_dashboard_url_with_a_query_gets_the_filters_appended():
    (_text, target), = links(render(DASHBOARD + "?orgId=1").split("## Top rules on", 1)[1].split("##", 1)[0])
    assert parse_qs(urlsplit(target).query) == {"orgId": ["1"], "var-rule": [ODD_RULE], "var-host": ["web-1"]}


def test_without_a_dashboard_url_rule_names_are_plain_text():
    markdown = render("")
    assert links(markdown) == []
    assert "](" not in markdown
    fleet_row = markdown.split("## Top rules, fleet-wide", 1)[1].splitlines()[4]
    assert table_cells(fleet_row) == ["12", "Warning", "web-1", ODD_RULE]


def test_a_commonmark_renderer_reads_the_same_links():
    """Cross-check of the regex reading above with a real renderer (markdown-it-py, present through rich)."""
    markdown_it = pytest.importorskip("markdown_it")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(render(DASHBOARD))
    rendered = []
    for inline in (t for t in tokens if t.type == "inline"):
        href = None
        for child in inline.children or []:
            if child.type == "link_open":
                href, text = child.attrs["href"], ""
            elif child.type == "link_close":
                rendered.append((text, href))
                href = None
            elif href is not None:
                text += child.content
    assert [text for text, _href in rendered] == [ODD_RULE] * 3
    assert all(parse_qs(urlsplit(href).query)["var-rule"] == [ODD_RULE] for _text, href in rendered)
