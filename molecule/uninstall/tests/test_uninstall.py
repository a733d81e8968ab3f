"""playbooks/uninstall.yml after site.yml: refused without confirmation, check mode, the real run, a second run with
the purge switches that removes the data and changes nothing else, then site.yml again (reinstall). The tests run in
file order (pytest keeps it) and each builds on the previous one's state. Every playbook run costs minutes here (a
run walks every role's tasks, each a few container round trips), so each run is read by every test it can serve.

What runs: Debian's Prometheus, Alertmanager, node_exporter and rsyslog; node_exporter under nested podman from the
local test image; Falco is the TEST FIXTURE package from tests/fixtures/falco-package (a signed local repository).
"""

import sys
from pathlib import Path

import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import changes, failures, run_playbook_json  # noqa: E402

MON, AGENT = "uni-mon", "uni-agent"
CONFIRM = ["-e", "fleetwatch_uninstall_confirm=yes"]
PURGE = ["-e", "prometheus_uninstall_purge_data=true", "-e", "alertmanager_uninstall_purge_data=true",
         "-e", "event_collector_uninstall_purge_data=true"]
EVENTS_DIR = "/var/log/fleetwatch/falco-events"
DATA = ["/var/lib/prometheus/metrics2", "/var/lib/prometheus/alertmanager", EVENTS_DIR]
EVENTS_MARKER = EVENTS_DIR + "/uni-marker.jsonl"
NE_IMAGE = "localhost/fleetwatch-test/node-exporter:debian12"
GONE = {
    MON: ["/etc/prometheus/prometheus.yml", "/etc/prometheus/rules", "/etc/prometheus/targets",
          "/etc/systemd/system/prometheus.service.d", "/etc/alertmanager",
          "/etc/systemd/system/prometheus-alertmanager.service.d", "/etc/systemd/system/prometheus-node-exporter.service.d",
          "/etc/rsyslog.d/40-fleetwatch-falco-collect.conf", "/etc/rsyslog.d/10-fleetwatch-message-size.conf",
          "/etc/logrotate.d/fleetwatch-falco-events"],
    AGENT: ["/etc/apt/sources.list.d/falcosecurity.sources", "/usr/share/keyrings/falco-archive-keyring.asc",
            "/var/lib/fleetwatch", "/etc/falco/config.d", "/etc/falco/rules.d",
            "/etc/systemd/system/falco-modern-bpf.service.d", "/etc/systemd/system/falco-kmod.service.d",
            "/etc/systemd/system/falco-custom.service.d", "/etc/systemd/system/falcoctl-artifact-follow.service",
            "/etc/rsyslog.d/40-fleetwatch-falco-forward.conf", "/etc/rsyslog.d/10-fleetwatch-message-size.conf",
            "/etc/node_exporter"],
}
PORTS = {MON: [9090, 9093, 9100, 514], AGENT: [9100, 8765]}


def host(name):
    return testinfra.get_host("podman://" + name)


def dpkg_status(name, package):
    return host(name).run("dpkg-query --show --showformat='${db:Status-Status}' %s" % package).stdout.strip()


def listening(name, port):
    return host(name).run("ss -Htln 'sport = :%d'" % port).stdout.strip() != ""


def deployed():
    """What site.yml leaves running; each test checks it before or after."""
    return {
        "prometheus": host(MON).service("prometheus").is_running,
        "alertmanager": host(MON).service("prometheus-alertmanager").is_running,
        "node_exporter_package": host(MON).service("prometheus-node-exporter").is_running,
        "node_exporter_container": host(AGENT).run(
            "podman container inspect --format '{{.State.Running}}' node_exporter").stdout.strip() == "true",
        "falco": dpkg_status(AGENT, "falco") == "installed",
        "forwarding": host(AGENT).file("/etc/rsyslog.d/40-fleetwatch-falco-forward.conf").exists,
        "collecting": host(MON).file("/etc/rsyslog.d/40-fleetwatch-falco-collect.conf").exists,
    }


def test_the_site_is_deployed_and_holds_data():
    assert all(deployed().values()), deployed()
    # Data the uninstall must keep: Prometheus' database and Alertmanager's state exist once they ran; one event.
    host(MON).check_output("printf '%%s\\n' '{\"host\":\"uni-agent\",\"rule\":\"uni marker\"}' > %s" % EVENTS_MARKER)
    for path in DATA:
        assert host(MON).file(path).is_directory, path


def test_without_confirmation_nothing_changes():
    rc, report, output = run_playbook_json("uninstall.yml")
    assert rc != 0 and report is not None, output
    # The refusal comes from the confirmation play on the controller and says how to go ahead.
    refusal, = failures(report, "localhost")
    assert "-e fleetwatch_uninstall_confirm=yes" in refusal, refusal
    # The run stopped there: no task ran on a fleet host.
    assert MON not in report["stats"] and AGENT not in report["stats"], report["stats"]
    assert all(deployed().values()), deployed()


def test_check_mode_reports_the_changes_and_makes_none():
    rc, report, output = run_playbook_json("uninstall.yml", "--check", *CONFIRM)
    assert rc == 0 and report is not None, output
    assert report["stats"][MON]["changed"] > 0 and report["stats"][AGENT]["changed"] > 0, report["stats"]
    assert all(deployed().values()), deployed()


def test_uninstall_removes_services_packages_and_configuration():
    rc, report, output = run_playbook_json("uninstall.yml", *CONFIRM)
    assert rc == 0 and report is not None, output
    assert report["stats"][MON]["changed"] > 0 and report["stats"][AGENT]["changed"] > 0, report["stats"]
    assert not any(deployed().values()), deployed()
    for package in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
        assert dpkg_status(MON, package) in ("", "not-installed", "config-files"), package
    # Removed, not purged: the package's own configuration files are the package's business.
    assert dpkg_status(AGENT, "falco") == "config-files"
    for name, paths in GONE.items():
        present = [p for p in paths if host(name).file(p).exists]
        assert present == [], (name, present)
    for name, ports in PORTS.items():
        assert [p for p in ports if listening(name, p)] == [], name
    # The agent's podman no longer has the container; the image was loaded by hand (pull false) and stays.
    assert host(AGENT).run("podman container exists node_exporter").rc == 1
    assert host(AGENT).run("podman image exists %s" % NE_IMAGE).rc == 0
    assert host(AGENT).run("ls /var/spool/rsyslog/fleetwatch_falco_forward* /var/spool/rsyslog/fleetwatch-falco-imjournal.state"
                           " /var/lib/rsyslog/fleetwatch-falco-imjournal.state").stdout.strip() == ""
    # rsyslog is the distribution's syslog: it stays installed and running.
    for name in (MON, AGENT):
        assert host(name).service("rsyslog").is_running, name


def test_uninstall_keeps_the_data():
    for path in DATA:
        assert host(MON).file(path).is_directory, path
    assert host(MON).run("ls -A /var/lib/prometheus/metrics2").stdout.strip() != ""
    assert "uni marker" in host(MON).file(EVENTS_MARKER).content_string


def test_a_second_uninstall_with_the_purge_switches_removes_the_data_and_nothing_else():
    """The second run is also the purge: the agent reports no change (a second uninstall changes nothing there), and
    on the monitoring host what changed is the data going, nothing else. Read from the JSON callback's report: each
    change is a removal of one of DATA or of the directory DATA left empty, and rsyslog's restart by the event
    collector, which restarts it when it removed something of its own (here the collected events)."""
    rc, report, output = run_playbook_json("uninstall.yml", *CONFIRM, *PURGE)
    assert rc == 0 and report is not None, output
    assert report["stats"][AGENT]["changed"] == 0, changes(report, AGENT)
    assert [p for p in DATA if host(MON).file(p).exists] == []
    # Each change on the monitoring host, in order: the path of a removal, or (module, name, state).
    changed = [result["path"] if module == "ansible.builtin.file" and result.get("state") == "absent"
               else (module, result.get("name"), result.get("state")) for _task, module, result in changes(report, MON)]
    removed = [c for c in changed if isinstance(c, str)]
    assert len(set(removed)) == len(removed), changed  # each path once
    assert set(DATA) <= set(removed) <= set(DATA) | {p.rsplit("/", 1)[0] for p in DATA}, changed
    restart = ("ansible.builtin.systemd_service", "rsyslog", "started")
    assert [c for c in changed if not isinstance(c, str)] == [restart], changed
    # The restart came after the collected events went (the collector's part of the run).
    assert changed.index(restart) > changed.index(EVENTS_DIR), changed


def test_site_reinstalls_after_the_uninstall():
    rc, report, output = run_playbook_json("converge.yml")
    assert rc == 0 and report is not None, output
    assert report["stats"][MON]["changed"] > 0 and report["stats"][AGENT]["changed"] > 0, report["stats"]
    assert all(deployed().values()), deployed()
    assert host(AGENT).file("/etc/falco/config.d/fleetwatch-outputs.yaml").exists
