"""Falco alerts forwarded with rsyslog from evt-a and evt-b to the store on evt-col, checked byte for byte.

Falco does not run here. The alerts are real ones recorded from Falco 0.44.1 (read from ../shared/upstream/recorded
at test time; the tests skip when it is absent) plus alerts in Falco 0.31's shape (no hostname), written into the
senders' journals by the TEST FIXTURE molecule/events/fixture_falco_syslog.py, which makes Falco's own syslog(3) call.
The tests run in file order: each phase adds alerts and checks the whole per-host file.
"""

import json
import sys
import time
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import failures, run_playbook_json  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]
RECORDED_DIR = REPO_ROOT.parent / "shared" / "upstream" / "recorded"
RECORDED_FILES = ["falco-0.44.1_alerts.jsonl", "falco-0.44.1_tutorial-events.jsonl"]
STORE = "/var/log/fleetwatch/falco-events"
FIXTURE = "/usr/local/lib/fleetwatch-fixture/fixture_falco_syslog.py"
COL = testinfra.get_host("podman://evt-col")
SENDERS = {name: testinfra.get_host("podman://" + name) for name in ("evt-a", "evt-b")}
# What each sender has written so far, in order; every test compares the collector's file with it.
SENT = {name: [] for name in SENDERS}

pytestmark = pytest.mark.skipif(
    not all((RECORDED_DIR / name).exists() for name in RECORDED_FILES),
    reason="recorded Falco alerts absent: %s (../shared/upstream/recorded) is needed to inject real alerts" % RECORDED_DIR)


def run(playbook, *args):
    """A playbook again with args: (exit code, the JSON callback's report, the output's tail for messages). The tests
    read what the run did from the report (the recap in its "stats", the refusals' messages), never from printed
    lines or task names."""
    rc, report, output = run_playbook_json(playbook, *args)
    return rc, report, output[-3000:]


def recorded_lines():
    lines = []
    for name in RECORDED_FILES:
        lines += [line for line in (RECORDED_DIR / name).read_bytes().split(b"\n") if line.strip()]
    return lines


def legacy_alert(host, phase, number):
    """An alert in Falco 0.31.1's shape (docs FACTS: no hostname key), unique per host, phase and number."""
    return json.dumps({
        "output": "19:36:41.237634398: Error File below a known binary directory opened for writing (user=root "
                  "command=touch /bin/should_not_be_here_%s_%s_%d file=/bin/should_not_be_here)" % (host, phase, number),
        "priority": "Error", "rule": "Write below binary dir", "source": "syscall",
        "tags": ["filesystem", "mitre_persistence"],
        "time": "2022-05-01T23:36:%02d.237634398Z" % number,
        "output_fields": {"container.id": "host", "evt.time": 1651448201237634398 + number,
                          "fd.name": "/bin/should_not_be_here",
                          "proc.cmdline": "touch /bin/should_not_be_here_%s_%s_%d" % (host, phase, number),
                          "user.name": "root"},
    }, separators=(",", ":")).encode()


def inject(host, lines):
    """Write ``lines`` into the host's journal as Falco would (test fixture), and remember them as sent."""
    path = "/tmp/fixture-alerts-%d.jsonl" % time.monotonic_ns()
    payload = b"\n".join(lines).decode() + "\n"
    SENDERS[host].run_test("printf '%%s' %s > %s", payload, path)
    assert SENDERS[host].check_output("python3 %s %s", FIXTURE, path) == str(len(lines))
    SENT[host].extend(lines)


def phase_lines(host, phase, legacy=3):
    """The recorded alerts, then ``legacy`` 0.31-shaped ones, interleaved so that order matters."""
    recorded = recorded_lines()
    lines = []
    for number in range(max(legacy, len(recorded))):
        if number < len(recorded):
            lines.append(recorded[number])
        if number < legacy:
            lines.append(legacy_alert(host, phase, number))
    return lines


def stored(host, suffix=""):
    path = "%s/%s.jsonl%s" % (STORE, host, suffix)
    if not COL.file(path).exists:
        return []
    return [line for line in COL.file(path).content.split(b"\n") if line]


def wait_for_store(timeout=90):
    """Wait until each host's file at the collector holds what was sent; return {host: stored lines}."""
    deadline = time.monotonic() + timeout
    while True:
        current = {host: stored(host) for host in SENDERS}
        if all(len(current[host]) >= len(SENT[host]) for host in SENDERS) or time.monotonic() > deadline:
            return current
        time.sleep(1)


def assert_store_matches():
    current = wait_for_store()
    for host in SENDERS:
        assert current[host] == SENT[host], "%s: the collector's file differs from what was sent (in order)" % host


def test_the_collector_listens_on_the_explicit_address_and_validated_config():
    assert COL.socket("tcp://0.0.0.0:10514").is_listening
    config = COL.file("/etc/rsyslog.d/40-fleetwatch-falco-collect.conf").content_string
    assert 'address="0.0.0.0"' in config and 'port="10514"' in config
    assert COL.run("rsyslogd -N1").rc == 0
    store = COL.file(STORE)
    assert store.is_directory and store.mode == 0o750 and store.group == "adm"


def test_senders_forward_with_a_disk_assisted_queue_that_retries_forever():
    for host in SENDERS.values():
        config = host.file("/etc/rsyslog.d/40-fleetwatch-falco-forward.conf").content_string
        for setting in ('target="evt-col"', 'port="10514"', 'queue.type="LinkedList"',
                        'queue.filename="fleetwatch_falco_forward"', 'queue.saveOnShutdown="on"',
                        'action.resumeRetryCount="-1"'):
            assert setting in config
        assert host.service("rsyslog").is_running
        assert host.run("rsyslogd -N1").rc == 0


def test_alerts_arrive_complete_and_in_order_per_host():
    for host in SENDERS:
        inject(host, phase_lines(host, "first"))
    assert_store_matches()
    # Every recorded line is there byte for byte, and the 0.31-shaped ones kept their missing hostname.
    for host in SENDERS:
        lines = stored(host)
        for line in recorded_lines():
            assert line in lines
        assert sum(1 for line in lines if b'"hostname"' not in line) == 3


def test_alerts_written_while_the_collector_is_down_arrive_after_it_is_back():
    COL.run_test("systemctl stop rsyslog.service syslog.socket")
    assert not COL.socket("tcp://0.0.0.0:10514").is_listening
    before = {host: stored(host) for host in SENDERS}
    for host in SENDERS:
        inject(host, phase_lines(host, "down"))
    time.sleep(5)
    # Nothing reached the store while the receiver was stopped: the senders hold the alerts.
    assert {host: stored(host) for host in SENDERS} == before
    COL.run_test("systemctl start rsyslog.service")
    assert_store_matches()


def test_alerts_written_around_a_collector_restart_all_arrive_in_order():
    for host in SENDERS:
        inject(host, phase_lines(host, "before-restart"))
    COL.run_test("systemctl restart rsyslog.service")
    for host in SENDERS:
        inject(host, phase_lines(host, "after-restart"))
    assert_store_matches()


def test_rotation_starts_a_new_file_and_keeps_the_old_one():
    kept = {host: stored(host) for host in SENDERS}
    COL.run_test("logrotate --force /etc/logrotate.d/fleetwatch-falco-events")
    for host in SENDERS:
        SENT[host] = []
        inject(host, phase_lines(host, "rotated", legacy=1))
    assert_store_matches()
    for host in SENDERS:
        assert stored(host, ".1") == kept[host]


def test_central_triage_counts_every_stored_alert_under_its_host(tmp_path):
    code, report, output = run(str(REPO_ROOT / "playbooks" / "triage.yml"),
                               "-e", "fleetwatch_triage_source=central",
                               "-e", "fleetwatch_triage_report_dir=%s" % tmp_path)
    assert code == 0, output
    assert set(report["stats"]) >= {"evt-col", "localhost"} and "evt-a" not in report["stats"], report["stats"]
    summary = json.loads((tmp_path / "report.json").read_text())
    by_host = {row["host"]: row["count"] for row in summary["by_host"]["top"]}
    # The rotated files are read too: every alert ever sent is counted once.
    legacy_per_host = 3 * 4 + 1
    recorded_per_host = len(recorded_lines()) * 5
    assert by_host["evt-a"] == by_host["evt-b"] == legacy_per_host
    assert by_host["vm"] == 2 * recorded_per_host  # the recorded alerts carry Falco's own hostname
    markdown = (tmp_path / "report.md").read_text()
    assert "Hosts reported: 2" in markdown and "no report from" not in markdown


def test_a_check_mode_run_reports_no_change():
    code, report, output = run("converge.yml", "--check", "--diff")
    assert code == 0, output
    assert report["stats"] and all(row["changed"] == 0 for row in report["stats"].values()), report["stats"]


def test_a_misspelled_variable_stops_the_run_in_preflight():
    code, report, output = run("converge.yml", "-e", "event_forwarder_colector=evt-col", "--limit", "evt-a")
    assert code != 0
    refused = [m for m in failures(report, "evt-a") if "event_forwarder_colector" in m and "event_forwarder_collector" in m]
    assert refused, (failures(report, "evt-a"), output)


def test_with_tls_on_alerts_still_arrive_and_plain_tcp_is_refused():
    code, report, output = run("converge.yml", "-e", "event_collector_tls_enabled=true")
    assert code == 0, output
    assert report["stats"] and all(row["changed"] > 0 for row in report["stats"].values()), report["stats"]
    collector = COL.file("/etc/rsyslog.d/40-fleetwatch-falco-collect.conf").content_string
    assert 'streamDriver.name="gtls"' in collector and 'streamDriver.authMode="x509/name"' in collector
    assert COL.file("/etc/rsyslog-fleetwatch/tls/key.pem").mode == 0o600
    for host in SENDERS.values():
        forwarder = host.file("/etc/rsyslog.d/40-fleetwatch-falco-forward.conf").content_string
        assert 'StreamDriverAuthMode="x509/name"' in forwarder and 'StreamDriverPermittedPeers="evt-col"' in forwarder
    for host in SENDERS:
        inject(host, phase_lines(host, "tls", legacy=1))
    assert_store_matches()
    # A sender without TLS is not heard any more.
    probe = '{"rule":"plain tcp probe","priority":"Warning","output":"plain"}'
    SENDERS["evt-a"].run("logger --tcp --server evt-col --port 10514 --octet-count --rfc5424 --tag falco %s", probe)
    time.sleep(3)
    assert all(b"plain tcp probe" not in line for line in stored("evt-a"))
