"""Prometheus and Alertmanager on mon-prom scraping a fleet in two clouds, checked through their HTTP APIs.

Falco itself does not run here: mon-fleet-a and mon-fleet-b serve a recorded Falco 0.44.1 scrape through a TEST
FIXTURE (tests/fixtures/falco-metrics/fixture_falco_metrics.py); tests that need it skip when ../shared is absent.
"""

import json
import re
import shlex
import sys
import time
from pathlib import Path

import jinja2
import pytest
import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import (  # noqa: E402
    assert_reached_over_ssh, changes, converge, failures, get_json, http_get, ready, results, run_playbook_json,
    wait_for)

REPO_ROOT = Path(__file__).resolve().parents[3]
RULES_TEMPLATE = REPO_ROOT / "roles" / "prometheus" / "templates" / "falco-alerts.yml.j2"
MON = testinfra.get_host("podman://mon-prom")
FIXTURE_FILE = "/usr/local/lib/fleetwatch-fixture/falco-0.44.1_metrics.txt"
HAS_FALCO_FIXTURE = testinfra.get_host("podman://mon-fleet-a").file(FIXTURE_FILE).exists
needs_falco_fixture = pytest.mark.skipif(
    not HAS_FALCO_FIXTURE,
    reason="no Falco fixture endpoint: ../shared/upstream/recorded/falco-0.44.1_metrics.txt was absent at prepare time")

TARGETS_DIR = "/etc/prometheus/targets"
# One file_sd file per job the role writes (the TLS variants are jobs of their own).
FILE_SD_JOBS = ("node-exporter", "node-exporter-tls", "falco", "falco-tls", "falco-exporter", "falco-exporter-tls",
                "docker-exporter", "falcosidekick")
# (job, host, cloud) of every target the inventory asks for; mon-spare is in no scraped group.
NODE_TARGETS = {("prometheus", "mon-prom", "onprem"), ("node-exporter", "mon-prom", "onprem"),
                ("node-exporter", "mon-fleet-a", "cloud-a"), ("node-exporter", "mon-fleet-b", "cloud-b")}
FALCO_TARGETS = {("falco", "mon-fleet-a", "cloud-a"), ("falco", "mon-fleet-b", "cloud-b"),
                 ("falco-exporter", "mon-fleet-b", "cloud-b")}


def refused(report, host, text):
    """The messages of what failed on host that contain text."""
    return [m for m in failures(report, host) if text in m]


def mon_json(url, params=None):
    return get_json(MON, url, params)


def query(expr):
    """Instant query on the real Prometheus; fails the test on an API or PromQL error."""
    reply = mon_json("http://localhost:9090/api/v1/query", {"query": expr})
    assert reply["status"] == "success", (expr, reply)
    return reply["data"]["result"]


# Series scraped in the last 20 seconds, so only the current targets count. (The role installs Debian's package with
# the service masked, so the package's example configuration never runs; monitoring_container asserts that.)
CURRENT_UP = "up and (timestamp(up) > time() - 20)"


def up_targets(value="1"):
    return {(r["metric"]["job"], r["metric"]["host"], r["metric"].get("cloud"))
            for r in query(CURRENT_UP) if r["value"][1] == value}


def own_metric(name):
    """A metric of Prometheus' own /metrics, read directly (no scrape delay)."""
    reply = http_get(MON, "http://localhost:9090/metrics", timeout=10)
    assert reply.status == 200, reply
    text = reply.body
    match = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)
    assert match, name
    return float(match.group(1))


def main_pid():
    return MON.check_output("systemctl show -p MainPID --value prometheus")


# --- Prometheus from Debian's package --------------------------------------------------------------------------------

def test_prometheus_runs_from_the_package_with_our_flags():
    service = MON.service("prometheus")
    assert service.is_running
    assert service.is_enabled
    cmdline = MON.check_output("tr '\\0' ' ' < /proc/%s/cmdline" % main_pid())
    assert "--storage.tsdb.path=/var/lib/prometheus/metrics2" in cmdline
    assert "--storage.tsdb.retention.time=15d" in cmdline
    assert "--config.file=/etc/prometheus/prometheus.yml" in cmdline


def test_configuration_and_rules_pass_promtool():
    assert MON.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0
    assert MON.run("promtool check rules /etc/prometheus/rules/falco-alerts.yml").rc == 0


def test_global_settings_and_file_sd_jobs():
    config = yaml.safe_load(mon_json("http://localhost:9090/api/v1/status/config")["data"]["yaml"])
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["evaluation_interval"] == "5s"
    assert config["global"]["scrape_timeout"] == "4s"
    assert config["global"]["external_labels"] == {"monitor": "fleetwatch-lab"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in FILE_SD_JOBS:
        assert jobs[name]["file_sd_configs"][0]["files"] == ["%s/%s.json" % (TARGETS_DIR, name)]
    assert set(MON.check_output("ls %s" % TARGETS_DIR).split()) == {"%s.json" % name for name in FILE_SD_JOBS}
    assert "insecure_skip_verify" not in json.dumps(config) or all(
        not job.get("tls_config", {}).get("insecure_skip_verify") for job in config["scrape_configs"])


def test_every_inventory_host_is_up_with_host_and_cloud_labels():
    expected = NODE_TARGETS | (FALCO_TARGETS if HAS_FALCO_FIXTURE else set())
    got = wait_for(lambda: expected <= up_targets() and up_targets())
    assert expected <= got, "missing: %s" % (expected - got)
    every_target = {(r["metric"]["job"], r["metric"]["host"], r["metric"].get("cloud")) for r in query(CURRENT_UP)}
    assert every_target == NODE_TARGETS | FALCO_TARGETS, "targets not generated from the inventory"


def scrapes(job, host, seconds):
    """How many samples of up the target (job, host) has in the last seconds (stale markers do not count)."""
    result = query('count_over_time(up{job="%s",host="%s"}[%ds])' % (job, host, seconds))
    return int(float(result[0]["value"][1])) if result else 0


def test_a_host_converged_with_yaml_target_files_moves_to_json_without_losing_a_target():
    """The upgrade from the role's YAML target files: the host as that role left it (targets/<job>.yml, named by the
    loaded prometheus.yml) ends with only the JSON files, the YAML ones removed after the reload, every target
    scraped throughout, and no restart."""
    wanted = {t for t in NODE_TARGETS | (FALCO_TARGETS if HAS_FALCO_FIXTURE else set()) if t[0] != "prometheus"}
    rc = 1
    try:
        # The same target groups as YAML files, the configuration naming them, loaded, and the stamp the handlers
        # touch after a reload; then the JSON files gone.
        for name in FILE_SD_JOBS:
            groups = json.loads(MON.file("%s/%s.json" % (TARGETS_DIR, name)).content_string)
            old = yaml.safe_dump(groups, sort_keys=True, default_flow_style=False, indent=2)
            MON.check_output("printf %%s %s > %s/%s.yml && chgrp prometheus %s/%s.yml"
                             % (shlex.quote(old), TARGETS_DIR, name, TARGETS_DIR, name))
        MON.check_output(r"sed -i 's#\(%s/[a-z-]*\)[.]json#\1.yml#' /etc/prometheus/prometheus.yml" % TARGETS_DIR)
        MON.check_output("promtool check config /etc/prometheus/prometheus.yml")
        MON.check_output("systemctl reload prometheus && sleep 1 && touch /etc/prometheus/.fleetwatch-loaded")
        assert wait_for(lambda: "%s/node-exporter.yml" % TARGETS_DIR
                        in get_json(MON, "http://localhost:9090/api/v1/status/config")["data"]["yaml"], timeout=30)
        MON.check_output("rm %s" % " ".join("%s/%s.json" % (TARGETS_DIR, name) for name in FILE_SD_JOBS))
        assert wait_for(lambda: wanted <= up_targets(), timeout=60), "the YAML-era targets did not come up"
        pid = main_pid()
        started = time.monotonic()
        rc, report, output = converge("--limit", "mon-prom")
        assert rc == 0, output
        elapsed = int(time.monotonic() - started)
        assert set(MON.check_output("ls %s" % TARGETS_DIR).split()) == {"%s.json" % name for name in FILE_SD_JOBS}
        config = yaml.safe_load(get_json(MON, "http://localhost:9090/api/v1/status/config")["data"]["yaml"])
        read = {path for job in config["scrape_configs"] for sd in job.get("file_sd_configs", []) for path in sd["files"]}
        assert read == {"%s/%s.json" % (TARGETS_DIR, name) for name in FILE_SD_JOBS}
        assert main_pid() == pid
        # The YAML files went after the reload, not before it.
        done = [(module, result) for _task, module, result in changes(report, "mon-prom")]
        reload_at = [i for i, (module, result) in enumerate(done)
                     if module == "ansible.builtin.systemd_service" and result.get("name") == "prometheus"]
        removed_at = [i for i, (module, result) in enumerate(done)
                      if module == "ansible.builtin.file" and str(result.get("path")).startswith(TARGETS_DIR + "/")]
        assert sorted(done[i][1]["path"] for i in removed_at) == sorted(
            "%s/%s.yml" % (TARGETS_DIR, name) for name in FILE_SD_JOBS), done
        assert reload_at and max(reload_at) < min(removed_at), done
        # Every target scraped every 5 s throughout the run; two samples of slack: the window's edges, and the
        # reload restarting the scrape loops of the jobs whose configuration changed (their file names).
        assert wait_for(lambda: wanted <= up_targets(), timeout=30)
        short = {t: scrapes(t[0], t[1], elapsed) for t in wanted if scrapes(t[0], t[1], elapsed) < elapsed // 5 - 2}
        assert not short, "targets with gaps in the %d s of the run: %s" % (elapsed, short)
    finally:
        if rc != 0:
            run_playbook_json("converge.yml", "--limit", "mon-prom")


def test_tls_exporter_is_scraped_over_verified_https_with_basic_auth():
    targets = mon_json("http://localhost:9090/api/v1/targets")["data"]["activeTargets"]
    fleet_b = [t for t in targets if t["labels"]["host"] == "mon-fleet-b" and t["labels"]["job"] == "node-exporter"]
    assert [t["scrapeUrl"] for t in fleet_b] == ["https://mon-fleet-b:9100/metrics"]
    assert fleet_b[0]["health"] == "up", fleet_b[0]["lastError"]
    config_text = MON.file("/etc/prometheus/prometheus.yml").content_string
    assert "insecure_skip_verify" not in config_text
    assert "ca_file: /etc/prometheus/scrape-ca.crt" in config_text
    assert "password_file: /etc/prometheus/scrape-password" in config_text
    password = MON.file("/etc/prometheus/scrape-password")
    assert password.mode == 0o640
    assert (password.user, password.group) == ("root", "prometheus")
    assert password.content_string not in config_text


@needs_falco_fixture
def test_falco_series_carry_the_inventory_host_name():
    results = wait_for(lambda: query("falcosecurity_evt_hostname_info"))
    assert {(r["metric"]["host"], r["metric"]["hostname"], r["metric"]["cloud"]) for r in results} == {
        ("mon-fleet-a", "mon-fleet-a", "cloud-a"), ("mon-fleet-b", "mon-fleet-b", "cloud-b")}
    legacy = wait_for(lambda: query("falco_events"))
    assert {r["metric"]["host"] for r in legacy} == {"mon-fleet-b"}


# --- Alert rules against the real Prometheus -------------------------------------------------------------------------

SELECTOR = re.compile(r'(?<![\w"])(falcosecurity_\w+|falco_events|up)(?![\w(])\s*(\{[^}]*\})?')
COMPARISON_TAIL = re.compile(r"^(?P<data>.*\S)\s*(>=|<=|==|!=|>|<)\s*[0-9.]+\s*$", re.S)


def shipped_alert_rules():
    """The shipped rules, rendered as the role renders them (variables in [[ ]]; the link URLs do not matter here)."""
    template = jinja2.Environment(variable_start_string="[[", variable_end_string="]]").from_string(
        RULES_TEMPLATE.read_text())
    text = template.render(prometheus_alert_runbook_url="https://runbooks.test/runbooks.md",
                           prometheus_alert_dashboard_url="https://grafana.test/d/fleetwatch-falco-fleet")
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


ALERT_RULES = shipped_alert_rules()


def test_prometheus_loaded_every_shipped_rule_without_error():
    groups = wait_for(lambda: mon_json("http://localhost:9090/api/v1/rules")["data"]["groups"])
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(loaded) == {rule["alert"] for rule in ALERT_RULES}
    assert all(rule["health"] == "ok" for rule in loaded.values()), loaded


@needs_falco_fixture
@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
def test_rule_expression_runs_and_finds_the_fixture_series(rule):
    expr = rule["expr"]
    query(expr)  # runs without error
    if "falcosecurity_falcosidekick_" in expr:
        pytest.skip("no falcosidekick runs in this scenario (its image cannot be had here): its expression ran above, "
                    "and tests/promtool fires it on falcosidekick's series")
    selectors = {m.group(1) + (m.group(2) or "") for m in SELECTOR.finditer(expr)}
    assert selectors, expr
    for selector in selectors:
        assert wait_for(lambda: query(selector), timeout=60), "no fixture series for %s" % selector
    tail = COMPARISON_TAIL.match(expr)
    if tail:  # the expression before its threshold returns data for the fixture series
        assert wait_for(lambda: query(tail.group("data")), timeout=60), tail.group("data")


# --- Alertmanager and the webhook ------------------------------------------------------------------------------------

def test_alertmanager_runs_with_a_checked_configuration():
    assert MON.service("prometheus-alertmanager").is_running
    assert MON.service("prometheus-alertmanager").is_enabled
    config = MON.file("/etc/alertmanager/alertmanager.yml")
    assert config.mode == 0o640
    assert MON.run("amtool check-config /etc/alertmanager/alertmanager.yml").rc == 0
    status = mon_json("http://localhost:9093/api/v2/status")
    assert "fixture-webhook" in status["config"]["original"]


@needs_falco_fixture
def test_critical_falco_event_fires_and_reaches_the_webhook():
    def firing():
        alerts = mon_json("http://localhost:9090/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "FalcoCriticalEvent" and a["state"] == "firing"]
    assert {a["labels"]["host"] for a in wait_for(firing)} == {"mon-fleet-a", "mon-fleet-b"}

    def in_alertmanager():
        return [a for a in mon_json("http://localhost:9093/api/v2/alerts")
                if a["labels"]["alertname"] == "FalcoCriticalEvent"]
    routed = wait_for(in_alertmanager)
    assert routed and all(r["name"] == "fixture-webhook" for a in routed for r in a["receivers"])

    def delivered():
        out = MON.run("cat /var/lib/fixture-webhook/received.jsonl")
        bodies = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        return [a for b in bodies for a in b["alerts"]
                if a["labels"]["alertname"] == "FalcoCriticalEvent" and a["labels"]["host"] == "mon-fleet-a"]
    received = wait_for(delivered)
    assert received, "no FalcoCriticalEvent for mon-fleet-a reached the webhook"
    # Labels of the rule, of the inventory (cloud) and of this Prometheus (external label monitor) all arrive.
    wanted = {"cloud": "cloud-a", "severity": "critical", "priority": "2", "monitor": "fleetwatch-lab",
              "rule_name": "Fixture critical: Read sensitive file untrusted"}
    assert any(wanted.items() <= a["labels"].items() for a in received), received


# --- Re-runs: check mode, adding a host, a configuration change, refusals --------------------------------------------

def test_check_mode_on_the_converged_lab_reports_no_change():
    rc, report, output = converge("--check", "--diff")
    assert rc == 0, output
    assert report["stats"] and all(r["changed"] == 0 and r["failures"] == 0 for r in report["stats"].values()), report["stats"]


def test_adding_a_host_to_the_inventory_adds_its_targets_without_a_restart(tmp_path):
    pid, started = main_pid(), own_metric("process_start_time_seconds")
    added = tmp_path / "added-host.yml"
    added.write_text("all:\n  children:\n    falco:\n      hosts:\n        mon-spare:\n")
    try:
        # Only the monitoring host is in --limit: the new host's targets come from the inventory, not its facts.
        rc, report, output = converge("-i", str(added), "--limit", "mon-prom")
        assert rc == 0, output
        assert set(report["stats"]) == {"mon-prom"}, report["stats"]
        wanted = {("node-exporter", "mon-spare", "cloud-c")} | (
            {("falco", "mon-spare", "cloud-c")} if HAS_FALCO_FIXTURE else set())
        got = wait_for(lambda: wanted <= up_targets() and up_targets(), timeout=60)
        assert wanted <= got, "mon-spare's targets did not come up"
        assert main_pid() == pid
        assert own_metric("process_start_time_seconds") == started
    finally:
        rc, _report, output = converge("--limit", "mon-prom")
        assert rc == 0, output
    gone = wait_for(lambda: not any(t[1] == "mon-spare" for t in up_targets()), timeout=60)
    assert gone, "mon-spare's targets stayed after it left the inventory"
    assert main_pid() == pid


def test_a_configuration_change_reloads_without_a_restart():
    pid, reloaded = main_pid(), own_metric("prometheus_config_last_reload_success_timestamp_seconds")
    time.sleep(1)
    try:
        rc, _report, output = converge("--limit", "mon-prom",
                                       "-e", '{"prometheus_external_labels": {"monitor": "fleetwatch-lab-changed"}}')
        assert rc == 0, output
        config = mon_json("http://localhost:9090/api/v1/status/config")["data"]["yaml"]
        assert "fleetwatch-lab-changed" in config
        assert own_metric("prometheus_config_last_reload_successful") == 1
        assert own_metric("prometheus_config_last_reload_success_timestamp_seconds") > reloaded
        assert main_pid() == pid
    finally:
        rc, _report, output = converge("--limit", "mon-prom")
        assert rc == 0, output


def test_a_new_rule_on_the_converged_host_is_checked_written_and_reloaded():
    """The role writes only what differs from its inspection; a changed rule file must still go through promtool,
    reach the host and reload Prometheus, and check mode must still report it without writing."""
    rule_file = "/etc/prometheus/rules/extra.yml"
    good = {"prometheus_extra_rule_groups": [{"name": "fleetwatch-lab-extra", "rules": [
        {"alert": "FixtureExtraRule", "expr": "vector(0) > 1", "for": "1m"}]}]}
    broken = {"prometheus_extra_rule_groups": [{"name": "fleetwatch-lab-broken", "rules": [
        {"alert": "FixtureBrokenRule", "expr": "up{"}]}]}
    configure = ("--limit", "mon-prom", "--tags", "prometheus_configure")
    assert not MON.file(rule_file).exists
    pid, reloaded = main_pid(), own_metric("prometheus_config_last_reload_success_timestamp_seconds")
    time.sleep(1)
    try:
        rc, report, output = converge(*configure, "--check", "--diff", "-e", json.dumps(good))
        assert rc == 0, output
        assert report["stats"]["mon-prom"]["changed"] >= 1, report["stats"]
        # The files module's --diff shows the new rule file with the rule in it.
        shown = [d.get("after") for r in results(report, "mon-prom", "fleetwatch.falco_stack.files")
                 for d in r.get("diff", []) if d.get("before_header") == rule_file]
        assert [a for a in shown if isinstance(a, str) and "FixtureExtraRule" in a], shown
        assert not MON.file(rule_file).exists
        rc, report, output = converge(*configure, "-e", json.dumps(broken))
        assert rc != 0 and refused(report, "mon-prom", "failed to validate"), (failures(report, "mon-prom"), output)
        assert not MON.file(rule_file).exists
        assert own_metric("prometheus_config_last_reload_success_timestamp_seconds") == reloaded
        rc, _report, output = converge("--limit", "mon-prom", "-e", json.dumps(good))
        assert rc == 0, output
        assert "FixtureExtraRule" in MON.file(rule_file).content_string
        assert own_metric("prometheus_config_last_reload_success_timestamp_seconds") > reloaded

        def loaded():
            groups = mon_json("http://localhost:9090/api/v1/rules")["data"]["groups"]
            return [r for g in groups for r in g["rules"] if r["name"] == "FixtureExtraRule"]
        assert wait_for(loaded, timeout=30), "the new rule was not loaded"
        assert main_pid() == pid
    finally:
        rc, _report, output = converge("--limit", "mon-prom")
        assert rc == 0, output
    assert not MON.file(rule_file).exists, "a rule file the role no longer ships stayed"


def test_misspelled_variable_fails_with_a_suggestion():
    rc, report, output = converge("--limit", "mon-prom", "-e", "prometheus_retention_tme=30d")
    assert rc != 0
    assert refused(report, "mon-prom", "prometheus_retention_tme (did you mean prometheus_retention_time?)"), (
        failures(report, "mon-prom"), output)
    assert all(r["changed"] == 0 for r in report["stats"].values()), report["stats"]


def test_exporter_with_basic_auth_needs_scrape_credentials():
    rc, report, output = converge("--limit", "mon-prom", "-e", '{"prometheus_scrape_basic_auth": {}}')
    assert rc != 0
    assert refused(report, "mon-prom", "mon-fleet-b ask for basic auth (node_exporter_basic_auth_users or "
                   "falco_exporter_basic_auth_users), so set prometheus_scrape_basic_auth"), (failures(report, "mon-prom"), output)
    assert report["stats"]["mon-prom"]["changed"] == 0, report["stats"]
    assert MON.file("/etc/prometheus/scrape-password").exists


def test_agent_mode_without_remote_write_is_refused():
    rc, report, output = converge("--limit", "mon-prom", "-e", "prometheus_agent_mode=true")
    assert rc != 0
    assert refused(report, "mon-prom", "prometheus_agent_mode needs at least one prometheus_remote_write"), (
        failures(report, "mon-prom"), output)
    assert report["stats"]["mon-prom"]["changed"] == 0, report["stats"]


# --- Last: a restart keeps the data ------------------------------------------------------------------------------------

def test_data_survives_a_restart():
    before = float(query('count_over_time(up{job="prometheus"}[1h])')[0]["value"][1])
    MON.check_output("systemctl restart prometheus")
    assert wait_for(lambda: ready(MON, "http://localhost:9090/-/ready"), timeout=60), "Prometheus not ready after the restart"
    after = wait_for(lambda: query('count_over_time(up{job="prometheus"}[1h])'), timeout=60)
    assert float(after[0]["value"][1]) >= before
    storage = MON.file("/var/lib/prometheus/metrics2")
    assert storage.user == "prometheus"
    assert storage.mode == 0o750


@pytest.mark.parametrize("name", ["mon-prom", "mon-fleet-a"])
def test_the_playbooks_reach_the_hosts_over_ssh(name):
    assert_reached_over_ssh(name, testinfra.get_host("podman://" + name))
