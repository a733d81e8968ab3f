"""The falco_events module end to end: arguments in, JSON result out, with a stand-in journalctl."""

import json
import stat
import sys
from pathlib import Path

import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.modules import falco_events as falco_events_module

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from module_runner import run_module_main  # noqa: E402


REPO_ROOT = Path(__file__).resolve().parents[4]
RECORDED = REPO_ROOT.parent / "shared" / "upstream" / "recorded"

ALERT_031 = {
    "output": "19:36:41.237634398: Error File below a known binary directory opened for writing (user=root)",
    "priority": "Error",
    "rule": "Write below binary dir",
    "source": "syscall",
    "tags": ["filesystem", "mitre_persistence"],
    "time": "2022-05-01T23:36:41.237634398Z",
    "output_fields": {"container.id": "host", "evt.time": 1651448201237634398, "fd.name": "/bin/should_not_be_here",
                      "proc.cmdline": "touch /bin/should_not_be_here", "user.name": "root"},
}


def warning_alert(hour, host="web-01"):
    return {
        "hostname": host,
        "output": "Warning Sensitive file opened for reading by non-trusted program",
        "output_fields": {"container.id": "host", "fd.name": "/etc/shadow", "proc.cmdline": "cat /etc/shadow",
                          "proc.exepath": "/usr/bin/cat", "proc.name": "cat", "proc.pname": "bash", "user.name": "root"},
        "priority": "Warning",
        "rule": "Read sensitive file untrusted",
        "source": "syscall",
        "tags": [],
        "time": "2026-11-27T%02d:00:00.000000000Z" % hour,
    }


def run_module(args, capsys):
    return run_module_main(falco_events_module.main, args, capsys)


@pytest.fixture
def alert_file(tmp_path):
    path = tmp_path / "events.json"
    lines = [b"Falco version 0.31.1 (driver version b7eb0dd65226a8dc254d228c8d950d07bf3521d2)", json.dumps(ALERT_031).encode()]
    lines += [json.dumps(warning_alert(hour)).encode() for hour in range(12)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def fake_journalctl(tmp_path, monkeypatch):
    """A journalctl on PATH that records its arguments and prints a prepared dump (or fails)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "journalctl"
    script.write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$@" > "$FAKE_JOURNAL_ARGS"\n'
        'if [ -n "$FAKE_JOURNAL_FAIL" ]; then echo "$FAKE_JOURNAL_FAIL" >&2; exit 1; fi\n'
        'cat "$FAKE_JOURNAL_DUMP"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    args_file = tmp_path / "journalctl.args"
    dump_file = tmp_path / "journal.dump"
    dump_file.write_bytes(b"")
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, __import__("os").environ.get("PATH", "")))
    monkeypatch.setenv("FAKE_JOURNAL_ARGS", str(args_file))
    monkeypatch.setenv("FAKE_JOURNAL_DUMP", str(dump_file))
    monkeypatch.delenv("FAKE_JOURNAL_FAIL", raising=False)

    class Journal:
        dump = dump_file

        @staticmethod
        def args():
            return args_file.read_text().splitlines()

    return Journal


def test_file_source_summarises_and_changes_nothing(alert_file, capsys):
    result = run_module({"source": "file", "path": str(alert_file), "host": "pi-garage"}, capsys)
    assert result["changed"] is False
    assert (result["lines_read"], result["alerts"], result["skipped_lines"]["not_json"]) == (14, 13, 1)
    assert {row["host"]: row["count"] for row in result["by_host"]["top"]} == {"pi-garage": 1, "web-01": 12}
    assert "suggested_exceptions" not in result


def test_check_mode_returns_the_same_summary(alert_file, capsys):
    normal = run_module({"source": "file", "path": str(alert_file), "host": "h"}, capsys)
    checked = run_module({"source": "file", "path": str(alert_file), "host": "h", "_ansible_check_mode": True}, capsys)
    assert checked["changed"] is False
    for key in ("alerts", "rules", "fingerprints", "by_priority", "skipped_lines"):
        assert checked[key] == normal[key]


def test_missing_file_fails_naming_the_option(tmp_path, capsys):
    result = run_module({"source": "file", "path": str(tmp_path / "nope.json")}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("path: ") and "does not exist" in result["msg"]


def test_file_source_requires_path(capsys):
    result = run_module({"source": "file"}, capsys)
    assert result["failed"] is True and "path" in result["msg"]


def test_directory_is_refused(tmp_path, capsys):
    result = run_module({"source": "file", "path": str(tmp_path)}, capsys)
    assert result["failed"] is True and "directory" in result["msg"]


def test_bad_since_fails_with_the_option_name(alert_file, capsys):
    result = run_module({"source": "file", "path": str(alert_file), "since": "last tuesday"}, capsys)
    assert result["failed"] is True and result["msg"].startswith("since:")


def test_filters_and_top_are_applied(alert_file, capsys):
    result = run_module({"source": "file", "path": str(alert_file), "min_priority": "error", "top": 1}, capsys)
    assert result["matched"] == 1 and result["filtered_out"] == 12
    assert result["rules"]["top"][0]["rule"] == "Write below binary dir"
    result = run_module({"source": "file", "path": str(alert_file), "rules": ["Read sensitive file untrusted"]}, capsys)
    assert result["matched"] == 12


def test_suggest_returns_exceptions_in_role_format(alert_file, capsys):
    result = run_module({"source": "file", "path": str(alert_file), "suggest": True}, capsys)
    assert len(result["suggested_exceptions"]) == 1
    exception = result["suggested_exceptions"][0]
    assert sorted(exception) == ["comps", "fields", "name", "rule", "values"]
    assert len(exception["fields"]) == len(exception["comps"]) == len(exception["values"][0])
    assert result["suggestion_evidence"][0]["count"] == 12
    # The single Error alert is rarer than the minimum count.
    assert result["suggestions_not_made"]["too_few"] == 1
    stricter = run_module({"source": "file", "path": str(alert_file), "suggest": True, "suggest_min_count": 13}, capsys)
    assert stricter["suggested_exceptions"] == []


def test_text_output_gets_a_hint_about_json_output(tmp_path, capsys):
    path = tmp_path / "text.log"
    path.write_text("19:36:41.237634398: Error File below a known binary directory opened for writing\n")
    result = run_module({"source": "file", "path": str(path)}, capsys)
    assert result["alerts"] == 0
    # ansible-core 2.19 returns warnings as structured objects, older versions as strings.
    assert "is json_output enabled" in json.dumps(result.get("warnings", []))


def test_journald_source_streams_journalctl_cat_for_every_falco_unit(fake_journalctl, capsys):
    lines = [b"Falco version 0.44.1 (x86_64)"]
    if RECORDED.is_dir():
        for path in sorted(RECORDED.glob("*.jsonl")):
            lines += [line for line in path.read_bytes().splitlines() if line.strip()]
    else:
        lines += [json.dumps(warning_alert(hour, host="vm")).encode() for hour in range(5)]
    fake_journalctl.dump.write_bytes(b"\n".join(lines) + b"\n")
    result = run_module({"since": "2022-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, capsys)
    assert result["alerts"] == len(lines) - 1
    assert result["by_host"]["top"][0]["host"] == "vm"
    args = fake_journalctl.args()
    assert args[:4] == ["-o", "cat", "--no-pager", "-q"]
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "-u"] == [
        "falco", "falco-modern-bpf", "falco-kmod", "falco-bpf", "falco-custom"]
    assert "--since=@1640995200" in args
    assert "--until=@%d" % (1893456000 + 1 + falco_events_module.JOURNAL_UNTIL_SLACK_SECONDS) in args
    assert result["command"][1:] == args


def test_journald_units_can_be_narrowed(fake_journalctl, capsys):
    run_module({"units": ["falco-kmod"]}, capsys)
    args = fake_journalctl.args()
    assert args.count("-u") == 1 and "falco-kmod" in args
    assert not any(arg.startswith("--since") or arg.startswith("--until") for arg in args)


def test_journalctl_failure_is_reported_with_its_message(fake_journalctl, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_JOURNAL_FAIL", "Failed to open journal: Permission denied")
    result = run_module({}, capsys)
    assert result["failed"] is True
    assert "Permission denied" in result["msg"] and result["rc"] == 1


def test_module_documents_every_option_it_accepts():
    yaml = pytest.importorskip("yaml")
    documented = set(yaml.safe_load(falco_events_module.DOCUMENTATION)["options"])
    spec_source = Path(falco_events_module.__file__).read_text()
    for option in documented:
        assert "%s=dict(" % option in spec_source, option


def test_every_returned_key_is_documented_and_none_is_reserved_by_ansible(alert_file, capsys):
    yaml = pytest.importorskip("yaml")
    result = run_module({"source": "file", "path": str(alert_file), "suggest": True}, capsys)
    returned = set(yaml.safe_load(falco_events_module.RETURN))
    own = set(result) - {"changed", "invocation", "warnings"}
    assert own <= returned, own - returned
    # Ansible reads these keys of any module result; a truthy "skipped" would mark the task as skipped.
    assert not own & {"skipped", "failed", "unreachable", "results", "rc", "stdout", "stderr", "msg", "diff"}
