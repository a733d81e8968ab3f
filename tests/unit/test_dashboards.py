"""The dashboards role grafana ships, checked as Grafana would load them (Grafana itself cannot run here).

Structure: our own checks (ids, grid, datasource variables, variables, queries, annotations, Loki links) plus
grafana-foundation-sdk's models (from_json decodes every panel, its options and its queries). The PromQL queries
themselves, the annotations' included, run against a real Prometheus in test_dashboards_promql.py; no Loki runs here,
so the LogQL ones are only checked for shape.
"""

import json
import re
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "grafana"
DASHBOARD_DIR = ROLE / "files" / "dashboards"
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from promlab import GRAFANA_BUILTINS, dashboard_annotations, dashboard_panels, dashboard_queries, variables_in  # noqa: E402

FILES = sorted(DASHBOARD_DIR.glob("*.json"))
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
# Every Prometheus query goes through the datasource variable, whose default is the provisioned Prometheus.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${loki}"}
BUILTINS = set(GRAFANA_BUILTINS)
# What data links may use besides variables: the clicked cell's value and the dashboard's time range.
LINK_BUILTINS = {"__value", "__from", "__to"}
SHA256_INFO = ("falcosecurity_falco_sha256_rules_files_info", "falcosecurity_falco_sha256_config_files_info")


def load(path):
    return json.loads(path.read_text())


@pytest.fixture(params=FILES, ids=[f.stem for f in FILES])
def dashboard(request):
    return load(request.param)


def test_the_three_dashboards_are_shipped_and_declared_by_the_role():
    assert {f.name for f in FILES} == {"falco-fleet.json", "falco-legacy-events.json", "host-node-exporter.json"}
    assert sorted(DEFAULTS["grafana_dashboards"]) == sorted(f.stem for f in FILES)


def test_dashboard_uids_are_fixed_unique_and_ours():
    uids = [load(f)["uid"] for f in FILES]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"fleetwatch-[a-z0-9-]{1,29}", uid) for uid in uids), uids


def test_current_schema_and_no_import_placeholders(dashboard):
    assert dashboard["schemaVersion"] >= 36
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "${DS_" not in json.dumps(dashboard)
    assert "fleetwatch" in dashboard["tags"]
    assert dashboard["title"] and dashboard["description"]


def test_panel_ids_are_unique(dashboard):
    ids = [p["id"] for p in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids)), ids


def test_panels_fit_the_grid_without_overlapping(dashboard):
    cells = {}
    for panel in dashboard_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, "%s overlaps %s" % (panel["title"], cells[(x, y)])
                cells[(x, y)] = panel["title"]


def variables_of(dashboard):
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_datasource_variable_defaults_to_the_provisioned_prometheus(dashboard):
    variable = dashboard["templating"]["list"][0]
    assert variable["name"] == "datasource" and variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    assert variable["current"]["value"] == VARS["__grafana_datasource_uid"]
    assert not variable.get("hide"), "the user picks another Prometheus here"
    assert not variable.get("multi") and not variable.get("includeAll")
    # the provisioned uid only as the variable's default: nothing else is wired to it
    text = json.dumps(dashboard)
    assert text.count(VARS["__grafana_datasource_uid"]) == 1, "hard-wired datasource uid left in %s" % dashboard["uid"]


def test_every_panel_queries_our_datasource(dashboard):
    for panel in dashboard_panels(dashboard):
        if panel["type"] == "row":
            continue
        if panel["datasource"] == LOKI:
            assert dashboard["uid"] == "fleetwatch-falco-fleet" and panel["type"] == "logs", panel["title"]
            assert all(t["datasource"] == LOKI for t in panel["targets"]), panel["title"]
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], "%s has no query" % panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
        assert panel["title"] and panel.get("description"), panel


def data_links(dashboard):
    """(panel, link) for every data link in a panel's field overrides or defaults."""
    for panel in dashboard_panels(dashboard):
        config = panel.get("fieldConfig", {})
        for link in config.get("defaults", {}).get("links", []):
            yield panel, link
        for override in config.get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "links":
                    for link in prop["value"]:
                        yield panel, link


def test_host_and_cloud_variables_exist_query_our_datasource_and_are_used(dashboard):
    variables = variables_of(dashboard)
    assert {"host", "cloud"} <= set(variables)
    queries = {name: v for name, v in variables.items() if v["type"] == "query"}
    assert set(variables) - set(queries) <= {"datasource", "loki"}
    for variable in queries.values():
        assert variable["datasource"] == DATASOURCE
        assert variable["definition"] == variable["query"]["query"]
        assert variable["definition"].startswith("label_values(")
        if variable.get("includeAll") and variable["name"] != "hostname":
            assert variable["allValue"] == ".*", "All must also match series without the label"
    exprs = [t["expr"] for _panel, t in dashboard_queries(dashboard, datasource_type=None)]
    exprs += [a["expr"] for a in dashboard_annotations(dashboard)]
    used = set().union(*(variables_in(e) for e in exprs))
    used_by_variables = set().union(*(variables_in(v["definition"]) for v in queries.values()))
    used_by_links = set().union(set(), *(variables_in(link["url"]) for _panel, link in data_links(dashboard)))
    used_by_sources = {s["uid"][2:-1] for p in dashboard_panels(dashboard) if p.get("datasource")
                       for s in [p["datasource"]] + [t.get("datasource", {}) for t in p.get("targets", [])]}
    used_by_sources |= {s["datasource"]["uid"][2:-1] for s in queries.values()}
    used_by_sources |= {a["datasource"]["uid"][2:-1] for a in dashboard_annotations(dashboard)}
    assert "host" in used, "no panel filters on $host"
    everything = used | used_by_variables | used_by_links | used_by_sources
    for name in variables:
        assert name in everything, "variable %s is never used" % name
    assert everything <= set(variables) | BUILTINS | LINK_BUILTINS, "undefined variable"


def test_annotations_mark_rules_and_configuration_changes_per_host_and_file(dashboard):
    """A changed file gets a new sha256 label value, so a new series: the annotation fires while the host has shown two
    values for one file within the window, and names host, file and the new hash."""
    annotations = dashboard_annotations(dashboard)
    if dashboard["uid"] == "fleetwatch-host":
        assert annotations == []
        return
    assert [a["name"] for a in annotations] == ["Rules file changed", "Configuration file changed"]
    for annotation, metric in zip(annotations, SHA256_INFO):
        assert annotation["datasource"] == DATASOURCE and annotation["enable"] is True
        expr = annotation["expr"]
        assert metric in expr and not any(other in expr for other in SHA256_INFO if other != metric)
        assert re.search(r"count by \(host, file_name\) \(count by \(host, file_name, sha256\) \(last_over_time\(", expr), \
            "distinct hashes per host and file, not series (a host scraped by two jobs is no change)"
        assert expr.rstrip().endswith("> 1)")
        labels = set(re.findall(r"\{\{(\w+)\}\}", annotation["titleFormat"] + annotation["textFormat"]))
        assert labels == {"host", "file_name", "sha256"}
        assert annotation["tagKeys"] == "host,file_name"
        assert annotation["useValueForTime"] is False
        window = re.search(r"\[(\d+)m\]", expr).group(1)
        assert int(annotation["step"].rstrip("m")) < int(window), "a step as long as the window can miss a change"


def test_fleet_dashboard_links_events_to_loki_by_falco_hostname():
    fleet = load(DASHBOARD_DIR / "falco-fleet.json")
    variables = variables_of(fleet)
    loki = variables["loki"]
    assert loki["type"] == "datasource" and loki["query"] == "loki"
    assert loki["current"]["value"] == VARS["__grafana_loki_datasource_uid"]
    hostname = variables["hostname"]
    # falcosidekick labels Loki streams with Falco's hostname; the hidden variable maps the selected hosts to theirs, so
    # its All must list them (no allValue), not match every stream.
    assert hostname["definition"] == 'label_values(falcosecurity_evt_hostname_info{host=~"$host", cloud=~"$cloud"}, hostname)'
    assert hostname["hide"] == 2 and hostname["includeAll"] and hostname["multi"] and not hostname.get("allValue")
    [(panel, target)] = list(dashboard_queries(fleet, datasource_type="loki"))
    assert panel["type"] == "logs"
    assert target["expr"] == '{hostname=~"$hostname", rule=~"$rule"}'
    [row] = [p for p in fleet["panels"] if panel in p.get("panels", [])]
    assert row["type"] == "row" and row["collapsed"] is True, "the Loki panel queries only when opened"
    links = list(data_links(fleet))
    assert {p["title"] for p, _link in links} == {"Falco agents", "Events per host, rule and priority (falcosidekick)"}
    for panel, link in links:
        columns = panel["transformations"][-1]["options"]["renameByName"]
        assert columns["hostname"] == "Falco hostname", panel["title"]
        url = urllib.parse.urlsplit(link["url"])
        assert url.path == "/explore"
        params = urllib.parse.parse_qs(url.query)
        assert params["schemaVersion"] == ["1"]
        # the cell's value stands in for ${__value.raw} (a hostname needs no escaping in the URL or in JSON)
        panes = json.loads(params["panes"][0].replace("${__value.raw}", "fleet-a.example")
                           .replace("${__from}", "1").replace("${__to}", "2"))
        [pane] = panes.values()
        assert pane["datasource"] == "${loki}"
        assert [q["expr"] for q in pane["queries"]] == ["{hostname=`fleet-a.example`}"]
        assert pane["range"] == {"from": "1", "to": "2"}


def test_only_the_fleet_dashboard_uses_loki():
    for path in FILES:
        text = path.read_text()
        assert ("${loki}" in text) == (path.name == "falco-fleet.json"), path.name


def test_host_variable_lists_inventory_hosts_filtered_by_cloud(dashboard):
    host = next(v for v in dashboard["templating"]["list"] if v["name"] == "host")
    assert re.search(r'label_values\(\w+\{cloud=~"\$cloud"\}, host\)', host["definition"]), host["definition"]


def test_rule_variable_lists_every_matched_rule_and_offers_all():
    """The triage report links each rule to the fleet dashboard with ?var-rule=<rule>: the variable must exist."""
    fleet = load(DASHBOARD_DIR / "falco-fleet.json")
    rule = next(v for v in fleet["templating"]["list"] if v["name"] == "rule")
    assert rule["definition"] == "label_values(falcosecurity_falco_rules_matches_total, rule_name)"
    assert rule["multi"] and rule["includeAll"] and rule["allValue"] == ".*"
    assert rule["refresh"] == 2, "the rule list follows the time range"


def test_every_rule_match_query_filters_on_the_rule_variable():
    fleet = load(DASHBOARD_DIR / "falco-fleet.json")
    counted = 0
    for panel, target in dashboard_queries(fleet):
        for selector in re.findall(r"\bfalcosecurity_falco_rules_matches_total\{[^}]*\}", target["expr"]):
            assert 'rule_name=~"$rule"' in selector, "%s: %s" % (panel["title"], selector)
            counted += 1
    assert counted >= 5, "the per-rule, per-host-and-rule and total panels count rule matches"


def test_every_series_is_filtered_by_host_or_aggregated_per_host(dashboard):
    queries = [(panel["title"], target["expr"]) for panel, target in dashboard_queries(dashboard)]
    queries += [(a["name"], a["expr"]) for a in dashboard_annotations(dashboard)]
    for title, expr in queries:
        for selector in re.findall(r"\b[a-z_]+\{[^}]*\}", expr):
            if selector.startswith(("by", "without")):
                continue
            assert 'host=~"$host"' in selector, "%s: %s" % (title, selector)


def test_falco_panels_show_the_host():
    legacy = load(DASHBOARD_DIR / "falco-legacy-events.json")
    per_host = [t for _panel, t in dashboard_queries(legacy) if re.search(r"by \([^)]*\bhost\b", t["expr"])]
    assert len(per_host) >= 3, "the legacy dashboard exists to show the host that 11914 sums away"
    fleet = load(DASHBOARD_DIR / "falco-fleet.json")
    exprs = " ".join(t["expr"] for _panel, t in dashboard_queries(fleet))
    for needed in ["falcosecurity_falco_version_info", "falcosecurity_falco_cpu_usage_ratio",
                   "falcosecurity_falco_memory_rss_bytes", "falcosecurity_scap_n_drops_total",
                   "falcosecurity_falco_sha256_rules_files_info", "by (rule_name)", "by (priority)", "by (host)"]:
        assert needed in exprs, needed
    titles = [p["title"] for p in dashboard_panels(fleet)]
    assert "Top rules" in titles and "Falco agents" in titles


def test_native_metric_names_exist_in_the_recorded_falco_scrape():
    recorded = REPO.parent / "shared" / "upstream" / "recorded" / "falco-0.44.1_metrics.txt"
    if not recorded.exists():
        pytest.skip("reference data absent: %s (the upstream recording of Falco 0.44.1's /metrics)" % recorded)
    names = set(re.findall(r"^(falcosecurity_\w+)", recorded.read_text(), re.M))
    # falcosidekick's own metrics: the names the upstream facts give for falcosidekick 2.34.1, and those upstream's
    # own falcosidekick dashboard queries.
    upstream = recorded.parent.parent
    sources = [upstream / "FACTS.md", upstream / "grafana-reference" / "falcosidekick-chart_prometheus_grafana-dashboard.json"]
    sidekick = {name for source in sources if source.exists()
                for name in re.findall(r"\b(falcosecurity_falcosidekick_\w+)", source.read_text())}
    for path in FILES:
        dashboard = load(path)
        exprs = [t["expr"] for _panel, t in dashboard_queries(dashboard)] + [a["expr"] for a in dashboard_annotations(dashboard)]
        for expr in exprs:
            for name in re.findall(r"\b(falcosecurity_\w+)", expr):
                if name.startswith("falcosecurity_falcosidekick_"):
                    assert name in sidekick, "%s: %s is not a falcosidekick metric upstream names" % (path.name, name)
                    continue
                assert name in names, "%s: %s is not a metric Falco 0.44.1 exposes" % (path.name, name)


def test_grafana_foundation_sdk_models_load_every_dashboard(dashboard):
    sdk = pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk is not installed "
                              "(pip install grafana-foundation-sdk; requirements/test.txt pins it)")
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import dashboard as models
    from grafana_foundation_sdk.models import loki, prometheus

    assert sdk
    register_default_plugins()
    model = models.Dashboard.from_json(dashboard)
    assert model.uid == dashboard["uid"]
    assert [v.name for v in model.templating.list_val] == [v["name"] for v in dashboard["templating"]["list"]]
    assert [(a.name, a.expr) for a in model.annotations.list_val] == [
        (a["name"], a.get("expr")) for a in dashboard["annotations"]["list"]]
    decoded = list(model.panels)
    decoded += [nested for row in decoded if isinstance(row, models.RowPanel) for nested in row.panels or []]
    for panel in decoded:
        if isinstance(panel, models.RowPanel):
            continue
        kind = {"${datasource}": prometheus.Dataquery, "${loki}": loki.Dataquery}[panel.datasource.uid]
        assert panel.targets, panel.title
        for query in panel.targets:
            assert isinstance(query, kind), "%s: %r" % (panel.title, query)
            assert query.expr
        # options decoded into the panel plugin's own model, not left as a plain dict
        assert not isinstance(panel.options, dict), "%s (%s): options not understood" % (panel.title, panel.type_val)
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert [p["id"] for p in again["panels"]] == [p["id"] for p in dashboard["panels"]]
    assert [t["expr"] for _panel, t in dashboard_queries(again, None)] == [
        t["expr"] for _panel, t in dashboard_queries(dashboard, None)]
