"""Every query of every shipped dashboard runs on a real Prometheus and returns data for the fixture series.

A real Prometheus (Debian's 2.42 binary, on 127.0.0.1 in a temporary directory) scrapes:
  - the recorded /metrics of a real Falco 0.44.1 (from ../shared/upstream/recorded/), served for two hosts with the
    target labels our prometheus role sets (host, cloud, site, env); fleet-b runs another rules file hash and
    matched a second rule at priority 3;
  - a FIXTURE of falco-exporter's falco_events counter (synthetic: no falco-exporter runs here) for the same hosts;
  - a real prometheus-node-exporter on a loopback port, labelled as both hosts;
  - a FIXTURE of falcosidekick's /metrics (tests/fixtures/falcosidekick-metrics/, synthetic: falcosidekick cannot run
    here) as the monitoring host mon-1, with events from fleet-a's and fleet-b's Falco hostnames and one "unknown".
Grafana's variables are substituted the way Grafana does (All = the variable's allValue, one host, two hosts).
"""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "roles" / "grafana" / "files" / "dashboards"
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
import promlab  # noqa: E402

HOSTS = {"fleet-a": {"cloud": "aws", "site": "eu-west", "env": "prod"},
         "fleet-b": {"cloud": "onprem", "site": "lab", "env": "test"}}
RULE_LINE_START = 'falcosecurity_falco_rules_matches_total{priority="4",rule_name="Read sensitive file untrusted"'
EXTRA_RULE = ('falcosecurity_falco_rules_matches_total{priority="3",rule_name="Write below binary dir",'
              'source="syscall",tag_filesystem="true",tag_maturity_sandbox="true"} 1')
RECORDED_HASH = "1c15d5d543635b76e31cca39d7df8bf4caf50a428613c314d92986a23bfcb617"
LEGACY_EVENTS = [("Write below binary dir", "3", "syscall", ",filesystem,mitre_persistence,"),
                 ("Launch Privileged Container", "6", "syscall", ",container,mitre_privilege_escalation,"),
                 ("Read sensitive file untrusted", "4", "syscall", ",filesystem,mitre_credential_access,")]
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def falco_fixture(host, recorded):
    if host == "fleet-a":
        return promlab.falco_metrics_fixture(recorded, rule_step=1)
    first_rule_line = next(line for line in recorded.splitlines() if line.startswith(RULE_LINE_START))
    return promlab.falco_metrics_fixture(recorded, rule_step=3, replace={
        first_rule_line: first_rule_line + "\n" + EXTRA_RULE,
        RECORDED_HASH: "0" * 64,
        'hostname="vm"': 'hostname="%s.example"' % host})


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    reason = promlab.available()
    if reason:
        pytest.skip(reason)
    if not promlab.RECORDED_FALCO_METRICS.exists():
        pytest.skip("reference data absent: %s (recorded Falco 0.44.1 /metrics)" % promlab.RECORDED_FALCO_METRICS)
    recorded = promlab.RECORDED_FALCO_METRICS.read_text()
    workdir = tmp_path_factory.mktemp("promlab")
    with promlab.FixtureServer() as server, promlab.NodeExporter(workdir) as node, promlab.Prometheus(workdir) as prom:
        falco, legacy, nodes = [], [], []
        for host, labels in HOSTS.items():
            server.add("/falco/" + host, falco_fixture(host, recorded))
            server.add("/falco-exporter/" + host, promlab.falco_events_fixture(host + ".example", LEGACY_EVENTS))
            falco.append(promlab.target(server.address, "/falco/" + host, host=host, **labels))
            legacy.append(promlab.target(server.address, "/falco-exporter/" + host, host=host, **labels))
            nodes.append(promlab.target(node.address, host=host, **labels))
        server.add("/falcosidekick", promlab.exposition_fixture(promlab.FALCOSIDEKICK_METRICS_FIXTURE.read_text()))
        sidekick = [promlab.target(server.address, "/falcosidekick", host="mon-1", cloud="aws")]
        prom.start([promlab.job("falco", falco), promlab.job("falco_exporter", legacy), promlab.job("node", nodes),
                    promlab.job("falcosidekick", sidekick)])
        prom.wait_for_scrapes(3)
        yield prom


def selections(dashboard):
    """Variable values to test with: every variable on All (or its first host), one host, and two hosts."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    everything = {name: v["allValue"] if v.get("includeAll") else ["fleet-a"] for name, v in variables.items()}
    cases = [("all", everything), ("one host", dict(everything, host=["fleet-b"]))]
    if variables["host"].get("multi"):
        cases.append(("two hosts", dict(everything, host=["fleet-a", "fleet-b"])))
    if variables["cloud"].get("multi"):
        cases.append(("one cloud", dict(everything, cloud=["onprem"])))
    if "rule" in variables:
        # The rule only fleet-b matches: its panels must then show fleet-b and that rule alone.
        cases.append(("one rule", dict(everything, rule=["Write below binary dir"])))
    return cases


CASES = [(name, panel["title"], target["refId"], target)
         for name, dashboard in DASHBOARDS.items()
         for panel, target in promlab.dashboard_queries(dashboard)]


@pytest.mark.parametrize("dashboard_name,panel_title,ref_id,target", CASES,
                         ids=["%s/%s/%s" % c[:3] for c in CASES])
def test_panel_query_runs_and_returns_data(prometheus, dashboard_name, panel_title, ref_id, target):
    for case, values in selections(DASHBOARDS[dashboard_name]):
        expr = promlab.interpolate(target["expr"], values)
        if target.get("instant"):
            result = prometheus.query(expr)
        else:
            result = prometheus.query_range(expr, seconds=120, step=5)
        assert result, "no data with %s: %s" % (case, expr)
        if case == "one host":
            assert {r["metric"]["host"] for r in result if "host" in r["metric"]} <= {"fleet-b"}, expr
        if case == "one rule" and "$rule" in target["expr"]:
            assert {r["metric"]["rule_name"] for r in result if "rule_name" in r["metric"]} <= {
                "Write below binary dir"}, expr
            assert {r["metric"]["host"] for r in result if "host" in r["metric"]} <= {"fleet-b"}, expr


VARIABLE_CASES = [(name, v["name"], v) for name, d in DASHBOARDS.items() for v in d["templating"]["list"]]


@pytest.mark.parametrize("dashboard_name,variable_name,variable", VARIABLE_CASES,
                         ids=["%s/%s" % c[:2] for c in VARIABLE_CASES])
def test_variable_lists_the_fixture_hosts_clouds_and_rules(prometheus, dashboard_name, variable_name, variable):
    values = {"cloud": ".*", "host": ".*"}
    expr = promlab.interpolate(promlab.label_values_query(variable["definition"]), values)
    label = variable["definition"].rsplit(",", 1)[-1].strip(" )")
    found = {r["metric"][label] for r in prometheus.query(expr)}
    expected = {
        "host": set(HOSTS),
        "cloud": {labels["cloud"] for labels in HOSTS.values()},
        # fleet-a's recorded rule, and the one only fleet-b matches
        "rule": {"Read sensitive file untrusted", "Write below binary dir"},
    }[variable_name]
    assert found == expected


def test_rules_hash_disagreement_is_detected(prometheus):
    panel = next(p for p in promlab.dashboard_panels(DASHBOARDS["falco-fleet"])
                 if p["title"] == "Rules files that differ between hosts")
    expr = panel["targets"][0]["expr"]
    assert prometheus.query(promlab.interpolate(expr, {"host": ".*", "cloud": ".*"}))[0]["value"][1] == "1"
    assert prometheus.query(promlab.interpolate(expr, {"host": "fleet-a", "cloud": ".*"}))[0]["value"][1] == "0"


def test_broken_query_is_reported(prometheus):
    with pytest.raises(promlab.PromQLError, match="parse error"):
        prometheus.query("sum by (host) (rate(falco_events[$__rate_interval])")


def test_falcosidekick_events_are_attributed_to_inventory_hosts(prometheus):
    """Events carry Falco's hostname; the panels map it to the inventory host (and list the ones they cannot)."""
    panels = {p["title"]: p for p in promlab.dashboard_panels(DASHBOARDS["falco-fleet"])}
    everything = {"host": ".*", "cloud": ".*"}
    table = panels["Events per host, rule and priority (falcosidekick)"]["targets"][0]["expr"]
    rows = {(r["metric"]["host"], r["metric"]["hostname"], r["metric"]["rule"], r["metric"]["priority_raw"])
            for r in prometheus.query(promlab.interpolate(table, everything))}
    assert rows == {("fleet-a", "vm", "Read sensitive file untrusted", "warning"),
                    ("fleet-a", "vm", "Write below binary dir", "error"),
                    ("fleet-b", "fleet-b.example", "Launch Sensitive Mount Container", "informational"),
                    ("fleet-b", "fleet-b.example", "Read sensitive file untrusted", "warning")}
    one = {r["metric"]["host"] for r in prometheus.query(promlab.interpolate(table, dict(everything, host="fleet-b")))}
    assert one == {"fleet-b"}
    orphans = panels["Events from hostnames no Falco target reports (falcosidekick)"]["targets"][0]["expr"]
    assert {r["metric"]["hostname"] for r in prometheus.query(promlab.interpolate(orphans, everything))} == {"unknown"}
