"""Role prometheus, preflight and configure phases, run for real on this machine in package mode against a temporary
configuration directory with Debian's promtool: the move from the YAML target files earlier versions wrote to JSON."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from localplay import NEEDS_ANSIBLE_PLAYBOOK, failures, group_exists  # noqa: E402

JOBS = ("node-exporter", "node-exporter-tls", "falco", "falco-tls", "falco-exporter", "falco-exporter-tls",
        "docker-exporter", "falcosidekick")
OLD_TARGETS = "- labels:\n    host: old-agent\n  targets:\n  - old-agent:9100\n"


pytestmark = [
    NEEDS_ANSIBLE_PLAYBOOK,
    pytest.mark.skipif(not Path("/usr/bin/promtool").exists() or not group_exists("prometheus"),
                       reason="needs Debian's prometheus package (promtool, group prometheus): scripts/setup.sh "
                              "installs it"),
]


def play(tmp_path):
    return [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack.prometheus", "tasks_from": phase}}
        for phase in ("preflight", "configure")]}]


def role_vars(tmp_path):
    return {"prometheus_config_dir": str(tmp_path / "etc" / "prometheus"),
            "prometheus_storage_path": str(tmp_path / "var" / "prometheus"),
            "prometheus_falco_rules_enabled": False}


@pytest.fixture
def converged_with_yaml_targets(tmp_path):
    """A configuration directory as the role left it when it wrote YAML target files, plus a file of the user's."""
    targets = tmp_path / "etc" / "prometheus" / "targets"
    targets.mkdir(parents=True)
    for job in JOBS:
        (targets / ("%s.yml" % job)).write_text(OLD_TARGETS)
    (targets / "custom.yml").write_text(OLD_TARGETS)
    return targets


def reload_failed_alone(failed):
    """There is no service to reload on this machine: the run stops at the reload handler, and only there."""
    return [(f["action"], f["args"].get("state")) for f in failed] == [("ansible.builtin.systemd_service", "reloaded")]


def test_check_mode_writes_and_removes_nothing(tmp_path, converged_with_yaml_targets):
    targets = converged_with_yaml_targets
    rc, failed = failures(tmp_path, play(tmp_path), role_vars(tmp_path), "--check")
    assert reload_failed_alone(failed), failed
    assert sorted(p.name for p in targets.iterdir()) == sorted(["custom.yml"] + ["%s.yml" % job for job in JOBS])
    assert not (tmp_path / "etc" / "prometheus" / "prometheus.yml").exists()


def test_json_files_are_written_and_the_yaml_ones_kept_until_prometheus_is_reloaded(tmp_path, converged_with_yaml_targets):
    """The run stops at the reload: the running Prometheus would still read the YAML files, so they must be there."""
    targets = converged_with_yaml_targets
    rc, failed = failures(tmp_path, play(tmp_path), role_vars(tmp_path))
    assert rc != 0 and reload_failed_alone(failed), failed
    config = (tmp_path / "etc" / "prometheus" / "prometheus.yml").read_text()
    for job in JOBS:
        assert isinstance(json.loads((targets / ("%s.json" % job)).read_text()), list)
        assert "%s/%s.json" % (targets, job) in config
        assert "%s/%s.yml" % (targets, job) not in config
        assert (targets / ("%s.yml" % job)).read_text() == OLD_TARGETS
    assert (targets / "custom.yml").read_text() == OLD_TARGETS
    # This host is the one node_exporter target of the inventory (localhost only).
    assert json.loads((targets / "node-exporter.json").read_text()) == [
        {"labels": {"host": "localhost"}, "targets": ["localhost:9100"]}]
