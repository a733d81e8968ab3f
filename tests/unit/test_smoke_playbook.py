"""playbooks/smoke.yml: its Prometheus query on both metric paths (real Prometheus, fixture metrics); what it says
where no Falco runs (here: this machine, which has none); and whole runs against a real Prometheus on loopback with a
stand-in Falco host (tests/unit/fake_falco_host.py: recorded calls instead of events, the alerts Falco would write),
passing only when the host's own alert with its marker AND its counter are there. Real Falco: the lab (docs)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.fleetwatch.falco_stack.plugins.filter.counters_risen import counters_risen
from localplay import REPO, run_playbook

sys.path.insert(0, str(REPO / "tests" / "fixtures"))
sys.path.insert(0, str(REPO / "tests" / "unit"))
import fake_falco_host  # noqa: E402
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


# Nothing listens on the discard port of the loopback: the connection is refused at once.
UNREACHABLE = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
               "ansible_ssh_common_args": "-o ConnectTimeout=3"}


def local_inventory(tmp_path, unreachable=False):
    falco = {"agent-here": None}
    if unreachable:
        falco["agent-gone"] = UNREACHABLE
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": {"falco": {"hosts": falco},
                                      "monitoring": {"hosts": {"monitor-here": None}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return str(tmp_path / "hosts.yml")


def run_smoke_playbook(tmp_path, *args, env=None, unreachable=False):
    """smoke.yml with the JSON callback; returns (rc, {host: its smoke_report fact}, report, raw output)."""
    proc = run_playbook(tmp_path, "-i", local_inventory(tmp_path, unreachable), str(SMOKE), *args, timeout=300,
                        env=dict(env or {}, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"))
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("no JSON report:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    verdicts = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if "smoke_report" in result.get("ansible_facts", {}):
                    verdicts[host] = result["ansible_facts"]["smoke_report"]
    return proc.returncode, verdicts, report, proc.stdout + proc.stderr


def failure_messages(report, host):
    """The messages of the host's failed results, in order."""
    return [result["msg"] for play in report["plays"] for task in play["tasks"]
            for name, result in task["hosts"].items() if name == host and result.get("failed")]


def test_a_host_without_a_running_falco_or_unreachable_is_named_and_fails(tmp_path):
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not found")
    falco_here = ["systemctl", "is-active", "--quiet", "falco.service"]
    if shutil.which("systemctl") and subprocess.run(falco_here, check=False).returncode == 0:
        pytest.skip("this machine runs Falco; the test needs a host without it")
    before = set(os.listdir("/bin"))
    started = time.monotonic()
    rc, verdicts, report, output = run_smoke_playbook(tmp_path, unreachable=True)
    assert rc != 0, output
    verdict = verdicts["agent-here"]
    assert verdict["passed"] is False and all(row["status"] == "not tested" for row in verdict["events"]), verdict
    assert verdict["msg"] == ("FAILED. No Falco unit is active on agent-here, so nothing there can detect the smoke "
                              "events: this host is NOT smoke-tested. Deploy Falco with playbooks/falco.yml, or leave "
                              "the host out with --limit.")
    assert failure_messages(report, "agent-here") == [verdict["msg"]]
    assert report["stats"]["agent-gone"]["unreachable"] == 1 and "agent-gone" not in verdicts
    assert failure_messages(report, "localhost") == [
        "Not smoke-tested or failed: agent-gone, agent-here (see the summary above)."]
    summary = [result["msg"] for play in report["plays"] for task in play["tasks"]
               for result in task["hosts"].values() if isinstance(result.get("msg"), list)]
    assert summary == [["agent-gone: FAILED. It stopped before its verdict (unreachable, see above): NOT "
                        "smoke-tested.", "agent-here: " + verdict["msg"]]]
    assert set(os.listdir("/bin")) == before
    assert time.monotonic() - started < 120, "gave up early, not after the deadline"


def test_a_host_whose_falco_has_none_of_the_rules_is_not_smoke_tested(tmp_path):
    """A Falco unit is active, but the rules it has enabled are none the events need (one is disabled by the
    configuration's selection): every event is planned as not tested and the host fails instead of passing."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not found")
    bin_dir = fake_falco_host.install(tmp_path / "host", {
        "unit": "falco-modern-bpf.service", "hostname": "agent-here", "engine": "",
        "rules": {"Some other rule": True, "Read sensitive file untrusted": True},
        "selection": [{"disable": {"rule": "Read sensitive*"}}]})
    rc, verdicts, _report, output = run_smoke_playbook(tmp_path, env=fake_falco_host.environment(bin_dir))
    assert rc != 0, output
    line = verdicts["agent-here"]["msg"]
    assert line.startswith("FAILED. None of the smoke events can run on agent-here"), line
    assert "a file written below /bin: rule not loaded: Write below binary dir" in line
    assert "/etc/shadow read by cat: rule disabled: Read sensitive file untrusted" in line
    assert "a shell with a terminal in a container: rule not loaded: Terminal shell in container" in line
    assert fake_falco_host.calls(tmp_path / "host") == [], "nothing was run"


def rule_counters(rules, rising=True):
    """Body factory: Falco's rule counters for these rules, each one higher at every scrape (or steady)."""
    def body(hits):
        lines = ["# TYPE falcosecurity_falco_rules_matches_total counter"]
        lines += ['falcosecurity_falco_rules_matches_total{priority="4",rule_name="%s",source="syscall"} %d'
                  % (rule, 1 + (hits if rising else 0)) for rule in rules]
        return "\n".join(lines) + "\n"
    return body


STABLE_HOST = {"unit": "falco-modern-bpf.service", "hostname": "agent-here.example", "engine": "podman",
               "images": ["localhost/fixture:1"],
               "rules": {"Read sensitive file untrusted": True, "Create Symlink Over Sensitive Files": True,
                         "Terminal shell in container": True, "Run shell untrusted": True}}
TUTORIAL_HOST = {"unit": "falco-modern-bpf.service", "hostname": "agent-here", "engine": "podman",
                 "images": ["localhost/fixture:1"], "privileged_rule": "Launch Excessively Capable Container",
                 "rules": {"Write below binary dir": True, "Launch Privileged Container": True,
                           "Launch Excessively Capable Container": True, "Launch Sensitive Mount Container": True,
                           "Read sensitive file untrusted": True}}
# The rules whose counters the fixture metrics serve, rising.
STABLE_EVENT_RULES = ["Read sensitive file untrusted", "Create Symlink Over Sensitive Files",
                      "Terminal shell in container"]
TUTORIAL_EVENT_RULES = ["Write below binary dir", "Launch Excessively Capable Container",
                        "Launch Sensitive Mount Container"]


def run_smoke(tmp_path, host, counted_rules, rising=True, deadline=30):
    """smoke.yml against one stand-in Falco host whose counters a real Prometheus on loopback scrapes."""
    bin_dir = fake_falco_host.install(tmp_path / "host", host)
    with promlab.FixtureServer() as server, promlab.Prometheus(tmp_path) as prom:
        server.add("/falco/agent", rule_counters(counted_rules, rising))
        prom.start([promlab.job("falco", [promlab.target(server.address, "/falco/agent", host="agent-here")])])
        prom.wait_for_scrapes(2)
        started = time.monotonic()
        result = run_smoke_playbook(tmp_path, "-e", json.dumps({"fleetwatch_smoke_prometheus_url": prom.url,
                                                               "fleetwatch_smoke_deadline": deadline}),
                                    env=fake_falco_host.environment(bin_dir))
    return result + (time.monotonic() - started,)


def needs_prometheus():
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not found")
    reason = promlab.available()
    if reason:
        pytest.skip(reason)


def test_a_default_deployment_passes_on_the_stable_rules_events_with_alert_and_counter(tmp_path):
    """The falco role's defaults (stable rules only): the tutorial's events are not tested, the stable ones run."""
    needs_prometheus()
    rc, verdicts, _report, output, took = run_smoke(tmp_path, STABLE_HOST, STABLE_EVENT_RULES)
    assert rc == 0, output
    assert [(row["id"], row["status"], row["alert"], row["counter"]) for row in verdicts["agent-here"]["events"]] == [
        ("write_below_bin", "not tested", False, False), ("privileged_container", "not tested", False, False),
        ("sensitive_mount_container", "not tested", False, False), ("read_shadow", "passed", True, True),
        ("symlink_shadow", "passed", True, True), ("shell_in_container", "passed", True, True)]
    assert verdicts["agent-here"]["msg"] == (
        "passed. Seen in its own alert and its Prometheus counter: /etc/shadow read by cat "
        "(Read sensitive file untrusted), a symbolic link to /etc/shadow (Create Symlink Over Sensitive "
        "Files), a shell with a terminal in a container (Terminal shell in container). Not tested: a file "
        "written below /bin (rule not loaded: Write below binary dir), a privileged container (rule not "
        "loaded: Launch Privileged Container / Launch Excessively Capable Container), a container with "
        "the host's /etc mounted (rule not loaded: Launch Sensitive Mount Container).")
    programs = [call[0] for call in fake_falco_host.calls(tmp_path / "host")]
    assert programs == ["cat", "ln", "podman"], programs
    shell = fake_falco_host.calls(tmp_path / "host")[2]
    assert shell[:8] == ["podman", "run", "--rm", "--pull", "never", "--network", "none", "--user"]
    assert "--tty" in shell and shell[-3:-1] == ["-c", ":"] and shell[-1].startswith("fwsmoke-")
    assert took < 60, "waited for nothing: %.0f s" % took


def test_the_tutorials_events_pass_where_their_rules_are_loaded_a_late_privileged_flag_included(tmp_path):
    needs_prometheus()
    rc, verdicts, _report, output, _took = run_smoke(tmp_path, TUTORIAL_HOST, TUTORIAL_EVENT_RULES)
    assert rc == 0, output
    assert verdicts["agent-here"]["msg"] == (
        "passed. Seen in its own alert and its Prometheus counter: a file written below /bin "
        "(Write below binary dir), a privileged container (Launch Excessively Capable Container), a "
        "container with the host's /etc mounted (Launch Sensitive Mount Container). Not tested: none.")


def test_a_counter_that_rose_is_not_enough_without_the_hosts_own_alert(tmp_path):
    """The alerts carry the host's markers but another hostname (as another Falco sharing the kernel writes them):
    the counters rise, the host fails, and says which hostname came."""
    needs_prometheus()
    host = dict(STABLE_HOST, engine="", alert_hostname="some-other-agent")
    rc, verdicts, report, output, took = run_smoke(tmp_path, host, STABLE_EVENT_RULES[:2], deadline=6)
    assert rc != 0 and report["stats"]["agent-here"]["failures"] == 1, output
    line = verdicts["agent-here"]["msg"]
    assert line.startswith("FAILED. Not confirmed within 6 s: /etc/shadow read by cat: no alert of "
                           "agent-here's Falco with hostname agent-here.example and marker fwsmoke-"), line
    assert "(alerts with the marker came with hostname some-other-agent)" in line
    assert "Prometheus did not show" not in line, "the counters rose"
    assert took < 60


def test_an_alert_is_not_enough_without_the_hosts_counter(tmp_path):
    needs_prometheus()
    host = dict(STABLE_HOST, engine="")
    rc, verdicts, _report, output, _took = run_smoke(tmp_path, host, ["Read sensitive file untrusted"], deadline=6)
    assert rc != 0, output
    line = verdicts["agent-here"]["msg"]
    assert "/etc/shadow read by cat (Read sensitive file untrusted)" in line
    assert "a symbolic link to /etc/shadow: Prometheus did not show agent-here's counter rise for Create Symlink " \
           "Over Sensitive Files" in line


def test_check_mode_is_refused_before_anything_is_looked_at(tmp_path):
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not found")
    bin_dir = fake_falco_host.install(tmp_path / "host", dict(STABLE_HOST, engine=""))
    rc, verdicts, report, output = run_smoke_playbook(tmp_path, "--check", env=fake_falco_host.environment(bin_dir))
    assert rc != 0 and verdicts == {}, output
    assert failure_messages(report, "agent-here") == [
        "The smoke test causes events, which check mode would skip: run it without --check."]
