"""The verdict of the falco_health module: a Falco that stays up, one in a restart loop, one that never starts."""

import http.server
import json
import os
import ssl
import subprocess
import threading

import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_health import (
    Watch,
    events_seen,
    failure_message,
    hint_for,
    newest_change,
    parse_show,
    reload_outcome,
)
from ansible_collections.fleetwatch.falco_stack.plugins.modules.falco_health import driver_problem, healthz

# systemctl show output of a Falco whose probe loads (started at monotonic 100 s).
RUNNING = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running", "MainPID": "664",
           "NRestarts": "0", "ExecMainStartTimestampMonotonic": "100000000"}
# Lines from the real Falco 0.44.1 in a container without CAP_SYS_ADMIN / CAP_BPF.
NO_CAPABILITY_LOG = [
    "Opening 'syscall' source with modern BPF probe.",
    "One ring buffer every '2' CPUs.",
    "[libs]: Trying to open the right engine!",
    "An error occurred in an event source, forcing termination...",
    "falco-modern-bpf.service: Main process exited, code=exited, status=1/FAILURE",
]


def look(**changes):
    return dict(RUNNING, **changes)


def test_parse_show_reads_key_value_lines():
    text = "ActiveState=active\nSubState=running\nMainPID=664\nInvocationID=2bc8\n"
    assert parse_show(text) == {"ActiveState": "active", "SubState": "running", "MainPID": "664",
                                "InvocationID": "2bc8"}


def test_a_process_up_past_the_settle_time_is_healthy():
    watch = Watch(settle=10)
    assert watch.observe(look(), now=111.0) == "healthy"


def test_a_process_just_started_is_waited_for_then_healthy():
    watch = Watch(settle=10)
    assert watch.observe(look(), now=102.0) == "waiting"
    assert "up 2.0 s" in watch.reason
    assert watch.observe(look(), now=110.5) == "healthy"


def test_the_restart_loop_is_a_failure_whichever_moment_it_is_caught_in():
    # Caught in its active second: waiting, then systemd restarts it.
    watch = Watch(settle=10)
    assert watch.observe(look(), now=100.5) == "waiting"
    assert watch.observe(look(ActiveState="activating", SubState="auto-restart", MainPID="0"), now=102) == "failed"
    assert "exited" in watch.reason
    # Caught between two starts: a new process whose restart counter rose.
    watch = Watch(settle=10)
    assert watch.observe(look(NRestarts="3"), now=100.5) == "waiting"
    assert watch.observe(look(NRestarts="4", MainPID="700"), now=117) == "failed"
    assert "restarted it 1 time(s)" in watch.reason


def test_a_changed_main_process_is_a_failure():
    watch = Watch(settle=10)
    assert watch.observe(look(), now=101) == "waiting"
    assert watch.observe(look(MainPID="900", ExecMainStartTimestampMonotonic="101500000"), now=113) == "failed"


@pytest.mark.parametrize("state,sub", [("inactive", "dead"), ("failed", "failed"), ("deactivating", "stop")])
def test_a_stopped_or_failed_unit_fails_at_once(state, sub):
    assert Watch(settle=10).observe(look(ActiveState=state, SubState=sub, MainPID="0"), now=500) == "failed"


def test_a_missing_unit_fails():
    watch = Watch(settle=10)
    assert watch.observe({"LoadState": "not-found", "ActiveState": "inactive"}, now=5) == "failed"
    assert "does not exist" in watch.reason


def test_a_unit_still_starting_is_waited_for():
    assert Watch(settle=10).observe(look(ActiveState="activating", SubState="start", MainPID="0"), now=5) == "waiting"


def test_after_a_reload_an_old_process_is_watched_from_the_signal_on():
    watch = Watch(settle=10, watch_from=5000.0)
    assert watch.observe(look(), now=5003.0) == "waiting"
    assert watch.observe(look(), now=5010.5) == "healthy"


def test_the_hint_follows_the_log_and_the_driver():
    assert "CAP_SYS_ADMIN" in hint_for(NO_CAPABILITY_LOG, "modern_ebpf")
    assert "dkms" in hint_for(NO_CAPABILITY_LOG, "kmod")
    assert "BTF" in hint_for(["libpman: unable to find BTF data in /sys/kernel/btf/vmlinux"], "modern_ebpf")
    assert "configuration or rules" in hint_for(
        ["Error reading config file (/etc/falco/falco.yaml): bad key"], "modern_ebpf")
    assert "journalctl -u UNIT" in hint_for(["something else"], "nodriver")


def test_the_failure_message_names_the_unit_the_reason_the_log_and_what_to_do():
    message = failure_message("falco-modern-bpf.service", "its main process exited", NO_CAPABILITY_LOG,
                              "modern_ebpf")
    assert message.startswith("Falco is not protecting this host: falco-modern-bpf.service: its main process exited.")
    assert "  An error occurred in an event source, forcing termination..." in message
    assert "What to do: The modern eBPF probe could not be loaded" in message
    assert "journal holds no lines" in failure_message("falco.service", "x", [], "kmod")
    unread = failure_message("falco.service", "x", None, "kmod")
    assert "journalctl is missing or could not read the journal" in unread and "journal holds no lines" not in unread
    assert "journalctl -u falco.service" in failure_message("falco.service", "x", [], "nodriver")


class Answer(http.server.BaseHTTPRequestHandler):
    status = 200
    # What /metrics serves; the test sets it.
    metrics = b""

    def do_GET(self):  # noqa: N802
        body = {"/healthz": b"ok", "/metrics": self.metrics}.get(self.path, b"")
        self.send_response(self.status if self.path in ("/healthz", "/metrics") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


def serve(cert_file=None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    if cert_file:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_file))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def self_signed(path, name):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=" + name,
                    "-keyout", str(path), "-out", str(path) + ".crt"], check=True, capture_output=True)
    path.write_text(path.read_text() + (path.parent / (path.name + ".crt")).read_text())
    return path


def test_healthz_over_http():
    server = serve()
    port = server.server_address[1]
    assert healthz("http://127.0.0.1:%d/healthz" % port, None) is None
    assert "answered 404" in healthz("http://127.0.0.1:%d/other" % port, None)
    server.shutdown()
    assert "did not answer" in healthz("http://127.0.0.1:%d/healthz" % port, None)


def test_healthz_over_https_accepts_exactly_our_certificate(tmp_path):
    ours = self_signed(tmp_path / "ours.pem", "agent-1")
    other = self_signed(tmp_path / "other.pem", "agent-1")
    server = serve(ours)
    url = "https://127.0.0.1:%d/healthz" % server.server_address[1]
    assert healthz(url, str(ours)) is None
    assert "certificate other than the one in" in healthz(url, str(other))
    assert "needs healthz_cert_file" in healthz(url, None)
    server.shutdown()


# The lines of the recorded Falco 0.44.1 scrape around the counter (tests read no file of ../shared here).
SCRAPE = """# HELP falcosecurity_scap_n_evts_total https://falco.org/docs/metrics/
# TYPE falcosecurity_scap_n_evts_total counter
falcosecurity_scap_n_evts_total 291
falcosecurity_scap_n_evts_drop_buffer_total 0
"""


def test_events_seen_reads_the_driver_event_counter():
    assert events_seen(SCRAPE) == 291
    assert events_seen(SCRAPE.replace(" 291", "{host=\"a\"} 7")) == 7
    # Falco leaves a zero counter out (include_empty_values: false); a similar name is another metric.
    assert events_seen("falcosecurity_scap_n_evts_drop_buffer_total 3\n") == 0
    assert events_seen("") == 0


def test_a_falco_up_whose_driver_delivered_nothing_is_not_healthy():
    """Loading the probe can take the verifier half a minute: /healthz answers, /metrics lacks the counter."""
    server = serve()
    url = "http://127.0.0.1:%d/metrics" % server.server_address[1]
    try:
        Answer.metrics = b"falcosecurity_falco_version_info{version=\"0.44.1\"} 1\n"
        assert "its driver has delivered no event yet" in driver_problem(url, None)
        Answer.metrics = SCRAPE.encode()
        assert driver_problem(url, None) is None
    finally:
        Answer.metrics = b""
        server.shutdown()
    assert "did not answer" in driver_problem(url, None)


def test_the_verifier_refusing_the_probe_gets_its_own_hint():
    log = ["BPF program is too large. Processed 1000001 insn",
           "[libs]: libbpf: prog 'recvmmsg_x': failed to load: -7",
           "An error occurred in an event source, forcing termination..."]
    hint = hint_for(log, "modern_ebpf")
    assert "verifier" in hint and "falco_driver: kmod" in hint and "CAP_SYS_ADMIN" in hint


def journal(*entries):
    """journalctl -o json lines: (epoch seconds, MESSAGE)."""
    return "\n".join(json.dumps({"MESSAGE": message, "__REALTIME_TIMESTAMP": str(int(logged * 1e6))})
                     for logged, message in entries)


def test_only_a_reload_line_logged_after_the_change_counts():
    line = "Sat Dec  5 22:50:48 2026: SIGHUP received, restarting..."
    assert reload_outcome(journal((99.5, line)), after=100.0) == (None, "")
    assert reload_outcome(journal((99.5, line), (100.2, "Loading rules from:"), (101.0, line)), after=100.0) == (
        "reloaded", line)


def test_falcos_refusal_of_its_changed_files_is_read_from_its_alert():
    alert = '{"output":"Falco internal: hot restart failure: LOAD_ERR_VALIDATE","priority":"Critical"}'
    assert reload_outcome(journal((101.0, alert)), after=100.0) == ("refused", alert)


def test_journal_lines_that_are_not_falcos_text_are_skipped():
    binary = json.dumps({"MESSAGE": [83, 73, 71], "__REALTIME_TIMESTAMP": "101000000"})
    assert reload_outcome("not json\n" + binary + "\n{}", after=100.0) == (None, "")


def test_the_newest_change_is_a_files_time_or_for_a_removed_file_its_directorys(tmp_path):
    kept, gone = tmp_path / "a.yaml", tmp_path / "gone.yaml"
    kept.write_text("x")
    os.utime(kept, (1000, 1000))
    os.utime(tmp_path, (500, 500))
    assert newest_change([str(kept)]) == 1000
    os.utime(tmp_path, (2000, 2000))
    assert newest_change([str(kept), str(gone)]) == 2000
    assert newest_change([str(tmp_path / "no" / "such.yaml")]) == 0
