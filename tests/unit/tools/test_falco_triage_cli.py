"""tools/falco-triage as a user runs it: a separate process on a file, on stdin, on saved summaries."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
TOOL = REPO_ROOT / "tools" / "falco-triage"


def alert(hour, host=None, rule="Read sensitive file untrusted", priority="Warning", name="cat"):
    event = {
        "output": "%s Sensitive file opened for reading by non-trusted program" % priority,
        "output_fields": {"container.id": "host", "evt.time": hour, "fd.name": "/etc/shadow",
                          "proc.cmdline": "%s /etc/shadow" % name, "proc.exepath": "/usr/bin/%s" % name,
                          "proc.name": name, "proc.pname": "bash", "user.name": "root"},
        "priority": priority,
        "rule": rule,
        "source": "syscall",
        "tags": [],
        "time": "2026-11-27T%02d:00:00.000000000Z" % hour,
    }
    if host:
        event["hostname"] = host
    return json.dumps(event)


def run_tool(*args, stdin=None):
    return subprocess.run(
        [sys.executable, str(TOOL)] + [str(arg) for arg in args],
        input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
    )


@pytest.fixture
def dump(tmp_path):
    path = tmp_path / "falco.txt"
    lines = ["Falco version 0.44.1 (x86_64)", "Loading rules from:"]
    lines += [alert(hour, host="web-01") for hour in range(12)]
    lines += [alert(hour, rule="Write below binary dir", priority="Error", name="touch") for hour in range(3)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_table_shows_top_rules_and_fingerprints(dump):
    result = run_tool(dump, "--host", "pi-garage")
    text = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert "17 lines, 15 alerts, 15 matched" in text
    assert "skipped: not_json 2" in text
    rows = [row.split() for row in text.splitlines()]
    assert ["12", "Warning", "web-01", "Read", "sensitive", "file", "untrusted"] in rows
    assert ["3", "Error", "pi-garage", "Write", "below", "binary", "dir"] in rows
    assert "proc.name=cat" in text


def test_json_output_is_the_module_summary(dump):
    result = run_tool(dump, "--json", "--min-priority", "error")
    summary = json.loads(result.stdout)
    assert summary["matched"] == 3 and summary["filtered_out"] == 12
    assert summary["filters"]["min_priority"] == "Error"
    assert summary["by_host"]["top"] == [{"host": "unknown", "count": 3}]


def test_stdin_is_read_with_a_dash(dump):
    result = run_tool("-", "--json", "--rule", "Write below binary dir", stdin=dump.read_bytes())
    assert json.loads(result.stdout)["matched"] == 3


def test_suggest_quiet_prints_only_loadable_yaml(dump):
    yaml = pytest.importorskip("yaml")
    result = run_tool(dump, "--suggest", "--quiet")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert list(data) == ["falco_rule_exceptions"]
    [exception] = data["falco_rule_exceptions"]
    assert exception["rule"] == "Read sensitive file untrusted"
    assert len(exception["fields"]) == len(exception["comps"]) == len(exception["values"][0])


def test_merge_combines_saved_summaries(tmp_path):
    for host, first_hour in (("web-01", 0), ("web-02", 6)):
        lines = [alert(first_hour + hour, host=host) for hour in range(6)]
        (tmp_path / ("%s.txt" % host)).write_text("\n".join(lines) + "\n")
        saved = run_tool(tmp_path / ("%s.txt" % host), "--json")
        (tmp_path / ("%s.json" % host)).write_bytes(saved.stdout)
    merged = run_tool("--merge", tmp_path / "web-01.json", tmp_path / "web-02.json", "--json", "--suggest")
    summary = json.loads(merged.stdout)
    assert summary["alerts"] == 12 and summary["merged_summaries"] == 2
    # Neither host alone reaches 10 alerts; together they do.
    assert len(summary["suggested_exceptions"]) == 1
    assert summary["suggestion_evidence"][0]["hosts"] == ["web-01", "web-02"]


def test_bad_arguments_fail_clearly(dump, tmp_path):
    result = run_tool(dump, "--min-priority", "loud")
    assert result.returncode == 2 and b"min_priority: unknown Falco priority 'loud'" in result.stderr
    result = run_tool(tmp_path / "missing.txt")
    assert result.returncode == 1 and b"missing.txt" in result.stderr
    assert run_tool(dump, "--top", "0").returncode == 2


def test_baseline_prints_alerts_per_hour_before_and_now(dump, tmp_path):
    baseline = tmp_path / "before.json"
    baseline.write_bytes(run_tool(dump, "--json").stdout)
    quieter = tmp_path / "after.txt"
    quieter.write_text("\n".join(alert(hour, host="web-01") for hour in range(0, 12, 4)) + "\n")
    result = run_tool(quieter, "--baseline", baseline)
    text = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    # 12 alerts over 11 h before; 3 alerts over 8 h now.
    assert "1.09          0.38    -65.6%  Read sensitive file untrusted" in text
    comparison = json.loads(run_tool(quieter, "--baseline", baseline, "--json").stdout)["comparison"]
    assert comparison["rules"][0]["rule"] == "Read sensitive file untrusted"
