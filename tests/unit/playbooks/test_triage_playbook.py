"""playbooks/triage.yml end to end on the controller: two hosts with alert files, one that cannot be reached."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
RECORDED = REPO.parent / "shared" / "upstream" / "recorded" / "falco-0.44.1_alerts.jsonl"


def legacy_alert(minute, proc="backup", parent="cron"):
    """An alert in Falco 0.31's shape: no hostname field."""
    return json.dumps({
        "output": "10:%02d:00.000000000: Warning Sensitive file opened for reading by non-trusted program" % minute,
        "priority": "Warning", "rule": "Read sensitive file untrusted", "source": "syscall",
        "tags": ["filesystem", "mitre_credential_access"],
        "time": "2026-11-27T%02d:%02d:00.000000000Z" % (10 + minute // 60, minute % 60),
        "output_fields": {"proc.name": proc, "proc.pname": parent, "proc.cmdline": proc + " --all",
                          "fd.name": "/etc/shadow", "user.name": "root", "container.id": "host",
                          "evt.time": 1764237600000000000 + minute},
    })


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    work = tmp_path_factory.mktemp("triage")
    legacy = work / "legacy.log"
    # A journalctl dump as the tutorial makes it: banners, garbage, and 90 alerts over 90 minutes.
    legacy.write_text("Falco version 0.31.1 (driver version b7eb0dd6)\nLoading rules from file /etc/falco/falco_rules.yaml:\n"
                      + "\n".join(legacy_alert(m) for m in range(90)) + "\n{\"output\": \"truncated\n")
    current = work / "current.log"
    if RECORDED.exists():
        current.write_bytes(RECORDED.read_bytes())
    else:
        current.write_text(legacy_alert(0, proc="cat", parent="bash") + "\n")
    inventory = work / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"falco": {"hosts": {
        "legacy-host": {"ansible_connection": "local", "fleetwatch_triage_path": str(legacy)},
        "current-host": {"ansible_connection": "local", "fleetwatch_triage_path": str(current)},
        "gone-host": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1},
    }}, "monitoring": {"hosts": {
        # Grafana's scheme and port, as the prometheus role reads them on this host for the dashboard links.
        "mon-1": {"ansible_connection": "local", "fleetwatch_tls_enabled": True, "grafana_http_port": 3300},
    }}}}}))
    out = work / "report"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_SHOW_CUSTOM_STATS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(REPO / "playbooks" / "triage.yml"),
         "-e", "fleetwatch_triage_source=file", "-e", "fleetwatch_triage_report_dir=%s" % out,
         "-e", "fleetwatch_triage_csv=true", "-e", "ansible_python_interpreter=%s" % sys.executable],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode in (0, 4), proc.stdout + proc.stderr  # 4: a host was unreachable, as intended
    return {"dir": out, "run": json.loads(proc.stdout[proc.stdout.index("{"):]), "current": current}


def messages(run):
    """Every message the run's tasks returned, on any host."""
    return [result.get("msg") for play in run["plays"] for task in play["tasks"] for result in task["hosts"].values()]


def test_the_report_merges_both_hosts_and_names_the_missing_one(report):
    markdown = (report["dir"] / "report.md").read_text()
    assert "Hosts reported: 2 (no report from: gone-host)" in markdown
    assert "## Top rules on legacy-host" in markdown
    assert "## Top rules on current-host" in markdown
    assert [m for m in messages(report["run"]) if "No report from: gone-host" in str(m)], messages(report["run"])


def test_alerts_without_a_hostname_are_counted_under_the_inventory_host(report):
    summary = json.loads((report["dir"] / "report.json").read_text())
    current_alerts = sum(1 for line in report["current"].read_text().splitlines() if line.startswith("{"))
    assert summary["matched"] == 90 + current_alerts
    by_host = {row["host"]: row["count"] for row in summary["by_host"]["top"]}
    assert by_host["legacy-host"] == 90
    assert summary["skipped_lines"]["not_json"] == 2
    assert summary["skipped_lines"]["truncated_json"] == 1


def test_the_frequent_low_priority_actor_is_suggested_as_an_exception(report):
    suggested = yaml.safe_load((report["dir"] / "suggested-exceptions.yml").read_text())["falco_rule_exceptions"]
    assert len(suggested) == 1
    exception = suggested[0]
    assert exception["rule"] == "Read sensitive file untrusted"
    assert "proc.name" in exception["fields"]
    assert len(exception["fields"]) == len(exception["comps"]) == len(exception["values"][0])
    assert dict(zip(exception["fields"], exception["values"][0]))["proc.name"] == "backup"


def test_the_csv_has_one_row_per_host_rule_and_priority(report):
    rows = (report["dir"] / "report.csv").read_text().splitlines()
    assert rows[0] == "host,rule,priority,count"
    assert "legacy-host,Read sensitive file untrusted,Warning,90" in rows


def test_each_rule_links_to_the_fleet_dashboard_on_grafana_filtered_on_rule_and_host(report):
    markdown = (report["dir"] / "report.md").read_text()
    dashboard = "https://mon-1:3300/d/fleetwatch-falco-fleet"
    assert ("| [Read sensitive file untrusted](%s?var-rule=Read%%20sensitive%%20file%%20untrusted"
            "&var-host=legacy-host) |" % dashboard) in markdown
    rule_cells = [line.split(" | ")[3] for line in markdown.split("## Top rules on legacy-host", 1)[1]
                  .split("##", 1)[0].splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rule_cells and all(cell.startswith("[") and "](%s?var-rule=" % dashboard in cell for cell in rule_cells)


def test_the_result_is_published_for_awx_as_in_report_json(report):
    summary = json.loads((report["dir"] / "report.json").read_text())
    suggested = yaml.safe_load((report["dir"] / "suggested-exceptions.yml").read_text())["falco_rule_exceptions"]
    # The run-wide set_stats data, as AWX stores it.
    assert report["run"]["global_custom_stats"] == {"fleetwatch_triage": {
        "report_dir": str(report["dir"]),
        "hosts_reported": ["current-host", "legacy-host"],
        "hosts_unreported": ["gone-host"],
        "alerts": summary["alerts"],
        "matched": summary["matched"],
        "rule_totals": summary["rule_totals"]["top"],
        "suggested_exceptions": len(suggested),
    }}
    assert summary["rule_totals"]["top"][0]["rule"] == "Read sensitive file untrusted"
