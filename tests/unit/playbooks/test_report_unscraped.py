"""The end of site.yml names the Falco hosts Prometheus cannot scrape (Falco 0.31 to 0.43, gRPC off, no native
metrics), with what to set for each; run for real on a local monitoring host (it only reads the inventory)."""

import json
import shutil
import sys

import pytest
import yaml

from localplay import REPO, run_playbook

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not found")
PLAYBOOKS = REPO / "playbooks"


def warnings_of(tmp_path, falco_hosts):
    """Run playbooks/report_unscraped.yml; return its warnings, one per host ([] when it printed none)."""
    inventory = {"all": {"vars": {"ansible_python_interpreter": sys.executable}, "children": {
        "monitoring": {"hosts": {"mon-1": {"ansible_connection": "local"}}},
        # Fleet hosts are never contacted: the report reads their inventory variables only.
        "falco": {"hosts": falco_hosts}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    proc = run_playbook(tmp_path, "-i", str(tmp_path / "hosts.yml"), str(PLAYBOOKS / "report_unscraped.yml"),
                        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    lines = []
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                if result.get("action") == "ansible.builtin.debug":
                    lines.extend(item["msg"] for item in result.get("results", []) if not item.get("skipped"))
    return lines


def test_unscraped_falco_hosts_are_named_with_what_to_set(tmp_path):
    lines = warnings_of(tmp_path, {
        "fedora-legacy": {"falco_version": "0.31.1", "falco_grpc_enabled": True},
        "tutorial-no-grpc": {"falco_version": "0.31.1"},
        "quiet-043": {"falco_version": "0.43.1", "falco_metrics_enabled": False},
        "web-044": {}})
    assert lines == [
        "WARNING: Prometheus on mon-1 scrapes no Falco metrics from tutorial-no-grpc (Falco 0.31.1, falco_grpc_enabled"
        " false): set falco_grpc_enabled: true and add the host to group falco_exporter (role falco_exporter), or"
        " upgrade to falco_version 0.39 or newer, which serves native metrics",
        "WARNING: Prometheus on mon-1 scrapes no Falco metrics from quiet-043 (Falco 0.43.1, falco_grpc_enabled"
        " false): set falco_grpc_enabled: true and add the host to group falco_exporter (role falco_exporter), or set"
        " falco_metrics_enabled: true"]


def test_no_warning_when_every_falco_host_is_scraped(tmp_path):
    assert warnings_of(tmp_path, {"fedora-legacy": {"falco_version": "0.31.1", "falco_grpc_enabled": True},
                                  "web-044": {}}) == []


def test_site_yml_warns_after_every_deploy_and_before_the_final_report():
    imports = [entry["ansible.builtin.import_playbook"] for entry in yaml.safe_load((PLAYBOOKS / "site.yml").read_text())]
    assert imports[-2:] == ["report_unscraped.yml", "report_unreachable.yml"]
    assert imports.index("monitoring.yml") < imports.index("report_unscraped.yml")
