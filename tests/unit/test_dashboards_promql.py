"""Every query of every shipped dashboard runs on a real Prometheus and returns data for the fixture series.

A real Prometheus (Debian's 2.42 binary, on 127.0.0.1 in a temporary directory) scrapes:
  - the recorded /metrics of a real Falco 0.44.1 (from ../shared/upstream/recorded/), served for two hosts with the
    target labels our prometheus role sets (host, cloud, site, env); fleet-b runs another rules file hash and
    matched a second rule at priority 3; after a few scrapes, fleet-a's falco_rules.yaml and fleet-b's falco.yaml get
    a FIXTURE hash each (as if edited and reloaded: a new sha256 label value, so a new series), for the annotations;
  - a FIXTURE of falco-exporter's falco_events counter (synthetic: no falco-exporter runs here) for the same hosts;
  - a real prometheus-node-exporter on a loopback port, labelled as both hosts;
  - a FIXTURE of falcosidekick's /metrics (tests/fixtures/falcosidekick-metrics/, synthetic: falcosidekick cannot run
    here) as the monitoring host mon-1, with events from fleet-a's and fleet-b's Falco hostnames and one "unknown".
Grafana's variables are substituted the way Grafana does (All = the variable's allValue, one host, two hosts).
"""

import hashlib
import json
import time
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
RECORDED_CONFIG_HASH = "55a172a24335569bc053b53a5a485be9be2fd7b44890b38de92fc8e475bcc86f"
# FIXTURE hashes (of these sentences, not of any real file) the changed files get, from this scrape on.
CHANGED_RULES_HASH = hashlib.sha256(b"FIXTURE: falco_rules.yaml edited on fleet-a").hexdigest()
CHANGED_CONFIG_HASH = hashlib.sha256(b"FIXTURE: falco.yaml edited on fleet-b").hexdigest()
CHANGE_AT_SCRAPE = 5
LEGACY_EVENTS = [("Write below binary dir", "3", "syscall", ",filesystem,mitre_persistence,"),
                 ("Launch Privileged Container", "6", "syscall", ",container,mitre_privilege_escalation,"),
                 ("Read sensitive file untrusted", "4", "syscall", ",filesystem,mitre_credential_access,")]
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def falco_fixture(host, recorded):
    if host == "fleet-a":
        return promlab.changing_fixture(promlab.falco_metrics_fixture(recorded, rule_step=1),
                                        promlab.falco_metrics_fixture(recorded, rule_step=1,
                                                                      replace={RECORDED_HASH: CHANGED_RULES_HASH}),
                                        at_hit=CHANGE_AT_SCRAPE)
    first_rule_line = next(line for line in recorded.splitlines() if line.startswith(RULE_LINE_START))
    replace = {first_rule_line: first_rule_line + "\n" + EXTRA_RULE, RECORDED_HASH: "0" * 64,
               'hostname="vm"': 'hostname="%s.example"' % host}
    return promlab.changing_fixture(promlab.falco_metrics_fixture(recorded, rule_step=3, replace=replace),
                                    promlab.falco_metrics_fixture(recorded, rule_step=3, replace=dict(
                                        replace, **{RECORDED_CONFIG_HASH: CHANGED_CONFIG_HASH})),
                                    at_hit=CHANGE_AT_SCRAPE)


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
    variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "query"}
    # hostname has no allValue (its All lists the selected hosts' hostnames), and only the Loki panel reads it.
    everything = {name: v.get("allValue") or ".*" if v.get("includeAll") else ["fleet-a"] for name, v in variables.items()}
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


VARIABLE_CASES = [(name, v["name"], v) for name, d in DASHBOARDS.items() for v in d["templating"]["list"]
                  if v["type"] == "query"]


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
        # the hostnames the two Falcos report (falcosidekick's Loki streams carry these)
        "hostname": {"vm", "fleet-b.example"},
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


def wait_for_the_fixture_changes(prometheus):
    """Until Prometheus has scraped both changed files' new hashes (CHANGE_AT_SCRAPE)."""
    query = ('count(falcosecurity_falco_sha256_rules_files_info{sha256="%s"} or falcosecurity_falco_sha256_config_files_info'
             '{sha256="%s"})' % (CHANGED_RULES_HASH, CHANGED_CONFIG_HASH))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = prometheus.query(query)
        if found and found[0]["value"][1] == "2":
            return
        time.sleep(0.5)
    raise AssertionError("the fixture hashes never reached Prometheus")


ANNOTATION_CASES = [(name, a["name"], a) for name, d in DASHBOARDS.items() for a in promlab.dashboard_annotations(d)]
# The change each annotation must find: (host, file, new hash), and the host on which nothing changed.
CHANGES = {"Rules file changed": (("fleet-a", "falco_rules.yaml", CHANGED_RULES_HASH), "fleet-b"),
           "Configuration file changed": (("fleet-b", "falco.yaml", CHANGED_CONFIG_HASH), "fleet-a")}


@pytest.mark.parametrize("dashboard_name,annotation_name,annotation", ANNOTATION_CASES,
                         ids=["%s/%s" % c[:2] for c in ANNOTATION_CASES])
def test_annotation_marks_the_change_on_its_host_and_file_only(prometheus, dashboard_name, annotation_name, annotation):
    """Grafana runs an annotation as a range query at its step and turns each series into an event from its first to
    its last point: one event per changed file, starting when the new hash was first scraped, titled from the labels."""
    wait_for_the_fixture_changes(prometheus)
    (host, file_name, sha256), unchanged = CHANGES[annotation_name]
    everything = {"host": ".*", "cloud": ".*"}
    result = prometheus.query_range(promlab.interpolate(annotation["expr"], everything), seconds=120, step=1)
    assert [(r["metric"]["host"], r["metric"]["file_name"], r["metric"]["sha256"]) for r in result] == [
        (host, file_name, sha256)]
    new_series = prometheus.query_range('max by (host, file_name, sha256) ({__name__=~"falcosecurity_falco_sha256_.*",'
                                        'sha256="%s"})' % sha256, seconds=120, step=1)
    assert abs(float(result[0]["values"][0][0]) - float(new_series[0]["values"][0][0])) <= 1, \
        "the event starts when the new hash appeared"
    title = annotation["titleFormat"].replace("{{host}}", host).replace("{{file_name}}", file_name)
    assert host in title and file_name in title and "{{" not in title
    for selection in (dict(everything, host=unchanged), dict(everything, host=[unchanged])):
        expr = promlab.interpolate(annotation["expr"], selection)
        assert prometheus.query_range(expr, seconds=120, step=1) == [], "no change on %s: %s" % (unchanged, expr)
    one = prometheus.query_range(promlab.interpolate(annotation["expr"], dict(everything, host=[host])), seconds=120, step=1)
    assert [r["metric"]["host"] for r in one] == [host]


def test_the_old_hash_stays_no_event_of_its_own(prometheus):
    """Only the new hash's series makes an event: the old one is gone from the scrape (a stale series), and a host
    whose files never changed makes none at all."""
    wait_for_the_fixture_changes(prometheus)
    rules = next(a for a in promlab.dashboard_annotations(DASHBOARDS["falco-fleet"]) if a["name"] == "Rules file changed")
    result = prometheus.query(promlab.interpolate(rules["expr"], {"host": ".*", "cloud": ".*"}))
    assert {r["metric"]["sha256"] for r in result} == {CHANGED_RULES_HASH}
    before = prometheus.query('falcosecurity_falco_sha256_rules_files_info{host="fleet-a"}')
    assert [r["metric"]["sha256"] for r in before] == [CHANGED_RULES_HASH], "the recorded hash is no longer scraped"
