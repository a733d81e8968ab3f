"""tools/falco-triage as a user runs it: a separate process on a file, on stdin, on saved summaries."""

import csv
import gzip
import io
import json
import os
import pty
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


def run_tool(*args, stdin=None, env=None):
    return subprocess.run(
        [sys.executable, str(TOOL)] + [str(arg) for arg in args],
        input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, env=env,
    )


def run_tool_on_a_terminal(*args, env=None):
    """Run the tool with stderr on a pseudo-terminal and stdout on a pipe; return (result, terminal text)."""
    terminal, tool_side = pty.openpty()
    try:
        result = subprocess.run([sys.executable, str(TOOL)] + [str(arg) for arg in args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=tool_side, check=False, env=env)
    finally:
        os.close(tool_side)
    chunks = []
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO once the tool's side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(terminal)
    return result, b"".join(chunks).decode()


def environment(**variables):
    return dict(os.environ, **variables)


def write_lines(path, lines, compress=False):
    data = ("\n".join(lines) + "\n").encode()
    if compress:
        with gzip.open(str(path), "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def store(tmp_path):
    """A central store: web-01 with a compressed rotation, web-02 with a numeric one, and a file to ignore."""
    path = tmp_path / "store"
    path.mkdir()
    write_lines(path / "web-01.jsonl.2.gz", [alert(hour) for hour in range(4)], compress=True)
    writes = [alert(hour, rule="Write below binary dir", priority="Error", name="touch") for hour in range(4, 6)]
    write_lines(path / "web-01.jsonl", writes)
    write_lines(path / "web-02.jsonl.1", [alert(hour, host="web-02") for hour in range(3)])
    write_lines(path / "web-02.jsonl", [alert(9, rule="Write below binary dir", priority="Error", name="touch")])
    write_lines(path / "notes.txt", [alert(hour, host="not-a-host") for hour in range(50)])
    return path


def sections(text):
    """{title: [row, ...]} of the tool's tables, in the order printed (the header lines are left out)."""
    tables = {}
    for block in text.split("\n\n")[1:]:
        lines = block.splitlines()
        tables[lines[0].split(" (")[0]] = lines[2:]
    return tables


def csv_rows(text):
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    return header, [dict(zip(header, row)) for row in reader]


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


def test_a_store_directory_prints_fleet_totals_then_hosts_then_rules_per_host(store):
    result = run_tool(store)
    text = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    assert "10 lines, 10 alerts, 10 matched" in text
    tables = sections(text)
    assert list(tables) == ["Fleet totals per rule and priority", "Alerts per host", "Top rules per host",
                            "Top fingerprints"]
    totals = [row.split(None, 3) for row in tables["Fleet totals per rule and priority"]]
    assert totals == [["7", "2", "Warning", "Read sensitive file untrusted"],
                      ["3", "2", "Error", "Write below binary dir"]]
    assert [row.split() for row in tables["Alerts per host"]] == [["6", "web-01"], ["4", "web-02"]]
    per_host = [row.split(None, 3) for row in tables["Top rules per host"]]
    # Alerts without a hostname belong to their file's host; notes.txt is no store file and is not read.
    assert sorted(per_host) == sorted([["4", "Warning", "web-01", "Read sensitive file untrusted"],
                                       ["3", "Warning", "web-02", "Read sensitive file untrusted"],
                                       ["2", "Error", "web-01", "Write below binary dir"],
                                       ["1", "Error", "web-02", "Write below binary dir"]])
    for count, hosts, priority, rule in totals:
        rows = [row for row in per_host if (row[1], row[3]) == (priority, rule)]
        assert int(count) == sum(int(row[0]) for row in rows) and int(hosts) == len(rows)


def test_files_stdin_and_directories_mix(store, dump):
    result = run_tool(dump, "-", store, "--host", "pi-garage", "--json",
                      stdin=(alert(1, host="db-01") + "\n").encode())
    summary = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert summary["matched"] == 15 + 1 + 10
    # --host names the alerts without a hostname of files and stdin, not those of the store's files.
    assert {row["host"]: row["count"] for row in summary["by_host"]["top"]} == {
        "web-01": 12 + 6, "pi-garage": 3, "db-01": 1, "web-02": 4}
    assert summary["rule_totals"]["top"][0] == {"rule": "Read sensitive file untrusted", "priority": "Warning",
                                                "count": 12 + 1 + 7, "host_count": 3}


def test_a_directory_without_store_files_is_named_on_stderr(tmp_path):
    (tmp_path / "notes.txt").write_text(alert(1) + "\n")
    result = run_tool(tmp_path, "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["alerts"] == 0
    assert b"no store file" in result.stderr


def test_csv_holds_every_host_rule_priority_row_not_only_top(store):
    result = run_tool(store, "--csv", "--top", "1")
    assert result.returncode == 0, result.stderr
    header, rows = csv_rows(result.stdout.decode())
    assert header == ["host", "rule", "priority", "count"]
    assert [(row["host"], row["rule"], row["priority"], int(row["count"])) for row in rows] == [
        ("web-01", "Read sensitive file untrusted", "Warning", 4),
        ("web-02", "Read sensitive file untrusted", "Warning", 3),
        ("web-01", "Write below binary dir", "Error", 2),
        ("web-02", "Write below binary dir", "Error", 1),
    ]
    matched = json.loads(run_tool(store, "--json").stdout)["matched"]
    assert sum(int(row["count"]) for row in rows) == matched


def test_jsonl_holds_every_fingerprint_record_most_frequent_first(store):
    result = run_tool(store, "--jsonl", "--top", "1")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [(record["rule"], record["fields"]["proc.name"], record["count"], record["hosts"]) for record in records] == [
        ("Read sensitive file untrusted", "cat", 7, ["web-01", "web-02"]),
        ("Write below binary dir", "touch", 3, ["web-01", "web-02"]),
    ]
    summary = json.loads(run_tool(store, "--json").stdout)
    assert sum(record["count"] for record in records) == summary["matched"]
    assert records == summary["fingerprints"]["top"]


def test_csv_and_jsonl_of_saved_summaries_hold_the_rows_they_saved(store, tmp_path):
    saved = tmp_path / "fleet.json"
    saved.write_bytes(run_tool(store, "--json", "--top", "3").stdout)
    _header, rows = csv_rows(run_tool("--merge", saved, "--csv", "--top", "1").stdout.decode())
    # The saved summary kept 3 of its 4 rows; the merge does not cut them again to --top.
    assert len(rows) == 3 and rows[0] == {"host": "web-01", "rule": "Read sensitive file untrusted",
                                          "priority": "Warning", "count": "4"}
    lines = run_tool("--merge", saved, "--jsonl", "--top", "1").stdout.decode().splitlines()
    assert [json.loads(line)["count"] for line in lines] == [7, 3]


def test_machine_outputs_exclude_each_other_and_the_text_outputs(dump, tmp_path):
    for options in (("--json", "--csv"), ("--csv", "--jsonl"), ("--json", "--jsonl")):
        result = run_tool(dump, *options)
        assert result.returncode == 2 and b"not allowed with argument" in result.stderr
    for options in (("--csv", "--suggest"), ("--jsonl", "--baseline", tmp_path / "before.json")):
        result = run_tool(dump, *options)
        assert result.returncode == 2 and b"print rows only" in result.stderr


def test_progress_goes_to_a_terminal_stderr_and_stdout_stays_clean_csv(store):
    result, terminal = run_tool_on_a_terminal(store, "--csv")
    assert result.returncode == 0
    # Four store files are enough to show progress, whatever their size.
    assert "\rfalco-triage: 0/4 files" in terminal
    assert "\rfalco-triage: 4/4 files" in terminal
    # The line is erased at the end: the terminal is left on a blank line.
    assert terminal.endswith("\r") and terminal.split("\r")[-2].strip() == ""
    header, rows = csv_rows(result.stdout.decode())
    assert header == ["host", "rule", "priority", "count"] and sum(int(row["count"]) for row in rows) == 10


def test_progress_needs_a_large_input_or_several_store_files(dump):
    result, terminal = run_tool_on_a_terminal(dump, "--csv", env=environment(FALCO_TRIAGE_PROGRESS_MIN_BYTES="0"))
    assert result.returncode == 0 and "falco-triage: 1/1 files" in terminal
    result, terminal = run_tool_on_a_terminal(dump, "--csv")
    assert result.returncode == 0 and terminal == ""


def test_no_progress_without_a_terminal_or_with_quiet(store):
    result = run_tool(store, "--csv", env=environment(FALCO_TRIAGE_PROGRESS_MIN_BYTES="0"))
    assert result.returncode == 0 and result.stderr == b""
    result, terminal = run_tool_on_a_terminal(store, "--quiet", env=environment(FALCO_TRIAGE_PROGRESS_MIN_BYTES="0"))
    assert result.returncode == 0 and terminal == "" and "Fleet totals" in result.stdout.decode()
