"""Behaviour of the Falco alert triage core: parsing, skipping, fingerprints, filters, merging, suggestions."""

import calendar
import io
import json
import os
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils import (
    falco_events,
    falco_events_input,
    falco_events_triage,
)
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_events import (
    FalcoTriage,
    FalcoTriageError,
    canonical_time,
    exceptions_to_yaml,
    merge_summaries,
    parse_time_bound,
    suggest_exceptions,
    triage_file,
)

REPO_ROOT = Path(__file__).resolve().parents[4]
SHARED_UPSTREAM = REPO_ROOT.parent / "shared" / "upstream"
RECORDED = SHARED_UPSTREAM / "recorded"


def recorded_lines(name):
    path = RECORDED / name
    if not path.is_file():
        pytest.skip("recorded Falco 0.44.1 alerts not found at %s (needs ../shared next to the repo)" % path)
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def alert_031(**changes):
    """A Falco 0.31 alert (no hostname), shaped like the example in FACTS.md section 7."""
    event = {
        "output": "19:36:41.237634398: Error File below a known binary directory opened for writing "
                  "(user=root command=touch /bin/should_not_be_here file=/bin/should_not_be_here)",
        "priority": "Error",
        "rule": "Write below binary dir",
        "source": "syscall",
        "tags": ["filesystem", "mitre_persistence"],
        "time": "2022-05-01T23:36:41.237634398Z",
        "output_fields": {
            "container.id": "host",
            "evt.time": 1651448201237634398,
            "fd.name": "/bin/should_not_be_here",
            "proc.cmdline": "touch /bin/should_not_be_here",
            "user.name": "root",
        },
    }
    fields = changes.pop("output_fields", None)
    event.update(changes)
    if fields:
        event["output_fields"] = dict(event["output_fields"], **fields)
    return event


def privileged_container_031(container_id="bfb9637a47a6", name="kind_lumiere"):
    """The tutorial's 0.31 "Launch Privileged Container" alert: the container id is inside proc.cmdline."""
    output = ("19:29:32.918828894: Informational Privileged container started (user=root user_loginuid=0 "
              "command=container:%s %s (id=%s) image=fedora:latest)" % (container_id, name, container_id))
    return {
        "output": output,
        "priority": "Informational",
        "rule": "Launch Privileged Container",
        "source": "syscall",
        "tags": ["cis", "container", "mitre_lateral_movement", "mitre_privilege_escalation"],
        "time": "2022-05-01T23:29:32.918828894Z",
        "output_fields": {
            "container.id": container_id,
            "container.image.repository": "fedora",
            "container.image.tag": "latest",
            "container.name": name,
            "evt.time": 1651447772918828894,
            "proc.cmdline": "container:%s" % container_id,
            "user.loginuid": 0,
            "user.name": "root",
        },
    }


def line(event):
    return json.dumps(event).encode("utf-8")


def shadow_read(when, host="web-01", **fields):
    """A 0.44-shaped "Read sensitive file untrusted" alert at ``when`` (ISO8601, canonical)."""
    output_fields = {
        "container.id": "6d63bb444a7f",
        "container.image.repository": None,
        "container.name": None,
        "evt.time": 1,
        "fd.name": "/etc/shadow",
        "proc.cmdline": "cat /etc/shadow",
        "proc.exepath": "/usr/bin/cat",
        "proc.name": "cat",
        "proc.pname": "bash",
        "user.loginuid": -1,
        "user.name": "root",
    }
    output_fields.update(fields)
    return {
        "hostname": host,
        "output": "Warning Sensitive file opened for reading by non-trusted program | file=/etc/shadow",
        "output_fields": output_fields,
        "priority": "Warning",
        "rule": "Read sensitive file untrusted",
        "source": "syscall",
        "tags": ["filesystem"],
        "time": when,
    }


def hourly(count, start_hour=0, **kwargs):
    return [shadow_read("2026-11-27T%02d:00:00.000000000Z" % (start_hour + n), **kwargs) for n in range(count)]


def assert_lines_add_up(summary):
    assert summary["lines_read"] == summary["alerts"] + sum(summary["skipped_lines"].values())
    assert summary["alerts"] == summary["matched"] + summary["filtered_out"]


# --- real alerts, both generations ---------------------------------------------------------------------------


def test_recorded_044_alerts_keep_their_own_hostname():
    lines = recorded_lines("falco-0.44.1_alerts.jsonl") + recorded_lines("falco-0.44.1_tutorial-events.jsonl")
    summary = FalcoTriage(default_host="inventory-name").feed_lines(lines).summary()
    assert summary["alerts"] == len(lines) == 5
    assert [row["host"] for row in summary["by_host"]["top"]] == ["vm"]
    assert summary["by_priority"] == {"Error": 1, "Warning": 2, "Informational": 2}
    assert_lines_add_up(summary)


def test_recorded_shadow_reads_from_two_containers_are_one_fingerprint():
    lines = recorded_lines("falco-0.44.1_alerts.jsonl") + recorded_lines("falco-0.44.1_tutorial-events.jsonl")
    summary = FalcoTriage().feed_lines(lines).summary()
    shadow = [row for row in summary["fingerprints"]["top"] if row["rule"] == "Read sensitive file untrusted"]
    assert len(shadow) == 1
    assert shadow[0]["count"] == 2
    assert shadow[0]["fields"] == {
        "proc.name": "cat",
        "proc.exepath": "/usr/bin/cat",
        "proc.pname": "bash",
        "proc.cmdline": "cat /etc/shadow",
        "fd.name": "/etc/shadow",
        "user.name": "root",
    }
    assert shadow[0]["first_seen"] == "2026-11-27T12:48:19.235783172Z"
    assert shadow[0]["last_seen"] == "2026-11-27T12:50:53.208375926Z"


def test_031_alert_without_hostname_gets_the_default_host():
    summary = FalcoTriage(default_host="macmini2").feed_lines([line(alert_031())]).summary()
    assert summary["rules"]["top"] == [
        {"host": "macmini2", "rule": "Write below binary dir", "priority": "Error", "count": 1}
    ]
    fingerprint = summary["fingerprints"]["top"][0]
    assert fingerprint["hosts"] == ["macmini2"]
    assert fingerprint["fields"] == {
        "proc.cmdline": "touch /bin/should_not_be_here",
        "fd.name": "/bin/should_not_be_here",
        "user.name": "root",
    }


def test_journalctl_cat_dump_keeps_alerts_and_counts_banners():
    dump = b"\n".join([
        b"Starting Falco: Container Native Runtime Security...",
        b"Falco version 0.31.1 (driver version b7eb0dd65226a8dc254d228c8d950d07bf3521d2)",
        b"Loading rules from file /etc/falco/falco_rules.yaml:",
        line(privileged_container_031()),
        b"Starting internal webserver, listening on port 8765",
        line(alert_031()),
    ]) + b"\n"
    summary = FalcoTriage(default_host="macmini2").feed_stream(io.BytesIO(dump)).summary()
    assert summary["alerts"] == 2
    assert summary["skipped_lines"]["not_json"] == 4
    assert summary["skipped_examples"]["not_json"] == "Starting Falco: Container Native Runtime Security..."
    assert_lines_add_up(summary)


def test_plain_journalctl_lines_with_syslog_prefix_are_read():
    prefixed = b"May 01 19:29:32 macmini2 falco[26888]: " + line(privileged_container_031())
    banner = b"May 01 19:20:52 macmini2 falco[26888]: Falco initialized with configuration file /etc/falco/falco.yaml"
    summary = FalcoTriage(default_host="macmini2").feed_lines([banner, prefixed]).summary()
    assert summary["alerts"] == 1
    assert summary["skipped_lines"]["not_json"] == 1
    assert summary["rules"]["top"][0]["rule"] == "Launch Privileged Container"


def test_json_with_leading_whitespace_is_not_mistaken_for_a_prefix():
    summary = FalcoTriage().feed_lines([b"   " + line(alert_031())]).summary()
    assert summary["alerts"] == 1


def test_container_id_inside_a_value_does_not_split_fingerprints():
    lines = [line(privileged_container_031("bfb9637a47a6", "kind_lumiere")),
             line(privileged_container_031("ef061174c7ef", "distracted_lalande"))]
    fingerprints = FalcoTriage().feed_lines(lines).summary()["fingerprints"]["top"]
    assert len(fingerprints) == 1
    assert fingerprints[0]["count"] == 2
    assert fingerprints[0]["fields"] == {
        "container.image.repository": "fedora", "container.image.tag": "latest", "user.name": "root"
    }


def test_the_same_values_in_another_container_are_cleaned_for_that_container():
    # One command line, naming a container: inside that container the id is dropped from the fingerprint (one
    # value per container), on the host (container.id "host") it is kept. The raw values are the same, so a
    # cache of cleaned values must tell the two apart, whichever comes first.
    command = {"proc.cmdline": "podman exec bfb9637a47a6 cat /etc/shadow", "proc.name": "podman"}
    inside = shadow_read("2026-11-27T00:00:00.000000000Z", **dict(command, **{"container.id": "bfb9637a47a6"}))
    on_host = shadow_read("2026-11-27T00:00:01.000000000Z", **dict(command, **{"container.id": "host"}))
    for order in ([inside, on_host], [on_host, inside]):
        fingerprints = FalcoTriage().feed_lines([line(event) for event in order]).summary()["fingerprints"]["top"]
        assert sorted((row["count"], row["fields"].get("proc.cmdline", "")) for row in fingerprints) == [
            (1, ""), (1, "podman exec bfb9637a47a6 cat /etc/shadow")], order


def test_socket_tuples_are_left_out_of_fingerprints():
    first = shadow_read("2026-11-27T00:00:00.000000000Z", **{"fd.name": "10.0.0.5:41234->10.0.0.9:443"})
    second = shadow_read("2026-11-27T00:00:01.000000000Z", **{"fd.name": "10.0.0.5:50122->10.0.0.9:443"})
    fingerprints = FalcoTriage().feed_lines([line(first), line(second)]).summary()["fingerprints"]["top"]
    assert len(fingerprints) == 1 and "fd.name" not in fingerprints[0]["fields"]


def test_different_actors_are_different_fingerprints():
    lines = [line(shadow_read("2026-11-27T00:00:00.000000000Z")),
             line(shadow_read("2026-11-27T00:00:01.000000000Z", **{"proc.name": "less", "proc.cmdline": "less /etc/shadow"}))]
    assert FalcoTriage().feed_lines(lines).summary()["fingerprints"]["distinct"] == 2


# --- lines that are not alerts -------------------------------------------------------------------------------


def test_every_skip_reason_is_counted():
    good = line(alert_031())
    lines = [
        b"Falco version 0.44.1 (x86_64)",  # not_json
        b"",  # not_json
        good[: len(good) // 2],  # truncated_json
        b'{"output": "caf\xe9 au lait", "rule": "x", "priority": "Warning"}',  # invalid_utf8
        b'{"falco_load_results": [{"name": "rules.yaml", "successful": true}]}',  # not_an_alert
        b'{"rule": "No output", "priority": "Warning"}',  # not_an_alert
        b'{"rule": ["list"], "priority": "Warning", "output": ""}',  # not_an_alert
        good,
    ]
    summary = FalcoTriage(max_line_bytes=len(good) + 10).feed_lines(lines + [b"{" + b" " * (len(good) + 20) + b"}"]).summary()
    assert summary["skipped_lines"] == {
        "not_json": 2, "truncated_json": 1, "invalid_utf8": 1, "oversized": 1, "not_an_alert": 3
    }
    assert summary["alerts"] == 1
    assert_lines_add_up(summary)


def test_a_10_mb_line_is_skipped_without_being_held_in_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as handle:
        handle.write(line(alert_031()) + b"\n")
        handle.write(b'{"output": "' + b"A" * (10 * 1024 * 1024) + b'", "rule": "x", "priority": "Warning"}\n')
        handle.write(line(alert_031(time="2022-05-01T23:40:00.000000000Z")) + b"\n")
    tracemalloc.start()
    try:
        with open(path, "rb") as handle:
            summary = FalcoTriage().feed_stream(handle).summary()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary["skipped_lines"]["oversized"] == 1
    assert summary["alerts"] == 2
    assert summary["skipped_examples"]["oversized"].startswith('{"output": "AAAA')
    # One read block plus at most max_line_bytes of a pending line, far below the line's 10 MB.
    assert peak < 4 * 1024 * 1024, peak


def test_an_oversized_line_split_over_small_blocks_is_counted_once():
    good = line(alert_031())
    data = good + b"\n" + b"x" * 5000 + b"\n" + good + b"\n" + b"y" * 5000
    triage = FalcoTriage(max_line_bytes=2048).feed_stream(io.BytesIO(data), block_bytes=256)
    summary = triage.summary()
    assert summary["skipped_lines"]["oversized"] == 2
    assert summary["alerts"] == 2
    assert summary["lines_read"] == 4


def test_incomplete_last_line_counts_as_truncated_and_complete_one_as_alert():
    good = line(alert_031())
    incomplete = FalcoTriage().feed_stream(io.BytesIO(good + b"\n" + good[:40])).summary()
    assert (incomplete["alerts"], incomplete["skipped_lines"]["truncated_json"]) == (1, 1)
    unterminated = FalcoTriage().feed_stream(io.BytesIO(good + b"\n" + good)).summary()
    assert (unterminated["alerts"], unterminated["skipped_lines"]["truncated_json"]) == (2, 0)


def test_windows_line_endings_are_accepted():
    summary = FalcoTriage().feed_stream(io.BytesIO(line(alert_031()) + b"\r\n" + line(alert_031()) + b"\r\n")).summary()
    assert summary["alerts"] == 2


def test_odd_value_types_do_not_break_the_loop():
    odd = alert_031(hostname=["not", "a", "string"], output_fields={"proc.cmdline": ["a", "list"], "user.name": {"x": 1}})
    summary = FalcoTriage(default_host="h").feed_lines([line(odd), line(odd), line(alert_031(hostname=""))]).summary()
    assert summary["alerts"] == 3
    assert sorted(row["host"] for row in summary["by_host"]["top"]) == ["['not', 'a', 'string']", "h"]


def test_stdlib_json_parser_gives_the_same_summary(monkeypatch):
    lines = [line(alert_031()), line(privileged_container_031()), b"banner", b'{"broken', b"{\"output\": \"\xff\"}"]
    with_default = FalcoTriage().feed_lines(lines).summary()
    monkeypatch.setattr(falco_events_triage, "_json_loads", json.loads)
    with_stdlib = FalcoTriage().feed_lines(lines).summary()
    with_default.pop("parser")
    with_stdlib.pop("parser")
    assert with_stdlib == with_default


# --- the hot loop's two paths: an alert in Falco's usual form, and every other line ----------------------------
# An alert in Falco's usual form (string rule, priority and canonical time, output_fields an object) is read in a
# few C-level steps; every other line goes through the careful path. Both must count an alert the same way.


def fingerprint_rows(lines, **options):
    summary = FalcoTriage(**options).feed_lines(lines).summary(top=None)
    return [(row["id"], row["count"], row["fields"], row["hosts"], row["sample_output"])
            for row in summary["fingerprints"]["top"]], summary


def test_an_alert_counts_the_same_on_the_usual_and_the_careful_path():
    usual = line(shadow_read("2026-11-27T00:00:00.000000000Z"))
    prefixed = b"Nov 27 00:00:01 web-01 falco[1]: " + line(shadow_read("2026-11-27T00:00:01.000000000Z"))
    # A time without nanoseconds is not in Falco's form: the careful path converts it.
    short_time = line(shadow_read("2026-11-27T00:00:02Z"))
    rows, summary = fingerprint_rows([usual, prefixed, short_time])
    assert len(rows) == 1
    assert rows[0][1] == 3 and rows[0][3] == ["web-01"]
    assert (summary["first_seen"], summary["last_seen"]) == (
        "2026-11-27T00:00:00.000000000Z", "2026-11-27T00:00:02.000000000Z")
    # Whichever path meets the fingerprint first, its sample and counts are the same.
    assert fingerprint_rows([prefixed, usual, short_time])[0] == rows


def test_escaped_quotes_and_unicode_in_values_reach_the_fingerprint_decoded():
    fields = {"proc.cmdline": 'sh -c "echo \\"hi\\" > /tmp/caf\u00e9"', "fd.name": "/tmp/caf\u00e9\u2028x"}
    event = shadow_read("2026-11-27T00:00:00.000000000Z", **fields)
    compact = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    escaped = json.dumps(event).encode("ascii")  # \u00e9 escapes, spaces after separators
    rows, summary = fingerprint_rows([compact, escaped])
    assert summary["alerts"] == 2
    assert len(rows) == 1 and rows[0][1] == 2
    assert rows[0][2]["proc.cmdline"] == fields["proc.cmdline"]
    assert rows[0][2]["fd.name"] == fields["fd.name"]


def test_nested_output_fields_are_counted_without_the_nested_values():
    nested = shadow_read("2026-11-27T00:00:00.000000000Z", **{"proc.cmdline": {"argv": ["cat", "/etc/shadow"]},
                                                              "fd.name": ["/etc/shadow"]})
    rows, summary = fingerprint_rows([line(nested), line(nested), line(shadow_read("2026-11-27T00:00:01.000000000Z"))])
    assert summary["alerts"] == 3
    counts = sorted((count, sorted(fields)) for _id, count, fields, _hosts, _sample in rows)
    assert counts == [
        (1, ["fd.name", "proc.cmdline", "proc.exepath", "proc.name", "proc.pname", "user.name"]),
        (2, ["proc.exepath", "proc.name", "proc.pname", "user.name"]),
    ]


def test_malformed_lines_between_alerts_keep_their_reasons_and_first_examples():
    good = line(shadow_read("2026-11-27T00:00:00.000000000Z"))
    lines = [
        good,
        good[:-30],  # truncated_json
        b"[1, 2]",  # JSON, but not an object: not_json, as before the object check
        b'"just a string"',  # not_json
        good.replace(b"/etc/shadow", b"/etc/\xff"),  # invalid_utf8
        good.replace(b'"output"', b'"outpt"'),  # not_an_alert: no output
        good.replace(b'"Warning"', b"3"),  # not_an_alert: priority not a string
        good.replace(b'{"hostname"', b'{"x": [}, "hostname"'),  # truncated_json: broken inside, whole at the ends
        good,
    ]
    summary = FalcoTriage().feed_lines(lines).summary()
    assert summary["alerts"] == 2
    assert summary["skipped_lines"] == {
        "not_json": 2, "truncated_json": 2, "invalid_utf8": 1, "oversized": 0, "not_an_alert": 2
    }
    assert summary["skipped_examples"]["not_json"] == "[1, 2]"
    assert summary["skipped_examples"]["truncated_json"] == good[:-30].decode("ascii")[:160]
    assert_lines_add_up(summary)


def test_recorded_044_alerts_count_the_same_on_both_paths():
    lines = recorded_lines("falco-0.44.1_alerts.jsonl") + recorded_lines("falco-0.44.1_tutorial-events.jsonl")
    usual, usual_summary = fingerprint_rows(lines)
    careful, careful_summary = fingerprint_rows([b"Nov 27 12:48:19 vm falco[1]: " + text for text in lines])
    assert usual == careful
    for summary in (usual_summary, careful_summary):
        summary.pop("skipped_examples")
    assert usual_summary == careful_summary
    # The alerts print different fields: "Launch Excessively Capable Container" has no fd.name.
    capable = [fields for _id, _count, fields, _hosts, sample in usual if "capable" in sample]
    assert capable and "fd.name" not in capable[0]


# --- files: snapshot at open, appends, parallel ranges -------------------------------------------------------


def test_limit_stops_at_the_end_of_the_line_that_straddles_it():
    first, second, third = (line(alert_031(time="2022-05-01T23:36:4%d.000000000Z" % n)) for n in range(3))
    data = first + b"\n" + second + b"\n" + third + b"\n"
    limit = len(first) + 1 + len(second) // 2
    summary = FalcoTriage().feed_stream(io.BytesIO(data), limit=limit).summary()
    assert summary["alerts"] == 2
    assert summary["last_seen"] == "2022-05-01T23:36:41.000000000Z"


def test_a_file_being_appended_to_is_read_without_error(tmp_path):
    path = tmp_path / "events.json"
    alert = line(alert_031())
    initial = 2000
    path.write_bytes((alert + b"\n") * initial)
    stop = threading.Event()
    written = [initial]

    def append():
        with open(path, "ab", buffering=0) as handle:
            while not stop.is_set():
                # Half a line, a pause, then the rest: the reader may well meet a partial last line.
                handle.write(alert[:50])
                time.sleep(0.0005)
                handle.write(alert[50:] + b"\n")
                written[0] += 1

    writer = threading.Thread(target=append)
    writer.start()
    try:
        time.sleep(0.02)
        summaries = [triage_file(str(path), workers=1).summary() for _attempt in range(5)]
    finally:
        stop.set()
        writer.join()
    for summary in summaries:
        assert summary["alerts"] >= initial
        assert summary["alerts"] + summary["skipped_lines"]["truncated_json"] <= written[0]
        assert summary["skipped_lines"]["truncated_json"] <= 1
        assert sum(summary["skipped_lines"].values()) == summary["skipped_lines"]["truncated_json"]


def make_mixed_file(path, count=3000):
    """Alerts of several shapes with banners, broken and oversized lines in between."""
    with open(path, "wb") as handle:
        for index in range(count):
            if index % 250 == 0:
                handle.write(b"Loading rules from file /etc/falco/falco_rules.yaml:\n")
            if index % 777 == 0:
                handle.write(b'{"output": "' + b"B" * 5000 + b'"}\n')
            if index % 3 == 0:
                event = alert_031(time="2022-05-01T23:%02d:%02d.000000000Z" % (index // 60 % 60, index % 60))
            elif index % 3 == 1:
                event = shadow_read("2026-11-27T%02d:%02d:00.000000000Z" % (index // 60 % 24, index % 60),
                                    host="web-%02d" % (index % 4), **{"proc.cmdline": "cat /etc/shadow %d" % (index % 7)})
            else:
                event = privileged_container_031("%012x" % index)
            handle.write(line(event) + b"\n")
        handle.write(b'{"output": "cut off')


def test_parallel_byte_ranges_give_the_same_summary_as_one_pass(tmp_path, monkeypatch):
    path = tmp_path / "mixed.jsonl"
    make_mixed_file(path)
    monkeypatch.setattr(falco_events_input, "PARALLEL_MIN_BYTES", 1024)
    options = dict(default_host="fallback", max_line_bytes=4096)
    sequential = triage_file(str(path), workers=1, **options).summary(top=1000)
    parallel = triage_file(str(path), workers=3, **options).summary(top=1000)
    assert parallel == sequential
    assert sequential["skipped_lines"]["oversized"] == 4
    assert sequential["skipped_lines"]["truncated_json"] == 1
    assert sequential["alerts"] == 3000


def test_range_boundaries_fall_on_line_starts(tmp_path):
    path = tmp_path / "mixed.jsonl"
    make_mixed_file(path, count=500)
    data = path.read_bytes()
    with open(path, "rb") as handle:
        ranges = falco_events_input._line_boundaries(handle, len(data), 7)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (_start, end), (start, _end) in zip(ranges, ranges[1:]):
        assert end == start and data[start - 1:start] == b"\n"


# --- filters -------------------------------------------------------------------------------------------------


def filter_lines():
    return [
        line(alert_031()),  # Error, 2022-05-01T23:36:41
        line(privileged_container_031()),  # Informational, 2022-05-01T23:29:32
        line(shadow_read("2026-11-27T12:00:00.000000000Z")),  # Warning
    ]


def test_min_priority_keeps_that_priority_and_more_severe():
    summary = FalcoTriage(min_priority="warning").feed_lines(filter_lines()).summary()
    assert summary["by_priority"] == {"Error": 1, "Warning": 1}
    assert summary["filtered_out"] == 1
    assert_lines_add_up(summary)


def test_info_is_an_alias_of_informational():
    summary = FalcoTriage(min_priority="info").feed_lines(filter_lines()).summary()
    assert summary["matched"] == 3
    assert summary["filters"]["min_priority"] == "Informational"


def test_since_and_until_compare_in_utc_whatever_the_offset():
    # 2022-05-01T19:30:00-04:00 is 23:30:00Z: after the privileged container (23:29:32Z).
    summary = FalcoTriage(since="2022-05-01T19:30:00-04:00", until="2023-01-01").feed_lines(filter_lines()).summary()
    assert [row["rule"] for row in summary["rules"]["top"]] == ["Write below binary dir"]
    assert summary["filters"]["since"] == "2022-05-01T23:30:00.000000000Z"


def test_rules_filter_keeps_only_named_rules():
    summary = FalcoTriage(rules=["Launch Privileged Container"]).feed_lines(filter_lines()).summary()
    assert summary["matched"] == 1 and summary["filtered_out"] == 2


def test_unknown_priority_and_bad_time_are_caller_errors():
    with pytest.raises(FalcoTriageError, match="min_priority"):
        FalcoTriage(min_priority="loud")
    with pytest.raises(FalcoTriageError, match="since"):
        FalcoTriage(since="yesterday-ish")


def test_relative_times_count_back_from_now():
    now = 1795783699.5  # 2026-11-27T12:48:19.5Z
    assert parse_time_bound("-1h", "since", now=now) == "2026-11-27T11:48:19.500000000Z"
    assert parse_time_bound("now", "until", now=now) == "2026-11-27T12:48:19.500000000Z"


@pytest.mark.parametrize("text, expected", [
    ("2022-05-01T23:36:41.237634398Z", "2022-05-01T23:36:41.237634398Z"),
    ("2022-05-01T23:36:41Z", "2022-05-01T23:36:41.000000000Z"),
    ("2022-05-01 19:36:41.5-04:00", "2022-05-01T23:36:41.500000000Z"),
    ("2022-05-01", "2022-05-01T00:00:00.000000000Z"),
    ("2022-05-01T23:36:41.1234567891234+0000", "2022-05-01T23:36:41.123456789Z"),
    ("May 1", None),
    (1651448201, None),
])
def test_canonical_time(text, expected):
    assert canonical_time(text) == expected


@pytest.mark.parametrize("text", [
    "2026-11-27T12:48:19.235783172Z",
    "1970-01-01T00:00:00.000000000Z",
    "2024-02-29T23:59:59.999999999Z",  # leap day
    "2016-12-31T23:59:60.500000000Z",  # a leap second, as strptime takes it
    "9999-12-31T23:59:61.000000001Z",
])
def test_epoch_seconds_reads_canonical_times_as_strptime_does(text):
    expected = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + int(text[20:29]) / 1e9
    assert falco_events.epoch_seconds(text) == expected


@pytest.mark.parametrize("text", [
    "2026-13-27T12:48:19.235783172Z",
    "2026-02-29T12:48:19.235783172Z",  # not a leap year
    "2026-11-27T24:00:00.000000000Z",
    "2026-11-27T12:60:00.000000000Z",
    "2026-11-27T12:00:62.000000000Z",
    "0000-01-01T00:00:00.000000000Z",
    "2026-11-2xT12:48:19.235783172Z",
])
def test_epoch_seconds_refuses_what_strptime_refuses(text):
    with pytest.raises(ValueError):
        falco_events.epoch_seconds(text)


def test_alerts_with_odd_time_format_still_sort_correctly():
    early = shadow_read("2026-11-27T10:00:00Z")
    late = shadow_read("2026-11-27T11:00:00.5+00:00")
    summary = FalcoTriage().feed_lines([line(late), line(early)]).summary()
    assert (summary["first_seen"], summary["last_seen"]) == (
        "2026-11-27T10:00:00.000000000Z", "2026-11-27T11:00:00.500000000Z")


# --- bounded output ------------------------------------------------------------------------------------------


def test_top_cut_accounts_for_everything_in_others():
    lines = [line(shadow_read("2026-11-27T00:00:00.000000000Z", host="host-%d" % (n % 6),
                              **{"proc.name": "p%d" % (n % 9)})) for n in range(200)]
    summary = FalcoTriage().feed_lines(lines).summary(top=3)
    for table in ("by_host", "rules", "fingerprints"):
        kept = summary[table]["top"]
        assert len(kept) == 3
        assert sum(row["count"] for row in kept) + summary[table]["others"]["events"] == 200
        assert len(kept) + summary[table]["others"]["entries"] == summary[table]["distinct"]


def two_host_rule_mix():
    """web-01: 3 Warning shadow reads, 2 Error writes; web-02: 4 Warning shadow reads; pi-garage: 1 Error write."""
    writes = [line(alert_031(hostname="web-01"))] * 2 + [line(alert_031())]
    return [line(e) for e in hourly(3, host="web-01") + hourly(4, start_hour=5, host="web-02")] + writes


def test_rule_totals_add_up_each_rules_host_rows():
    summary = FalcoTriage(default_host="pi-garage").feed_lines(two_host_rule_mix()).summary()
    assert summary["rule_totals"]["top"] == [
        {"rule": "Read sensitive file untrusted", "priority": "Warning", "count": 7, "host_count": 2},
        {"rule": "Write below binary dir", "priority": "Error", "count": 3, "host_count": 2},
    ]
    for total in summary["rule_totals"]["top"]:
        rows = [row for row in summary["rules"]["top"]
                if (row["rule"], row["priority"]) == (total["rule"], total["priority"])]
        assert total["count"] == sum(row["count"] for row in rows)
        assert total["host_count"] == len(rows)


def test_rule_totals_count_evicted_rule_rows_in_others():
    lines = [line(shadow_read("2026-11-27T00:00:00.000000000Z", host="h%d" % n, **{"proc.name": "p%d" % n}))
             for n in range(40) for _repeat in range(n + 1)]
    triage = FalcoTriage(max_rule_groups=10)
    for start in range(0, len(lines), 50):
        triage.feed_lines(lines[start:start + 50])
    totals = triage.summary()["rule_totals"]
    assert totals["others"]["events"] > 0
    assert totals["top"][0]["count"] + totals["others"]["events"] == sum(range(1, 41))


def test_rule_rows_are_every_host_rule_priority_row_most_frequent_first():
    triage = FalcoTriage(default_host="pi-garage").feed_lines(two_host_rule_mix())
    rows = triage.rule_rows()
    assert [(row["host"], row["rule"], row["count"]) for row in rows] == [
        ("web-02", "Read sensitive file untrusted", 4),
        ("web-01", "Read sensitive file untrusted", 3),
        ("web-01", "Write below binary dir", 2),
        ("pi-garage", "Write below binary dir", 1),
    ]
    assert rows[:2] == triage.summary(top=2)["rules"]["top"]


def test_many_hosts_are_counted_exactly_and_a_fingerprint_keeps_its_first_50():
    # More hosts than a cache slot keeps group counters for, and more groups (two spellings of one priority) than
    # the group table keeps between batches: every host's count stays exact all the same.
    hosts = ["h%03d" % number for number in range(80)]
    expected = {}
    triage = FalcoTriage(max_rule_groups=100)
    for second in range(3):
        batch = []
        for index, host in enumerate(hosts):
            event = shadow_read("2026-11-27T00:00:%02d.000000000Z" % second, host=host)
            if (index + second) % 2:
                event["priority"] = "warning"
            batch.append(line(event))
            expected[host] = expected.get(host, 0) + 1
        triage.feed_lines(batch)
    assert {row["host"]: row["count"] for row in triage.rule_rows()} == expected
    assert set(row["priority"] for row in triage.rule_rows()) == {"Warning"}
    record = triage.fingerprint_records()[0]
    assert record["count"] == sum(expected.values())
    assert record["hosts"] == hosts[:50] and record["hosts_truncated"] is True
    assert triage.summary()["approximate"] is False


def test_fingerprint_table_stays_bounded_and_keeps_the_heavy_hitter():
    triage = FalcoTriage(max_fingerprints=20)
    heavy = line(shadow_read("2026-11-27T00:00:00.000000000Z"))
    batch = []
    for n in range(1000):
        batch.append(heavy)
        batch.append(line(shadow_read("2026-11-27T00:00:00.000000000Z", **{"proc.cmdline": "cat /tmp/%d" % n})))
        if len(batch) >= 50:
            triage.feed_lines(batch)
            batch = []
    assert len(triage.fingerprints) <= 20
    summary = triage.summary(top=1)
    assert summary["approximate"] is True
    assert summary["matched"] == 2000
    assert summary["fingerprints"]["top"][0]["count"] == 1000
    assert summary["fingerprints"]["top"][0]["fields"]["proc.cmdline"] == "cat /etc/shadow"
    assert 1000 + summary["fingerprints"]["others"]["events"] == 2000


def test_summary_never_contains_the_raw_alerts():
    summary = FalcoTriage().feed_lines([line(alert_031())] * 50).summary()
    assert "output_fields" not in json.dumps(summary)
    assert len(json.dumps(summary)) < 5000


# --- merging hosts -------------------------------------------------------------------------------------------


def test_merging_two_host_summaries_adds_counts_and_hosts():
    host_a = FalcoTriage(default_host="pi-garage").feed_lines(
        [line(alert_031())] * 3 + [line(e) for e in hourly(2, host="web-01")] + [b"banner"]).summary()
    host_b = FalcoTriage().feed_lines([line(e) for e in hourly(4, start_hour=5, host="web-02")]).summary()
    merged = merge_summaries([host_a, host_b])
    assert merged["alerts"] == 9 and merged["lines_read"] == 10
    assert merged["skipped_lines"]["not_json"] == 1
    assert {row["host"]: row["count"] for row in merged["by_host"]["top"]} == {"pi-garage": 3, "web-01": 2, "web-02": 4}
    shadow = [row for row in merged["fingerprints"]["top"] if row["rule"] == "Read sensitive file untrusted"]
    assert len(shadow) == 1
    assert shadow[0]["count"] == 6
    assert shadow[0]["hosts"] == ["web-01", "web-02"]
    assert (shadow[0]["first_seen"], shadow[0]["last_seen"]) == (
        "2026-11-27T00:00:00.000000000Z", "2026-11-27T08:00:00.000000000Z")
    assert merged["first_seen"] == "2022-05-01T23:36:41.237634398Z"
    assert_lines_add_up(merged)


def test_a_summary_without_alerts_leaves_the_merged_times_to_the_others():
    quiet = FalcoTriage().feed_lines([b"banner"]).summary()
    busy = FalcoTriage().feed_lines([line(e) for e in hourly(3, host="web-01")]).summary()
    assert quiet["first_seen"] is None and quiet["last_seen"] is None
    for order in ([quiet, busy], [busy, quiet]):
        merged = merge_summaries(order)
        assert (merged["first_seen"], merged["last_seen"]) == (busy["first_seen"], busy["last_seen"]), order
    assert busy["first_seen"] < busy["last_seen"]


def test_merging_cut_summaries_keeps_totals_exact():
    summaries = []
    for host in range(5):
        lines = [line(shadow_read("2026-11-27T00:00:00.000000000Z", host="h%d" % host, **{"proc.name": "p%d" % n}))
                 for n in range(10) for _repeat in range(n + 1)]
        summaries.append(FalcoTriage().feed_lines(lines).summary(top=4))
    merged = merge_summaries(summaries, top=4)
    assert merged["matched"] == 5 * 55
    table = merged["fingerprints"]
    assert sum(row["count"] for row in table["top"]) + table["others"]["events"] == merged["matched"]
    assert table["top"][0]["count"] == 5 * 10 and table["top"][0]["host_count"] == 5


def test_merged_rule_totals_sum_the_summaries_totals_and_their_host_counts():
    host_a = FalcoTriage(default_host="pi-garage").feed_lines(two_host_rule_mix()).summary()
    host_b = FalcoTriage().feed_lines([line(e) for e in hourly(2, host="db-01")]).summary()
    merged = merge_summaries([host_a, host_b])
    assert merged["rule_totals"]["top"] == [
        {"rule": "Read sensitive file untrusted", "priority": "Warning", "count": 9, "host_count": 3},
        {"rule": "Write below binary dir", "priority": "Error", "count": 3, "host_count": 2},
    ]
    # The same host in two summaries is counted twice: host_count is an upper bound.
    twice = merge_summaries([host_b, host_b])
    assert twice["rule_totals"]["top"][0]["host_count"] == 2


def test_merged_rule_totals_are_derived_from_rules_rows_of_older_summaries():
    saved = FalcoTriage(default_host="pi-garage").feed_lines(two_host_rule_mix()).summary(top=3)
    older = dict(saved)
    del older["rule_totals"]
    merged = merge_summaries([older], top=1)
    assert merged["rule_totals"]["top"] == [
        {"rule": "Read sensitive file untrusted", "priority": "Warning", "count": 7, "host_count": 2},
    ]
    # The write on pi-garage was cut from the saved rules table: it is in others, as is the total cut here.
    assert merged["rule_totals"]["others"] == {"entries": 2, "events": 3}
    assert merged["rule_totals"]["top"][0]["count"] + merged["rule_totals"]["others"]["events"] == merged["matched"]


def test_merge_of_parallel_partials_equals_one_pass():
    lines = [line(e) for e in hourly(5)] + [line(alert_031())] * 4 + [b"junk"]
    whole = FalcoTriage().feed_lines(lines).summary()
    left = FalcoTriage().feed_lines(lines[:4])
    right = FalcoTriage().feed_lines(lines[4:])
    assert left.merge(right).summary() == whole


# --- exception suggestions -----------------------------------------------------------------------------------


def suggestions_for(lines, **options):
    return suggest_exceptions(FalcoTriage().feed_lines(lines).fingerprint_records(), **options)


def test_frequent_long_lived_warning_is_suggested_in_falco_rule_exceptions_format():
    result = suggestions_for([line(e) for e in hourly(12)], min_count=10, min_span=3600)
    assert len(result["exceptions"]) == 1
    exception = result["exceptions"][0]
    assert set(exception) == {"rule", "name", "fields", "comps", "values"}
    assert exception["rule"] == "Read sensitive file untrusted"
    assert exception["fields"] == ["proc.name", "proc.exepath", "proc.pname", "proc.cmdline", "fd.name", "user.name"]
    assert exception["comps"] == ["="] * 6
    assert exception["values"] == [["cat", "/usr/bin/cat", "bash", "cat /etc/shadow", "/etc/shadow", "root"]]
    assert exception["name"].startswith("triage_cat_bash_")
    assert result["evidence"][0]["count"] == 12 and result["evidence"][0]["span_seconds"] == 11 * 3600


def test_bursts_rare_actors_and_severe_rules_are_not_suggested():
    burst = [line(shadow_read("2026-11-27T00:00:%02d.000000000Z" % n)) for n in range(30)]
    assert suggestions_for(burst)["not_suggested"]["too_short"] == 1
    assert suggestions_for([line(e) for e in hourly(3)])["not_suggested"]["too_few"] == 1
    severe = [line(alert_031(time="2022-05-01T%02d:00:00.000000000Z" % n)) for n in range(20)]
    result = suggestions_for(severe)
    assert result["exceptions"] == [] and result["not_suggested"]["too_severe"] == 1
    assert len(suggestions_for(severe, max_priority="error")["exceptions"]) == 1


def test_values_falco_could_misread_are_left_out_and_anchorless_ones_skipped():
    quoted = hourly(12, **{"proc.cmdline": 'sh -c "cat /etc/shadow"'})
    result = suggestions_for([line(e) for e in quoted])
    assert "proc.cmdline" not in result["exceptions"][0]["fields"]
    assert result["evidence"][0]["fields_left_out"] == ["proc.cmdline"]
    no_actor = hourly(12, **{"proc.name": None, "proc.exepath": None, "proc.cmdline": "a=(b)"})
    result = suggestions_for([line(e) for e in no_actor])
    assert result["exceptions"] == [] and result["not_suggested"]["no_safe_anchor"] == 1


def test_suggestions_are_valid_falco_exceptions():
    lines = [line(e) for e in hourly(12)]
    lines += [line(e) for e in hourly(12, **{"proc.name": "less", "proc.cmdline": "less /etc/shadow"})]
    lines += [line(privileged_container_031("%012x" % n)) for n in range(15)]
    result = suggestions_for(lines, min_span=0)
    assert len(result["exceptions"]) == 3
    names = set()
    for exception in result["exceptions"]:
        assert len(exception["fields"]) == len(exception["comps"]) > 0
        assert all(len(row) == len(exception["fields"]) for row in exception["values"])
        assert set(exception["comps"]) == {"="}
        assert all(falco_events.is_safe_exception_value(value) for row in exception["values"] for value in row)
        assert (exception["rule"], exception["name"]) not in names
        names.add((exception["rule"], exception["name"]))


def test_suggested_fields_are_fields_the_falco_rules_use():
    rules_files = sorted((SHARED_UPSTREAM / "falco").glob("falcosecurity-rules_*.yaml"))
    if not rules_files:
        pytest.skip("upstream Falco rules not found in %s (needs ../shared next to the repo)" % SHARED_UPSTREAM)
    known = "".join(path.read_text(encoding="utf-8") for path in rules_files)
    lines = [line(e) for e in hourly(12, **{"container.image.repository": "docker.io/library/nginx"})]
    for exception in suggestions_for(lines)["exceptions"]:
        for field in exception["fields"]:
            assert field in known, field


def test_suggestions_validate_against_falco_rule_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = SHARED_UPSTREAM / "falco" / "falco-0.44.1_rule_schema.json"
    if not schema_path.is_file():
        pytest.skip("Falco 0.44.1 rule schema not found at %s (needs ../shared next to the repo)" % schema_path)
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    exceptions = suggestions_for([line(e) for e in hourly(12)])["exceptions"]
    document = [
        {"rule": item["rule"], "exceptions": [{k: item[k] for k in ("name", "fields", "comps", "values")}],
         "override": {"exceptions": "append"}}
        for item in exceptions
    ]
    jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"rule": "x", "exceptions": [{"name": "n", "field": ["typo"]}]}], schema)


def test_yaml_output_loads_back_to_the_same_exceptions():
    yaml = pytest.importorskip("yaml")
    lines = [line(e) for e in hourly(12, **{"user.name": "üser: \"x\""})]
    lines += [line(e) for e in hourly(12, **{"proc.name": "less", "proc.cmdline": "less /etc/shadow"})]
    result = suggestions_for(lines)
    text = exceptions_to_yaml(result["exceptions"], result["evidence"])
    assert yaml.safe_load(text) == {"falco_rule_exceptions": result["exceptions"]}
    assert "# 12 alerts (Warning)" in text
    assert yaml.safe_load(exceptions_to_yaml([])) == {"falco_rule_exceptions": []}


def test_suggestions_work_on_merged_summaries():
    per_host = [FalcoTriage().feed_lines([line(e) for e in hourly(6, start_hour=h * 6, host="h%d" % h)]).summary()
                for h in range(2)]
    assert suggestions_for([line(e) for e in hourly(6)])["exceptions"] == []  # one host alone: too few
    merged = merge_summaries(per_host)
    result = suggest_exceptions(merged["fingerprints"]["top"])
    assert len(result["exceptions"]) == 1
    assert result["evidence"][0]["hosts"] == ["h0", "h1"]


def test_limit_caps_the_number_of_suggestions():
    lines = []
    for n in range(5):
        lines += [line(e) for e in hourly(12, **{"proc.name": "tool%d" % n})]
    result = suggestions_for(lines, limit=2)
    assert len(result["exceptions"]) == 2 and result["not_suggested"]["over_limit"] == 3


def test_fingerprint_ids_are_stable_across_processes_and_hosts():
    first = FalcoTriage().feed_lines([line(shadow_read("2026-11-27T00:00:00Z", host="a"))]).summary()
    second = FalcoTriage().feed_lines([line(shadow_read("2026-11-28T00:00:00Z", host="b"))]).summary()
    assert first["fingerprints"]["top"][0]["id"] == second["fingerprints"]["top"][0]["id"]
    assert len(first["fingerprints"]["top"][0]["id"]) == 12


def test_pickled_triage_round_trips_for_worker_results():
    import pickle

    triage = FalcoTriage().feed_lines([line(alert_031())] * 3)
    clone = pickle.loads(pickle.dumps(triage))
    assert clone.summary() == triage.summary()
    clone.feed_lines([line(alert_031())])
    assert clone.summary()["alerts"] == 4


def test_max_line_bytes_must_be_sane():
    with pytest.raises(FalcoTriageError, match="max_line_bytes"):
        FalcoTriage(max_line_bytes=0)


def test_reading_a_fifo_works_without_a_size(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))

    def feed():
        with open(fifo, "wb") as handle:
            handle.write(b"banner\n" + line(alert_031()) + b"\n")

    writer = threading.Thread(target=feed)
    writer.start()
    summary = triage_file(str(fifo), workers=2).summary()
    writer.join()
    assert (summary["alerts"], summary["skipped_lines"]["not_json"]) == (1, 1)


# --- measuring the effect of exceptions ----------------------------------------------------------------------


def test_compare_rates_measures_the_reduction_per_rule():
    noisy = [line(e) for e in hourly(20)]  # 20 alerts over 19 hours
    severe = [line(alert_031(time="2026-11-27T%02d:30:00.000000000Z" % n)) for n in range(2)]
    before = FalcoTriage(since="2026-11-27T00:00:00Z", until="2026-11-28T00:00:00Z").feed_lines(noisy + severe).summary()
    after_lines = [line(e) for e in hourly(2, start_hour=0)] + severe
    after = FalcoTriage(since="2026-11-27T00:00:00Z", until="2026-11-28T00:00:00Z").feed_lines(after_lines).summary()
    comparison = falco_events.compare_rates(before, after)
    assert comparison["window_hours"] == {"before": 24.0, "after": 24.0}
    by_rule = {row["rule"]: row for row in comparison["rules"]}
    assert by_rule["Read sensitive file untrusted"]["change_percent"] == -90.0
    assert by_rule["Write below binary dir"]["change_percent"] == 0.0
    assert comparison["total"]["change_percent"] == round((4 - 22) * 100.0 / 22, 1)


def test_compare_rates_needs_a_time_window():
    empty = FalcoTriage().summary()
    with pytest.raises(FalcoTriageError, match="window"):
        falco_events.compare_rates(empty, empty)
