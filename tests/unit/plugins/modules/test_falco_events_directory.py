"""The falco_events module with source=directory: a central store in, merged and per-host summaries out."""

import json
import sys
from pathlib import Path

import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.modules import falco_events as falco_events_module

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from module_runner import run_module_main  # noqa: E402


def run_module(args, capsys):
    return run_module_main(falco_events_module.main, args, capsys)


def alert(hour, host=None, proc="cat"):
    event = {"output": "Warning Sensitive file opened", "priority": "Warning", "rule": "Read sensitive file untrusted",
             "source": "syscall", "tags": [], "time": "2026-11-27T%02d:00:00.000000000Z" % hour,
             "output_fields": {"proc.name": proc, "proc.pname": "bash", "proc.cmdline": proc + " /etc/shadow",
                               "fd.name": "/etc/shadow", "user.name": "root"}}
    if host:
        event["hostname"] = host
    return json.dumps(event)


@pytest.fixture
def store(tmp_path):
    (tmp_path / "web-01.jsonl").write_text("\n".join(alert(h) for h in range(12)) + "\n")
    (tmp_path / "web-02.jsonl").write_text(alert(1, host="web-02.example") + "\nnot json\n")
    return tmp_path


def test_directory_source_returns_merged_and_per_host_summaries(store, capsys):
    result = run_module({"source": "directory", "path": str(store)}, capsys)
    assert result["changed"] is False and result["source"] == "directory"
    assert sorted(result["per_host"]) == ["web-01", "web-02"]
    assert result["files_read"] == 2 and result["missing_hosts"] == []
    assert (result["alerts"], result["matched"], result["skipped_lines"]["not_json"]) == (13, 13, 1)
    assert {row["host"]: row["count"] for row in result["by_host"]["top"]} == {"web-01": 12, "web-02.example": 1}
    assert result["per_host"]["web-01"]["matched"] == 12


def test_directory_source_with_hosts_and_suggestions(store, capsys):
    result = run_module({"source": "directory", "path": str(store), "hosts": ["web-01", "web-09"], "suggest": True},
                        capsys)
    assert list(result["per_host"]) == ["web-01"] and result["missing_hosts"] == ["web-09"]
    assert [e["rule"] for e in result["suggested_exceptions"]] == ["Read sensitive file untrusted"]
    assert result["suggestion_evidence"][0]["count"] == 12


def test_directory_source_in_check_mode_gives_the_same_result(store, capsys):
    normal = run_module({"source": "directory", "path": str(store)}, capsys)
    checked = run_module({"source": "directory", "path": str(store), "_ansible_check_mode": True}, capsys)
    assert checked == normal


def test_directory_source_needs_an_existing_directory(tmp_path, capsys):
    assert "path" in run_module({"source": "directory"}, capsys)["msg"]
    result = run_module({"source": "directory", "path": str(tmp_path / "missing")}, capsys)
    assert result["failed"] is True and result["msg"].startswith("path: ")
