"""playbooks/smoke.yml: its Prometheus query on both metric paths (real Prometheus, fixture metrics), and what it says
where no Falco runs (here: this machine, which has none)."""

import json
import os
import shutil
import sys
import time

import pytest
import yaml

from ansible_collections.fleetwatch.falco_stack.plugins.filter.counters_risen import counters_risen
from localplay import REPO, run_playbook

sys.path.insert(0, str(REPO / "tests" / "fixtures"))
import promlab  # noqa: E402

SMOKE = REPO / "playbooks" / "smoke.yml"
LEGACY_EVENTS = [("Write below binary dir", "3", "syscall", ",filesystem,"),
                 ("Launch Privileged Container", "6", "syscall", ",container,")]


def smoke_query(host):
    template = yaml.safe_load(SMOKE.read_text())[0]["vars"]["smoke_query"]
    assert template.count("{{ inventory_hostname | to_json }}") == 2
    return template.replace("{{ inventory_hostname | to_json }}", json.dumps(host))


def answer(result):
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_the_query_counts_each_rule_of_one_host_on_both_metric_paths(tmp_path):
    reason = promlab.available()
    if reason:
        pytest.skip(reason)
    if not promlab.RECORDED_FALCO_METRICS.exists():
        pytest.skip("reference data absent: %s (recorded Falco 0.44.1 /metrics)" % promlab.RECORDED_FALCO_METRICS)
    recorded = promlab.RECORDED_FALCO_METRICS.read_text()
    with promlab.FixtureServer() as server, promlab.Prometheus(tmp_path) as prom:
        server.add("/falco/native", promlab.falco_metrics_fixture(recorded, rule_step=1))
        server.add("/falco/other", promlab.falco_metrics_fixture(recorded, rule_step=1))
        server.add("/falco-exporter/legacy", promlab.falco_events_fixture("legacy.example", LEGACY_EVENTS))
        prom.start([promlab.job("falco", [promlab.target(server.address, "/falco/native", host='web "1"'),
                                          promlab.target(server.address, "/falco/other", host="web-2")]),
                    promlab.job("falco-exporter", [promlab.target(server.address, "/falco-exporter/legacy",
                                                                  host="legacy")])])
        prom.wait_for_scrapes(2)
        native_before = prom.query(smoke_query('web "1"'))
        legacy_before = prom.query(smoke_query("legacy"))
        prom.wait_for_scrapes(4)
        at = time.time()
        native_after = prom.query(smoke_query('web "1"'), at=at)
        only_that_host = prom.query('sum by (rule_name) (falcosecurity_falco_rules_matches_total{host="web \\"1\\""})',
                                    at=at)
    recorded_rules = {line.split('rule_name="')[1].split('"')[0] for line in recorded.splitlines()
                      if line.startswith("falcosecurity_falco_rules_matches_total{")}
    # One series per rule of that host only (the other host's identical series are not summed in).
    assert {r["metric"]["rule"] for r in native_after} == recorded_rules
    assert all(set(r["metric"]) == {"rule"} for r in native_after)
    assert {r["metric"]["rule"]: r["value"][1] for r in native_after} == \
        {r["metric"]["rule_name"]: r["value"][1] for r in only_that_host}
    assert counters_risen(answer(native_after), answer(native_before), "rule") == sorted(recorded_rules)
    assert {r["metric"]["rule"] for r in legacy_before} == {event[0] for event in LEGACY_EVENTS}


def test_a_host_without_a_running_falco_is_reported_not_tested(tmp_path):
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not found")
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": {"falco": {"hosts": {"agent-here": None}},
                                      "monitoring": {"hosts": {"monitor-here": None}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    before = set(os.listdir("/bin"))
    started = time.monotonic()
    proc = run_playbook(tmp_path, "-i", str(tmp_path / "hosts.yml"), str(SMOKE), timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "No Falco unit is active on agent-here" in output and "NOT smoke-tested" in output, output
    assert "agent-here                 : ok=" in output and "failed=1" in output
    assert set(os.listdir("/bin")) == before
    assert time.monotonic() - started < 120, "gave up early, not after the deadline"


def test_a_host_whose_falco_has_none_of_the_rules_is_not_smoke_tested(tmp_path):
    """A Falco unit is active (a fake systemctl says so) but no rules file names the three rules: every event is
    planned as 'rule not loaded' and the host fails instead of passing."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not found")
    if os.path.exists("/etc/falco"):
        pytest.skip("this machine has /etc/falco; the test needs a host without Falco rules")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    systemctl = fake_bin / "systemctl"
    systemctl.write_text('#!/bin/sh\n[ "$1" = is-active ] && [ "$3" = falco-modern-bpf.service ] && exit 0\nexit 3\n')
    systemctl.chmod(0o755)
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": {"falco": {"hosts": {"agent-here": None}},
                                      "monitoring": {"hosts": {"monitor-here": None}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    proc = run_playbook(tmp_path, "-i", str(tmp_path / "hosts.yml"), str(SMOKE), timeout=300,
                        env={"PATH": "%s:%s" % (fake_bin, os.environ["PATH"])})
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "None of the smoke events can run on agent-here" in output, output
    for event in ("write_below_bin", "privileged", "sensitive_mount"):
        assert "'%s': 'rule not loaded'" % event in output, output
