"""playbooks/triage.yml with fleetwatch_triage_source=central: one visit to the collector, the same report."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
RECORDED = REPO.parent / "shared" / "upstream" / "recorded" / "falco-0.44.1_tutorial-events.jsonl"
REPORT_FILES = ("report.md", "report.json", "report.csv", "suggested-exceptions.yml")


def legacy_alert(minute, proc="backup", parent="cron"):
    """An alert in Falco 0.31's shape: no hostname field."""
    return json.dumps({
        "output": "10:%02d:00.000000000: Warning Sensitive file opened for reading by non-trusted program" % minute,
        "priority": "Warning", "rule": "Read sensitive file untrusted", "source": "syscall",
        "tags": ["filesystem", "mitre_credential_access"],
        "time": "2026-11-27T%02d:%02d:00.000000000Z" % (10 + minute // 60, minute % 60),
        "output_fields": {"proc.name": proc, "proc.pname": parent, "proc.cmdline": proc + " --all",
                          "fd.name": "/etc/shadow", "user.name": "root", "container.id": "host"},
    })


def run_triage(work, inventory, out, *extra):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(REPO / "playbooks" / "triage.yml"),
         "-e", "fleetwatch_triage_report_dir=%s" % out, "-e", "fleetwatch_triage_csv=true",
         "-e", "ansible_python_interpreter=%s" % sys.executable, *extra],
        capture_output=True, text=True, env=env, timeout=600, check=False, cwd=str(work))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout[proc.stdout.index("{"):])


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    work = tmp_path_factory.mktemp("central")
    # The same alerts as each host's own file and as the collector's per-host files.
    own = {
        "legacy-host": "Falco version 0.31.1\n" + "\n".join(legacy_alert(m) for m in range(90)) + "\n",
        "busy-host": "\n".join(legacy_alert(m, proc="cat", parent="bash") for m in range(0, 120, 3)) + "\n",
    }
    if RECORDED.exists():
        own["current-host"] = RECORDED.read_text()
    store = work / "store"
    store.mkdir()
    hosts = {}
    for host, text in own.items():
        (work / ("%s.log" % host)).write_text(text)
        (store / ("%s.jsonl" % host)).write_text(text)
        hosts[host] = {"ansible_connection": "local", "fleetwatch_triage_path": str(work / ("%s.log" % host))}
    # A file at the centre for a host outside the triaged group is not read.
    (store / "retired-host.jsonl").write_text(legacy_alert(5, proc="old") + "\n")
    inventory = work / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "falco": {"hosts": hosts},
        "monitoring": {"hosts": {"collector": {"ansible_connection": "local", "event_collector_store_dir": str(store)}}},
    }}}))
    per_host_out, central_out = work / "per-host", work / "central"
    run_triage(work, inventory, per_host_out, "-e", "fleetwatch_triage_source=file")
    run = run_triage(work, inventory, central_out, "-e", "fleetwatch_triage_source=central")
    return {"per_host": per_host_out, "central": central_out, "run": run, "store": store, "hosts": sorted(hosts)}


@pytest.mark.parametrize("name", REPORT_FILES)
def test_the_central_report_equals_the_per_host_report(reports, name):
    assert (reports["central"] / name).read_text() == (reports["per_host"] / name).read_text()


def test_the_central_run_visits_only_the_collector(reports):
    visited = set(reports["run"]["stats"])
    assert "collector" in visited and not visited & set(reports["hosts"]), visited


def test_the_report_covers_every_triaged_host_and_not_the_others(reports):
    markdown = (reports["central"] / "report.md").read_text()
    assert "- Hosts reported: %d\n" % len(reports["hosts"]) in markdown
    for host in reports["hosts"]:
        assert "## Top rules on %s" % host in markdown
    assert "retired-host" not in markdown


def test_a_host_without_a_file_at_the_centre_is_named(reports, tmp_path):
    store = reports["store"]
    moved = tmp_path / "busy-host.jsonl"
    shutil.move(str(store / "busy-host.jsonl"), str(moved))
    try:
        inventory = reports["central"].parent / "hosts.yml"
        out = tmp_path / "report"
        run_triage(reports["central"].parent, inventory, out, "-e", "fleetwatch_triage_source=central")
        assert "(no report from: busy-host)" in (out / "report.md").read_text()
    finally:
        shutil.move(str(moved), str(store / "busy-host.jsonl"))


def test_rules_link_to_grafana_on_the_first_monitoring_host_by_default(reports):
    markdown = (reports["central"] / "report.md").read_text()
    assert "[Read sensitive file untrusted](http://collector:3000/d/fleetwatch-falco-fleet?var-rule=" in markdown


def test_the_monitoring_host_s_own_dashboard_url_is_the_one_linked(reports, tmp_path):
    """prometheus_alert_dashboard_url set for the monitoring host (Grafana behind a proxy, say) is reused."""
    inventory = yaml.safe_load((reports["central"].parent / "hosts.yml").read_text())
    collector = inventory["all"]["children"]["monitoring"]["hosts"]["collector"]
    collector["prometheus_alert_dashboard_url"] = "https://grafana.example/d/fleetwatch-falco-fleet"
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    run_triage(reports["central"].parent, tmp_path / "hosts.yml", tmp_path / "report",
               "-e", "fleetwatch_triage_source=central")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "[Read sensitive file untrusted](https://grafana.example/d/fleetwatch-falco-fleet?var-rule=" in markdown


def test_an_empty_dashboard_url_leaves_rule_names_plain(reports, tmp_path):
    run_triage(reports["central"].parent, reports["central"].parent / "hosts.yml", tmp_path / "report",
               "-e", "fleetwatch_triage_source=central", "-e", "fleetwatch_triage_dashboard_url=")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "](" not in markdown
    assert "| Read sensitive file untrusted |" in markdown
    # Only the links differ from the report with them.
    linked = (reports["central"] / "report.md").read_text()
    assert markdown == re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", linked)
