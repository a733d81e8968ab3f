"""The REAL Falco 0.44.1 from ../shared/packages (not a fixture): deployed by the role, detecting real events.

Both hosts' Falcos see every syscall of this machine. Each test marks its action with a string of its own (MARK) and
reads one host's own alerts: the JSON lines Falco wrote to that host's journal, whose hostname is that host.
fr-package has an exception (backup-agent reading /etc/shadow) and a disabled rule (symlinks over sensitive files)
that fr-repo does not have: the same action alerting on fr-repo shows the event really happened and would fire.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "fixtures"))
import promlab  # noqa: E402  (a real Prometheus on loopback; here it scrapes the real Falcos)
from labtest import (  # noqa: E402
    assert_reached_over_ssh, changes, failures, get_json, http_get, ready, results, run_playbook_json, wait_for)

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
    assert get_json(h, "http://127.0.0.1:8765/healthz") == {"status": "ok"}
    metrics = http_get(h, "http://127.0.0.1:8765/metrics").body
    assert 'falcosecurity_falco_version_info{version="0.44.1"} 1' in metrics
    assert 'falcosecurity_evt_hostname_info{hostname="fr-package"} 1' in metrics


def address(name):
    return host(name).check_output("hostname -I").split()[0]


# The target labels the prometheus role gives each host (host, cloud), as scraped by the role's jobs.
LABELS = {"fr-package": {"host": "fr-package", "cloud": "lab-a"}, "fr-repo": {"host": "fr-repo", "cloud": "lab-b"}}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """Debian's Prometheus on this machine's loopback, scraping both real Falcos every second: fr-package over HTTP,
    fr-repo over HTTPS with the fleet CA (job falco, the role's labels), and fr-repo over plain HTTP (falco-plain)."""
    reason = promlab.available()
    if reason:
        pytest.skip(reason)
    tls = {"ca_file": str(PKI / "ca.crt"), "server_name": "fr-repo"}
    jobs = [
        {"job_name": "falco", "static_configs": [promlab.target("%s:8765" % address("fr-package"), **LABELS["fr-package"])]},
        {"job_name": "falco-tls", "scheme": "https", "tls_config": tls,
         "static_configs": [promlab.target("%s:8765" % address("fr-repo"), **LABELS["fr-repo"])]},
        {"job_name": "falco-plain", "static_configs": [promlab.target("%s:8765" % address("fr-repo"), host="fr-repo")]},
    ]
    with promlab.Prometheus(tmp_path_factory.mktemp("prom")) as prom:
        prom.start(jobs)
        yield prom


def scraped(prom):
    """Every job's target after its first scrape, by job (None until all three were scraped)."""
    found = {t["labels"]["job"]: t for t in prom.api("/api/v1/targets")["activeTargets"]}
    return found if len(found) == 3 and all(t["health"] in ("up", "down") for t in found.values()) else None


def test_prometheus_scrapes_the_metrics_over_tls_with_the_fleet_ca_and_plain_http_is_refused(prometheus):
    found = wait_for(lambda: scraped(prometheus), timeout=60)
    assert found, "Prometheus did not scrape every job: %s" % prometheus.api("/api/v1/targets")
    assert found["falco-tls"]["health"] == "up", found["falco-tls"]
    assert found["falco-plain"]["health"] == "down", found["falco-plain"]
    version = prometheus.query('falcosecurity_falco_version_info{job="falco-tls"}')
    assert [r["metric"]["version"] for r in version] == ["0.44.1"]
    hostname = prometheus.query('falcosecurity_evt_hostname_info{job="falco-tls"}')
    assert [r["metric"]["hostname"] for r in hostname] == ["fr-repo"]


DASHBOARD = json.loads((Path(__file__).resolve().parents[3] / "roles" / "grafana" / "files" / "dashboards"
                        / "falco-fleet.json").read_text())
# Panels that read falcosidekick's metrics: no falcosidekick runs in this scenario (its image cannot be had here).
SIDEKICK = "falcosecurity_falcosidekick_"
REAL_CASES = [(panel["title"], target) for panel, target in promlab.dashboard_queries(DASHBOARD)
              if SIDEKICK not in target["expr"]]


@pytest.fixture(scope="module")
def series_with_events(prometheus):
    """Both Falcos scraped a while, then an event on fr-package (seen by both Falcos), then scraped again: every
    counter the dashboard reads has risen while Prometheus watched."""
    assert wait_for(lambda: scraped(prometheus), timeout=60)
    # falco-plain is down by design: count the scrapes of the two jobs that serve the dashboard.
    assert wait_for(lambda: counted(prometheus, 'min(count_over_time(up{job=~"falco|falco-tls"}[5m]))') >= 3)
    # A rule's series appears at its first match, and increase() needs an earlier sample: one event makes the series,
    # a second one, once Prometheus has scraped the first, makes it rise.
    series = ('falcosecurity_falco_rules_matches_total{host="fr-package",'
              'rule_name="Read sensitive file untrusted"}')
    for event in ("first", "second"):
        marker = mark()
        run("fr-package", "cat /etc/shadow /tmp/%s > /dev/null 2>&1" % marker)
        assert wait_alert("fr-package", marker, "Read sensitive file untrusted"), "no alert for the %s event" % event
        if event == "first":
            assert wait_for(lambda: counted(prometheus, "count(%s)" % series) > 0, timeout=60), "no series in Prometheus"
            time.sleep(3)
    assert wait_for(lambda: counted(prometheus, "sum(increase(%s[1m]))" % series) > 0, timeout=60), \
        "the match did not reach Prometheus"
    return prometheus


def counted(prom, expr):
    """The value of a one-number query, 0 when it returns nothing."""
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


@pytest.mark.parametrize("panel_title,target", REAL_CASES, ids=["%s/%s" % (c[0], c[1]["refId"]) for c in REAL_CASES])
def test_every_falco_panel_returns_data_for_a_host_with_events(series_with_events, panel_title, target):
    prom = series_with_events
    for selection in ({"host": ".*", "cloud": ".*", "rule": ".*"}, {"host": "fr-package", "cloud": ".*", "rule": ".*"}):
        expr = promlab.interpolate(target["expr"], selection)
        result = prom.query(expr) if target.get("instant") else prom.query_range(expr, seconds=60, step=2)
        assert result, "%s returns nothing on real Falco series with %s: %s" % (panel_title, selection, expr)
        hosts = {r["metric"]["host"] for r in result if "host" in r["metric"]}
        if selection["host"] == "fr-package":
            assert hosts <= {"fr-package"}, (panel_title, expr, hosts)


def test_the_dashboard_variables_list_the_real_hosts_clouds_and_rules(series_with_events):
    # The rule series_with_events raised on fr-package (a read of /etc/shadow).
    expected = {name: {labels[name] for labels in LABELS.values()} for name in ("host", "cloud")}
    expected["rule"] = {"Read sensitive file untrusted"}
    # the hostnames the real Falcos report (falcosidekick labels Loki streams with them)
    expected["hostname"] = {"fr-package", "fr-repo"}
    for variable in DASHBOARD["templating"]["list"]:
        if variable.get("type") != "query":
            continue
        expr = promlab.interpolate(promlab.label_values_query(variable["definition"]), {"cloud": ".*", "host": ".*"})
        label = variable["definition"].rsplit(",", 1)[-1].strip(" )")
        found = {r["metric"][label] for r in series_with_events.query(expr)}
        assert found >= expected[variable["name"]], (variable["name"], found)


# Files on fr-package edited (a comment appended) for the annotations, then put back byte for byte: a local rules file
# the role wrote and Falco's own falco.yaml. The packaged falco.yaml has watch_config_files on: Falco reloads by itself.
EDITED = {"rules": LIVE_LOCAL_RULES, "config": "/etc/falco/falco.yaml"}
ANNOTATIONS = {a["name"]: a for a in promlab.dashboard_annotations(DASHBOARD)}
ANNOTATION_KIND = {"Rules file changed": "rules", "Configuration file changed": "config"}


def hashes(prom, kind, name):
    """{file_name: sha256} Prometheus has now for NAME's loaded rules or configuration files."""
    result = prom.query('falcosecurity_falco_sha256_%s_files_info{host="%s"}' % (kind, name))
    return {r["metric"]["file_name"]: r["metric"]["sha256"] for r in result}


def reloaded(check):
    """Wait for Falco's own reload after its files changed (watch_config_files). No SIGHUP on top of it: one that
    arrives while Falco restarts itself kills it."""
    return wait_for(check, timeout=90)


def test_the_annotations_mark_a_real_rules_and_configuration_change(series_with_events):
    """A real edit of a rules file and of falco.yaml on fr-package: Falco reloads, exports each file's new sha256 as a
    new series, and each annotation query returns exactly that host, file and hash; fr-repo, unchanged, has none."""
    prom, h = series_with_events, host("fr-package")
    assert set(ANNOTATION_KIND) == set(ANNOTATIONS)
    before = {kind: hashes(prom, kind, "fr-package") for kind in EDITED}
    assert all(before.values()), before
    backup = "/root/fleetwatch-annotation-test"
    h.check_output("mkdir -p %s && cp -p %s %s %s/", backup, EDITED["rules"], EDITED["config"], backup)
    try:
        marker = mark()
        for path in EDITED.values():
            h.check_output("printf '%%s\\n' %s >> %s", "# falco_real annotation test " + marker, path)
        sums = {kind: h.check_output("sha256sum %s", path).split()[0] for kind, path in EDITED.items()}

        def new_hashes():
            now = {kind: hashes(prom, kind, "fr-package") for kind in EDITED}
            return now if all(sums[kind] in now[kind].values() for kind in EDITED) else None
        after = reloaded(new_hashes)
        assert after, "Prometheus never saw the new hashes %s: %s" % (sums, {k: hashes(prom, k, "fr-package") for k in EDITED})
        for kind, path in EDITED.items():
            [changed] = [f for f, sha in after[kind].items() if sha == sums[kind]]
            assert path.endswith(changed) and before[kind][changed] != sums[kind], (kind, changed, before[kind])
        time.sleep(3)
        for name, annotation in ANNOTATIONS.items():
            kind = ANNOTATION_KIND[name]
            [changed] = [f for f, sha in after[kind].items() if sha == sums[kind]]
            everything = {"host": ".*", "cloud": ".*"}
            result = prom.query_range(promlab.interpolate(annotation["expr"], everything), seconds=120, step=2)
            found = {(r["metric"]["host"], r["metric"]["file_name"], r["metric"]["sha256"]) for r in result}
            assert found == {("fr-package", changed, sums[kind])}, (name, found)
            quiet = promlab.interpolate(annotation["expr"], dict(everything, host="fr-repo"))
            assert prom.query_range(quiet, seconds=120, step=2) == [], (name, "fr-repo changed nothing")
    finally:
        h.run("cp -p %s/%s %s && cp -p %s/falco.yaml %s && rm -rf %s", backup, LIVE_LOCAL_RULES.rsplit("/", 1)[1],
              EDITED["rules"], backup, EDITED["config"], backup)
        # the later tests need Falco back on its converged files, reloaded and healthy
        assert reloaded(lambda: all(hashes(prom, kind, "fr-package") == before[kind] for kind in EDITED)), \
            "Falco did not reload the restored files"
        assert wait_for(lambda: ready(h, "http://127.0.0.1:8765/healthz"), timeout=60)


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
    metrics = http_get(host("fr-package"), "http://127.0.0.1:8765/metrics").body
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
    rc, report, output = run_playbook_json("converge.yml", "--check", "--diff")
    assert rc == 0 and report is not None, output
    assert set(report["stats"]) == set(HOSTS)
    assert all(r["changed"] == 0 and r["failures"] == 0 for r in report["stats"].values()), \
        [(name, changes(report, name)) for name in HOSTS]


def test_a_rule_falco_refuses_leaves_falco_running_on_its_last_good_rules():
    h = host("fr-package")
    before, pid = h.file(LIVE_LOCAL_RULES).sha256sum, main_pid("fr-package")
    rc, report, output = run_playbook_json("converge.yml", "--limit", "fr-package", "-e", BAD_RULE)
    assert rc != 0 and report is not None and report["stats"]["fr-package"]["failures"] == 1, output
    # The refusal quotes what Falco said about the staged rule.
    refusal, = failures(report, "fr-package")
    assert "rejected the staged rules" in refusal and "no_such_field" in refusal, refusal
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
            rc, report, output = run_playbook_json("converge.yml", "--limit", "fr-package", *args)
            assert rc != 0 and report is not None and report["stats"]["fr-package"]["failures"] == 1, output
            # The health check's refusal: the unit, Falco's own last log lines, and a hint naming the capability.
            refusal, = failures(report, "fr-package")
            assert "Falco is not protecting this host: %s" % UNIT in refusal, refusal
            assert "An error occurred in an event source, forcing termination" in refusal, refusal
            assert "CAP_SYS_ADMIN" in refusal, refusal
    finally:
        h.run("rm -f %s && systemctl daemon-reload" % NO_PROBE_DROPIN)
    rc, report, output = run_playbook_json("converge.yml", "--limit", "fr-package")
    assert rc == 0 and report is not None, output
    assert h.service(UNIT).is_running


def test_a_falco_binary_that_prints_no_version_is_reported_with_what_it_printed():
    h = host("fr-package")
    h.run("mv /usr/bin/falco /usr/bin/falco.real && printf '#!/bin/sh\\necho \"falco: error while loading shared "
          "libraries: libtest.so.1\" >&2\\nexit 127\\n' > /usr/bin/falco && chmod 755 /usr/bin/falco")
    try:
        rc, report, output = run_playbook_json("converge.yml", "--limit", "fr-package")
    finally:
        h.run("mv -f /usr/bin/falco.real /usr/bin/falco")
    assert rc != 0 and report is not None and report["stats"]["fr-package"]["failures"] == 1, output
    refusal, = failures(report, "fr-package")
    assert "printed no Falco version" in refusal and "libtest.so.1" in refusal, refusal
    # What the binary printed reached the message as text, not a templating error about the missing version: nothing
    # that failed on the host (its whole result, not only its message) names a template or None.
    failed = json.dumps([r for r in results(report, "fr-package") if r.get("failed")])
    assert "Template" not in failed and "NoneType" not in failed, failed


def rule_counts(name, since):
    """Alerts per rule in NAME's own journal since a journalctl timestamp."""
    out = host(name).check_output("journalctl -t falco -o cat --no-pager --since %s", "@%d" % since)
    counts = {}
    for line in out.splitlines():
        if line.startswith("{"):
            alert = json.loads(line)
            if alert.get("hostname") == name:
                key = (alert["rule"], alert["output_fields"].get("proc.name"))
                counts[key] = counts.get(key, 0) + 1
    return counts


def noisy(name, program, times):
    """A benign, repeated action: the same program reading /etc/shadow with the same command line."""
    run(name, "for i in $(seq %d); do %s /etc/shadow > /dev/null; done" % (times, program))


def test_the_tuning_loop_triage_proposes_exceptions_that_silence_only_the_noise(tmp_path):
    """fr-repo (no exceptions): a nightly job reads /etc/shadow 12 times; triage.yml proposes an exception for it;
    the falco role applies the proposal; the job's alerts are gone while another reader still alerts."""
    name, rule = "fr-repo", "Read sensitive file untrusted"
    program = "nr-" + uuid.uuid4().hex[:8]
    run(name, "ln -sf /usr/bin/cat /usr/local/bin/%s" % program)
    start = int(host(name).check_output("date +%s"))
    noisy(name, program, 12)

    def twelve_alerts():
        counts = rule_counts(name, start)
        return counts if counts.get((rule, program), 0) >= 12 else None

    before = wait_for(twelve_alerts)
    assert before, "the noisy job did not raise 12 alerts on %s: %s" % (name, rule_counts(name, start))

    report = tmp_path / "triage"
    rc, ran, output = run_playbook_json("triage.yml", "-e", json.dumps({
        "fleetwatch_triage_hosts": name, "fleetwatch_triage_report_dir": str(report),
        "fleetwatch_triage_suggest_min_span": 0}))
    assert rc == 0 and ran is not None, output
    proposed = yaml.safe_load((report / "suggested-exceptions.yml").read_text())["falco_rule_exceptions"]
    ours = [e for e in proposed if e["rule"] == rule and program in e["values"][0]]
    assert len(ours) == 1, proposed
    assert dict(zip(ours[0]["fields"], ours[0]["values"][0]))["proc.name"] == program

    try:
        rc, ran, output = run_playbook_json("converge.yml", "--limit", name, "-e",
                                            json.dumps({"falco_rule_exceptions": proposed}))
        assert rc == 0 and ran is not None and ran["stats"][name]["changed"] > 0, output
        applied = int(host(name).check_output("date +%s"))
        noisy(name, program, 12)
        sentinel = mark()
        run(name, "cat /etc/shadow /tmp/%s > /dev/null 2>&1" % sentinel)
        assert wait_alert(name, sentinel, rule), "another reader of /etc/shadow no longer alerts on %s" % name
        time.sleep(3)
        after = rule_counts(name, applied)
        assert after.get((rule, program), 0) == 0, after
        assert after.get((rule, "cat"), 0) >= 1, after
        print("tuning loop on %s: %s alerts of '%s' by %s before the exception, %d after; other readers still "
              "alert (%d)" % (name, before[(rule, program)], rule, program, after.get((rule, program), 0),
                              after.get((rule, "cat"), 0)))
    finally:
        rc, ran, output = run_playbook_json("converge.yml", "--limit", name)
        assert rc == 0 and ran is not None, output


# The scenario's own local rules (molecule.yml), which the test below extends.
SCENARIO_LOCAL_RULES = yaml.safe_load((Path(__file__).resolve().parents[1] / "molecule.yml").read_text())[
    "provisioner"]["inventory"]["group_vars"]["falco"]["falco_local_rules"]
RELOAD_LINE = "SIGHUP received, restarting"


def test_rules_changes_in_a_row_each_reach_falco_once_by_its_own_reload_and_never_kill_it():
    """Three rules changes applied in a row, then the converged rules again: every run passes, Falco picked up each
    change with exactly one reload of its own (the role sends no SIGHUP: one during that reload killed Falco), the
    same main process ran throughout and systemd restarted nothing; the last change is live."""
    name = "fr-package"
    h = host(name)
    pid, restarts = main_pid(name), h.check_output("systemctl show -P NRestarts %s", UNIT)
    since = int(h.check_output("date +%s"))
    changes_applied = 0
    try:
        for n in range(3):
            marker = mark()
            rules = SCENARIO_LOCAL_RULES + [{"list": "fleetwatch_reload_test", "items": [marker]}]
            rc, ran, output = run_playbook_json("converge.yml", "--limit", name, "-e",
                                                json.dumps({"falco_local_rules": rules}))
            assert rc == 0 and ran is not None and ran["stats"][name]["changed"] > 0, output
            changes_applied += 1
            [health] = results(ran, name, "fleetwatch.falco_stack.falco_health")
            assert health["reload"] == "reloaded" and not health.get("changed"), health
            assert marker in h.file(LIVE_LOCAL_RULES).content_string
    finally:
        rc, ran, output = run_playbook_json("converge.yml", "--limit", name)
        assert rc == 0 and ran is not None, output
        changes_applied += 1
    log = h.check_output("journalctl -u %s -o cat --no-pager --since %s", UNIT, "@%d" % since)
    assert log.count(RELOAD_LINE) == changes_applied, log
    assert (main_pid(name), h.check_output("systemctl show -P NRestarts %s", UNIT)) == (pid, restarts)
    marker = mark()
    run(name, "lab-probe %s" % marker)
    assert wait_alert(name, marker, "Fleetwatch lab probe"), "Falco stopped detecting after the reloads"


@pytest.mark.parametrize("name", HOSTS)
def test_the_playbooks_reach_the_hosts_over_ssh(name):
    assert_reached_over_ssh(name, host(name))
