"""The Falco alert rules shipped in roles/prometheus: promtool accepts them and their unit tests in tests/promtool pass."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES = REPO_ROOT / "roles" / "prometheus" / "files" / "falco-alerts.yml"
PROMTOOL_TESTS = sorted((REPO_ROOT / "tests" / "promtool").glob("*.test.yml"))
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not found (apt-get install prometheus)")


def run(*args):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False)


def alert_names():
    return [rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_rules():
    proc = run("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file):
    proc = run("test", "rules", str(test_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test():
    tested = set()
    for test_file in PROMTOOL_TESTS:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            tested.update(t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts"))
    assert set(alert_names()) - tested == set(), "alerts without a firing unit test"


def test_every_alert_has_severity_summary_and_description():
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_alert_names_are_unique():
    names = alert_names()
    assert len(names) == len(set(names))


def test_priorities_are_matched_as_numeric_strings():
    # Falco's priority label is "0".."7"; names such as "Critical" never match a series.
    text = RULES.read_text()
    assert 'priority=~"0|1|2"' in text
    for name in ("Critical", "Error", "Warning", "critical\"", "error\""):
        assert "priority=~\"%s" % name not in text and "priority=\"%s" % name not in text
