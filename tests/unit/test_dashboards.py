"""The dashboards role grafana ships, checked as Grafana would load them (Grafana itself cannot run here).

Structure: our own checks (ids, grid, datasource uid, variables, queries) plus grafana-foundation-sdk's models
(from_json decodes every panel, its options and its Prometheus queries). The queries themselves run against a real
Prometheus in test_dashboards_promql.py.
"""

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "grafana"
DASHBOARD_DIR = ROLE / "files" / "dashboards"
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from promlab import GRAFANA_BUILTINS, dashboard_panels, dashboard_queries, variables_in  # noqa: E402

FILES = sorted(DASHBOARD_DIR.glob("*.json"))
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
DATASOURCE = {"type": "prometheus", "uid": VARS["__grafana_datasource_uid"]}
BUILTINS = set(GRAFANA_BUILTINS)


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


def test_every_panel_queries_our_datasource(dashboard):
    for panel in dashboard_panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], "%s has no query" % panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
        assert panel["title"] and panel.get("description"), panel


def test_host_and_cloud_variables_exist_query_our_datasource_and_are_used(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"host", "cloud"} <= set(variables)
    for variable in variables.values():
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["definition"] == variable["query"]["query"]
        assert variable["definition"].startswith("label_values(")
        if variable.get("includeAll"):
            assert variable["allValue"] == ".*", "All must also match series without the label"
    used = set().union(*(variables_in(t["expr"]) for _panel, t in dashboard_queries(dashboard)))
    used_by_variables = set().union(*(variables_in(v["definition"]) for v in variables.values()))
    assert "host" in used, "no panel filters on $host"
    for name in variables:
        assert name in used | used_by_variables, "variable %s is never used" % name
    assert used | used_by_variables <= set(variables) | BUILTINS, "undefined variable"


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
    for panel, target in dashboard_queries(dashboard):
        expr = target["expr"]
        for selector in re.findall(r"\b[a-z_]+\{[^}]*\}", expr):
            if selector.startswith(("by", "without")):
                continue
            assert 'host=~"$host"' in selector, "%s: %s" % (panel["title"], selector)


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
        for _panel, target in dashboard_queries(load(path)):
            for name in re.findall(r"\b(falcosecurity_\w+)", target["expr"]):
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
    from grafana_foundation_sdk.models import prometheus

    assert sdk
    register_default_plugins()
    model = models.Dashboard.from_json(dashboard)
    assert model.uid == dashboard["uid"]
    assert [v.name for v in model.templating.list_val] == [v["name"] for v in dashboard["templating"]["list"]]
    decoded = list(model.panels)
    for panel in decoded:
        if isinstance(panel, models.RowPanel):
            continue
        assert panel.datasource.uid == DATASOURCE["uid"]
        assert panel.targets, panel.title
        for query in panel.targets:
            assert isinstance(query, prometheus.Dataquery), "%s: %r" % (panel.title, query)
            assert query.expr
        # options decoded into the panel plugin's own model, not left as a plain dict
        assert not isinstance(panel.options, dict), "%s (%s): options not understood" % (panel.title, panel.type_val)
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert [p["id"] for p in again["panels"]] == [p["id"] for p in dashboard["panels"]]
    assert [t["expr"] for _panel, t in dashboard_queries(again)] == [t["expr"] for _panel, t in dashboard_queries(dashboard)]
