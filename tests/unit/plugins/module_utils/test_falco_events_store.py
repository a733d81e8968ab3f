"""Reading a central store (one HOST.jsonl per host and its rotations) gives each host's own summary."""

import gzip
import json
import os
from pathlib import Path

import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_events import (
    FalcoTriageError,
    merge_summaries,
    store_files,
    triage_directory,
    triage_file,
    triage_store,
)

REPO_ROOT = Path(__file__).resolve().parents[4]
RECORDED = REPO_ROOT.parent / "shared" / "upstream" / "recorded"


def legacy_alert(minute, proc="backup"):
    """An alert in Falco 0.31's shape: no hostname."""
    return json.dumps({
        "output": "10:%02d:00.000000000: Warning Sensitive file opened for reading by non-trusted program" % minute,
        "priority": "Warning", "rule": "Read sensitive file untrusted", "source": "syscall", "tags": [],
        "time": "2026-11-27T10:%02d:00.000000000Z" % minute,
        "output_fields": {"proc.name": proc, "proc.pname": "cron", "fd.name": "/etc/shadow", "user.name": "root"},
    })


def current_alert(minute, host):
    alert = json.loads(legacy_alert(minute, proc="cat"))
    alert["hostname"] = host
    alert["priority"] = "Error"
    return json.dumps(alert)


def write(path, lines, compress=False):
    data = ("\n".join(lines) + "\n").encode()
    if compress:
        with gzip.open(str(path), "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def test_store_files_groups_rotations_oldest_first_and_ignores_other_files(tmp_path):
    for name in ("web-01.jsonl", "web-01.jsonl.1", "web-01.jsonl.2.gz", "web-01.jsonl.10.gz", "db.lab.jsonl",
                 "db.lab.jsonl-20261126.gz", "db.lab.jsonl-20261125.gz", "notes.txt", "web-01.json"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.jsonl").mkdir()
    files, ignored = store_files(str(tmp_path))
    names = dict((host, [os.path.basename(p) for p in paths]) for host, paths in files.items())
    assert names == {
        "web-01": ["web-01.jsonl.10.gz", "web-01.jsonl.2.gz", "web-01.jsonl.1", "web-01.jsonl"],
        "db.lab": ["db.lab.jsonl-20261125.gz", "db.lab.jsonl-20261126.gz", "db.lab.jsonl"],
    }
    assert sorted(ignored) == ["notes.txt", "sub.jsonl", "web-01.json"]


def test_each_host_summary_equals_a_run_on_that_hosts_own_file(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    own = tmp_path / "own.jsonl"
    lines = ["Falco banner, not JSON"] + [legacy_alert(m) for m in range(30)] + [current_alert(m, "pi") for m in range(5)]
    write(own, lines)
    # The same lines at the centre, spread over a compressed rotation, a plain one and the live file.
    write(store / "pi-garage.jsonl.2.gz", lines[:10], compress=True)
    write(store / "pi-garage.jsonl.1", lines[10:20])
    write(store / "pi-garage.jsonl", lines[20:])
    write(store / "web-01.jsonl", [current_alert(1, "web-01")])
    central = triage_directory(str(store), top=5)
    assert sorted(central["per_host"]) == ["pi-garage", "web-01"]
    assert central["files"] == 4 and central["missing_hosts"] == []
    alone = triage_file(str(own), default_host="pi-garage").summary(top=5)
    assert central["per_host"]["pi-garage"] == alone
    by_host = dict((row["host"], row["count"]) for row in alone["by_host"]["top"])
    # 0.31 alerts are filed under the file's host, newer ones keep their own hostname.
    assert by_host == {"pi-garage": 30, "pi": 5}


def test_triage_store_is_one_fleet_wide_triage_over_every_hosts_files(tmp_path):
    # pi-garage: a compressed rotation and the live file; web-01: a numeric rotation and the live file.
    write(tmp_path / "pi-garage.jsonl.2.gz", [legacy_alert(m) for m in range(10)], compress=True)
    write(tmp_path / "pi-garage.jsonl", [legacy_alert(m) for m in range(10, 15)] + ["Falco banner, not JSON"])
    write(tmp_path / "web-01.jsonl.1", [current_alert(m, "web-01") for m in range(3)])
    write(tmp_path / "web-01.jsonl", [legacy_alert(m) for m in range(2)])
    write(tmp_path / "notes.txt", [legacy_alert(m) for m in range(50)])
    read = []
    fleet = triage_store(str(tmp_path), on_file=lambda path, size: read.append((os.path.basename(path), size)),
                         default_host="ignored")
    assert read == [(name, os.path.getsize(str(tmp_path / name)))
                    for name in ("pi-garage.jsonl.2.gz", "pi-garage.jsonl", "web-01.jsonl.1", "web-01.jsonl")]
    summary = fleet.summary()
    assert summary["matched"] == 20 and summary["skipped_lines"]["not_json"] == 1
    # Alerts without a hostname belong to their file's host; the store's file names, not --host, decide.
    assert dict((row["host"], row["count"]) for row in summary["by_host"]["top"]) == {"pi-garage": 15, "web-01": 5}
    assert summary["rule_totals"]["top"] == [
        {"rule": "Read sensitive file untrusted", "priority": "Warning", "count": 17, "host_count": 2},
        {"rule": "Read sensitive file untrusted", "priority": "Error", "count": 3, "host_count": 1},
    ]
    # The same alerts as the per-host summaries of triage_directory, merged.
    per_host = triage_directory(str(tmp_path))["per_host"]
    merged = merge_summaries(per_host.values())
    for table in ("by_host", "rule_totals", "rules"):
        assert summary[table] == merged[table]


def test_triage_store_filters_and_refuses_like_triage_directory(tmp_path):
    write(tmp_path / "a.jsonl", [legacy_alert(m) for m in range(10)])
    write(tmp_path / "b.jsonl", [current_alert(m, "b") for m in range(10)])
    assert triage_store(str(tmp_path), min_priority="error").matched == 10
    with pytest.raises(FalcoTriageError, match="^path: "):
        triage_store(str(tmp_path / "nope"))
    with pytest.raises(FalcoTriageError, match="^since: "):
        triage_store(str(tmp_path), since="last week")


def test_hosts_limit_the_files_read_and_name_the_missing_ones(tmp_path):
    write(tmp_path / "a.jsonl", [legacy_alert(1)])
    write(tmp_path / "b.jsonl", [legacy_alert(2)])
    result = triage_directory(str(tmp_path), hosts=["b", "c"])
    assert list(result["per_host"]) == ["b"] and result["missing_hosts"] == ["c"] and result["files"] == 1


def test_filters_mean_the_same_moment_for_every_host(tmp_path):
    write(tmp_path / "a.jsonl", [legacy_alert(m) for m in range(10)])
    write(tmp_path / "b.jsonl", [legacy_alert(m) for m in range(10)])
    result = triage_directory(str(tmp_path), since="-1h", min_priority="warning")
    filters = [summary["filters"] for summary in result["per_host"].values()]
    assert filters[0] == filters[1] and filters[0]["since"] is not None
    merged = merge_summaries(result["per_host"].values())
    assert merged["filters"] == filters[0]


def test_a_missing_directory_and_bad_options_are_refused(tmp_path):
    with pytest.raises(FalcoTriageError, match="^path: "):
        triage_directory(str(tmp_path / "nope"))
    with pytest.raises(FalcoTriageError, match="^since: "):
        triage_directory(str(tmp_path), since="last week")


def test_parallel_workers_give_the_same_summary(tmp_path):
    write(tmp_path / "a.jsonl", [legacy_alert(m % 60, proc="p%d" % (m % 7)) for m in range(500)])
    assert triage_directory(str(tmp_path), workers=2) == triage_directory(str(tmp_path), workers=1)


@pytest.mark.skipif(not (RECORDED / "falco-0.44.1_tutorial-events.jsonl").exists(),
                    reason="recorded Falco alerts absent (../shared/upstream/recorded)")
def test_recorded_alerts_at_the_centre_keep_falcos_hostname(tmp_path):
    recorded = (RECORDED / "falco-0.44.1_tutorial-events.jsonl").read_bytes()
    (tmp_path / "lab-01.jsonl").write_bytes(recorded)
    summary = triage_directory(str(tmp_path))["per_host"]["lab-01"]
    hostnames = set(json.loads(line)["hostname"] for line in recorded.splitlines() if line.strip())
    assert set(row["host"] for row in summary["by_host"]["top"]) == hostnames
    assert summary["alerts"] == len([line for line in recorded.splitlines() if line.strip()])
