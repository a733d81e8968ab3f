"""The REAL Falco 0.44.1 from ../shared/packages (not a fixture): deployed by the role, detecting real events.

Both hosts' Falcos see every syscall of this machine. Each test marks its action with a string of its own (MARK) and
reads one host's own alerts: the JSON lines Falco wrote to that host's journal, whose hostname is that host.
fr-package has an exception (backup-agent reading /etc/shadow) and a disabled rule (symlinks over sensitive files)
that fr-repo does not have: the same action alerting on fr-repo shows the event really happened and would fire.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import run_playbook, wait_for  # noqa: E402

HOSTS = ["fr-package", "fr-repo"]
UNIT = "falco-modern-bpf.service"
PKI = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "pki"
LIVE_LOCAL_RULES = "/etc/falco/rules.d/fleetwatch-500-local.yaml"
# Falco accepts its shape (the role's preflight does too) but cannot compile the condition: an unknown field.
BAD_RULE = json.dumps({"falco_local_rules": [{
    "rule": "Fleetwatch broken rule", "desc": "refused by Falco", "condition": "proc.no_such_field = x",
    "output": "never", "priority": "WARNING"}]})
NO_PROBE_DROPIN = "/etc/systemd/system/%s.d/zz-test-no-bpf.conf" % UNIT


def host(name):
    return testinfra.get_host("podman://" + name)


def mark():
    return "fwmark-" + uuid.uuid4().hex[:10]


def alerts(name, marker):
    """The JSON alerts in NAME's journal whose line mentions marker."""
    out = host(name).check_output("journalctl -t falco -o cat --no-pager | grep -F -- %s || true", marker)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def wait_alert(name, marker, rule, timeout=60):
    """NAME's own alert for rule mentioning marker, within the deadline (or None)."""
    return wait_for(lambda: next((a for a in alerts(name, marker) if a["rule"] == rule), None), timeout=timeout)


def run(name, command):
    host(name).run(command)


def main_pid(name):
    return host(name).check_output("systemctl show -P MainPID %s", UNIT)


@pytest.mark.parametrize("name", HOSTS)
def test_the_real_falco_is_installed(name):
    h = host(name)
    assert h.package("falco").version == "0.44.1"
    out = h.run("falco --version")
    assert '"falco_version":"0.44.1"' in out.stdout or "Falco version: 0.44.1" in out.stdout + out.stderr


def test_the_package_host_installed_the_controller_file():
    assert host("fr-package").file("/var/lib/fleetwatch/falco/packages/falco_0.44.1_amd64.deb").exists


def test_the_repo_host_installed_from_the_signed_local_repository():
    h = host("fr-repo")
    assert "file:/srv/falco-repo/deb stable/main" in h.check_output("apt-cache policy falco")
    assert "Signed-By: /usr/share/keyrings/falco-archive-keyring.asc" in h.file(
        "/etc/apt/sources.list.d/falcosecurity.sources").content_string


@pytest.mark.parametrize("name", HOSTS)
def test_the_modern_ebpf_unit_runs_and_opened_the_probe(name):
    h = host(name)
    assert h.service(UNIT).is_running and h.service(UNIT).is_enabled
    assert h.check_output("systemctl show -P NRestarts %s", UNIT) == "0"
    log = h.check_output("journalctl -u %s -o cat --no-pager", UNIT)
    assert "Opening 'syscall' source with modern BPF probe." in log
    assert h.check_output("systemctl is-enabled falcoctl-artifact-follow.service || true") == "masked"


@pytest.mark.parametrize("name", HOSTS)
def test_the_live_configuration_passes_falco_dry_run(name):
    result = host(name).run("falco -c /etc/falco/falco.yaml --dry-run")
    assert result.rc == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", HOSTS)
def test_the_rules_files_the_role_wrote_pass_falco_validation(name):
    h = host(name)
    ours = sorted(h.check_output("ls /etc/falco/rules.d").split())
    assert "fleetwatch-500-local.yaml" in ours
    assert ("fleetwatch-600-exceptions.yaml" in ours) == (name == "fr-package")
    args = " ".join("-V /etc/falco/rules.d/" + f for f in ours)
    result = h.run("falco -V /etc/falco/falco_rules.yaml %s" % args)
    assert result.rc == 0, result.stdout + result.stderr


def test_healthz_and_metrics_over_http():
    h = host("fr-package")
    assert json.loads(h.check_output("curl -sf http://127.0.0.1:8765/healthz")) == {"status": "ok"}
    metrics = h.check_output("curl -sf http://127.0.0.1:8765/metrics")
    assert 'falcosecurity_falco_version_info{version="0.44.1"} 1' in metrics
    assert 'falcosecurity_evt_hostname_info{hostname="fr-package"} 1' in metrics


def address(name):
    return host(name).check_output("hostname -I").split()[0]


@pytest.fixture(scope="module")
def prometheus():
    """Debian's Prometheus on this machine's loopback, scraping fr-repo's Falco over HTTPS with the fleet CA (job
    falco-tls) and over plain HTTP (job falco-plain)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not on this machine (scripts/setup.sh installs Debian's package)")
    work = Path(tempfile.mkdtemp(prefix="falco-real-prom-"))
    target = "fr-repo:8765"
    config = {"global": {"scrape_interval": "2s", "scrape_timeout": "1s"}, "scrape_configs": [
        {"job_name": "falco-tls", "scheme": "https",
         "tls_config": {"ca_file": str(PKI / "ca.crt"), "server_name": "fr-repo"},
         "static_configs": [{"targets": ["%s:8765" % address("fr-repo")], "labels": {"host": "fr-repo"}}]},
        {"job_name": "falco-plain", "scheme": "http",
         "static_configs": [{"targets": ["%s:8765" % address("fr-repo")], "labels": {"host": target}}]}]}
    (work / "prometheus.yml").write_text(json.dumps(config))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--config.file", str(work / "prometheus.yml"), "--storage.tsdb.path",
                             str(work / "data"), "--web.listen-address", "127.0.0.1:%d" % port],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield "http://127.0.0.1:%d" % port
    proc.terminate()
    proc.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)


def targets(url):
    import urllib.request
    with urllib.request.urlopen(url + "/api/v1/targets", timeout=5) as reply:
        return {t["labels"]["job"]: t for t in json.load(reply)["data"]["activeTargets"]}


def prom_query(url, expr):
    import urllib.parse
    import urllib.request
    with urllib.request.urlopen(url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=5) as reply:
        return json.load(reply)["data"]["result"]


def test_prometheus_scrapes_the_metrics_over_tls_with_the_fleet_ca_and_plain_http_is_refused(prometheus):
    def scraped():
        try:
            found = targets(prometheus)
        except OSError:
            return None
        done = all(found.get(j, {}).get("health") in ("up", "down") for j in ("falco-tls", "falco-plain"))
        return found if done else None
    found = wait_for(scraped, timeout=60)
    assert found, "Prometheus did not scrape both jobs"
    assert found["falco-tls"]["health"] == "up", found["falco-tls"]
    assert found["falco-plain"]["health"] == "down", found["falco-plain"]
    version = wait_for(lambda: prom_query(prometheus, 'falcosecurity_falco_version_info{job="falco-tls"}'), timeout=30)
    assert version and version[0]["metric"]["version"] == "0.44.1"
    hostname = prom_query(prometheus, 'falcosecurity_evt_hostname_info{job="falco-tls"}')
    assert [r["metric"]["hostname"] for r in hostname] == ["fr-repo"]


def test_a_client_without_the_fleet_ca_is_refused():
    result = subprocess.run(["curl", "-s", "--max-time", "10", "--resolve", "fr-repo:8765:" + address("fr-repo"),
                             "https://fr-repo:8765/metrics"], capture_output=True, check=False)
    assert result.returncode == 60, result  # 60: peer certificate cannot be authenticated with known CA certificates


def test_an_event_gives_a_json_alert_with_the_host_name():
    marker = mark()
    run("fr-package", "cat /etc/shadow /tmp/%s > /dev/null 2>&1" % marker)
    alert = wait_alert("fr-package", marker, "Read sensitive file untrusted")
    assert alert, "no alert in fr-package's journal for %s" % marker
    assert alert["hostname"] == "fr-package" and alert["priority"] == "Warning" and alert["source"] == "syscall"
    assert alert["output_fields"]["fd.name"] == "/etc/shadow"
    assert marker in alert["output_fields"]["proc.cmdline"]
    metrics = host("fr-package").check_output("curl -sf http://127.0.0.1:8765/metrics")
    assert 'rule_name="Read sensitive file untrusted"' in metrics


def test_an_exception_suppresses_exactly_its_event_while_a_sibling_still_alerts():
    named, sibling = mark(), mark()
    run("fr-package", "ln -sf /usr/bin/cat /usr/local/bin/backup-agent")
    run("fr-package", "backup-agent /etc/shadow /tmp/%s > /dev/null 2>&1; cat /etc/shadow /tmp/%s > /dev/null 2>&1"
        % (named, sibling))
    rule = "Read sensitive file untrusted"
    # The sibling (cat) alerts on the host with the exception; the named event alerts where no exception exists.
    assert wait_alert("fr-package", sibling, rule), "the sibling event did not alert on fr-package"
    assert wait_alert("fr-repo", named, rule), "backup-agent reading /etc/shadow did not alert on fr-repo"
    time.sleep(3)
    assert [a for a in alerts("fr-package", named) if a["rule"] == rule] == []


def test_a_disabled_rule_stays_silent_while_its_neighbour_fires():
    marker = mark()
    run("fr-package", "ln -s /etc/shadow /tmp/%s-link; ln /etc/shadow /root/%s-hard" % (marker, marker))
    assert wait_alert("fr-repo", marker, "Create Symlink Over Sensitive Files"), "the symlink did not alert on fr-repo"
    assert wait_alert("fr-package", marker, "Create Hardlink Over Sensitive Files"), "the hardlink did not alert"
    time.sleep(3)
    assert [a["rule"] for a in alerts("fr-package", marker)] == ["Create Hardlink Over Sensitive Files"]
    run("fr-package", "rm -f /tmp/%s-link /root/%s-hard" % (marker, marker))


def test_a_local_rule_fires():
    marker = mark()
    # A link to a binary of the image: an executable new to the container would match a stable rule first.
    run("fr-package", "ln -sf /bin/true /usr/local/bin/lab-probe && lab-probe %s" % marker)
    alert = wait_alert("fr-package", marker, "Fleetwatch lab probe")
    assert alert, "the local rule did not fire on fr-package"
    assert alert["priority"] == "Notice" and alert["hostname"] == "fr-package"
    assert alert["tags"] == ["fleetwatch"]


def test_check_mode_on_converged_hosts_reports_no_change():
    rc, output, recap = run_playbook("converge.yml", "--check", "--diff")
    assert rc == 0, output
    assert set(recap) == set(HOSTS)
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), output


def test_a_rule_falco_refuses_leaves_falco_running_on_its_last_good_rules():
    h = host("fr-package")
    before, pid = h.file(LIVE_LOCAL_RULES).sha256sum, main_pid("fr-package")
    rc, output, recap = run_playbook("converge.yml", "--limit", "fr-package", "-e", BAD_RULE)
    assert rc != 0 and recap["fr-package"]["failed"] == 1, output
    assert "rejected the staged rules" in output and "no_such_field" in output, output
    assert h.file(LIVE_LOCAL_RULES).sha256sum == before
    assert main_pid("fr-package") == pid and h.service(UNIT).is_running
    marker = mark()
    run("fr-package", "lab-probe %s" % marker)
    assert wait_alert("fr-package", marker, "Fleetwatch lab probe"), "Falco stopped detecting with its last good rules"


def test_a_falco_that_cannot_load_its_probe_fails_every_run_until_fixed():
    h = host("fr-package")
    h.run("mkdir -p /etc/systemd/system/%s.d" % UNIT)
    h.run("printf '[Service]\\nCapabilityBoundingSet=~CAP_SYS_ADMIN CAP_BPF CAP_PERFMON\\n' > %s" % NO_PROBE_DROPIN)
    try:
        h.run("systemctl daemon-reload && systemctl restart %s" % UNIT)
        for args in ([], ["--check"]):
            rc, output, recap = run_playbook("converge.yml", "--limit", "fr-package", *args)
            assert rc != 0 and recap["fr-package"]["failed"] == 1, output
            assert "Falco is not protecting this host: %s" % UNIT in output, output
            assert "An error occurred in an event source, forcing termination" in output, output
            assert "CAP_SYS_ADMIN" in output, output
    finally:
        h.run("rm -f %s && systemctl daemon-reload" % NO_PROBE_DROPIN)
    rc, output, recap = run_playbook("converge.yml", "--limit", "fr-package")
    assert rc == 0, output
    assert h.service(UNIT).is_running


def test_a_falco_binary_that_prints_no_version_is_reported_with_what_it_printed():
    h = host("fr-package")
    h.run("mv /usr/bin/falco /usr/bin/falco.real && printf '#!/bin/sh\\necho \"falco: error while loading shared "
          "libraries: libtest.so.1\" >&2\\nexit 127\\n' > /usr/bin/falco && chmod 755 /usr/bin/falco")
    try:
        rc, output, recap = run_playbook("converge.yml", "--limit", "fr-package")
    finally:
        h.run("mv -f /usr/bin/falco.real /usr/bin/falco")
    assert rc != 0 and recap["fr-package"]["failed"] == 1, output
    assert "printed no Falco version" in output and "libtest.so.1" in output, output
    assert "Template" not in output and "NoneType" not in output, output
