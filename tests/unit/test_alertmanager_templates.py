"""Role alertmanager's notification templates: a real Alertmanager delivers falcosidekick's alerts to people.

Debian's prometheus-alertmanager runs on 127.0.0.1 in a temporary directory with the configuration and the
template file the role renders (receivers: a webhook and a Slack integration, both pointed at a loopback HTTP
server of this test). The alerts posted to it are shaped exactly like falcosidekick 2.34.1's (FIXTURE:
tests/fixtures/alertmanager/fixture_falcosidekick_alerts.py, built from the recorded real Falco 0.44.1 events in
../shared/upstream/recorded/) plus one like the Prometheus rule FalcoCriticalEvent's. The email and Slack texts are
also rendered with `amtool template render` from the same data. No mail is sent (no SMTP server here).
"""

import html
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from localplay import render_role_vars
from rendered_alert_rules import alert_rules

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))
from alertmanager.fixture_falcosidekick_alerts import falcosidekick_alert  # noqa: E402

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
AMTOOL = "/usr/bin/amtool"
RECORDED_EVENTS = REPO.parent / "shared" / "upstream" / "recorded" / "falco-0.44.1_tutorial-events.jsonl"
TEMPLATE = REPO / "roles" / "alertmanager" / "templates" / "fleetwatch.tmpl.j2"
# What a FalcoCriticalEvent alert of the Prometheus rules carries (labels of its "by" clause, numeric priority).
# Its runbook and dashboard links are what the rule gives with prometheus_alert_runbook_url and
# prometheus_alert_dashboard_url set as in tests/promtool (the Grafana parameter carries two values, so "&" is in it).
RUNBOOK_URL = "https://runbooks.test/runbooks.md#falcocriticalevent"
DASHBOARD_URL = "https://grafana.test/d/fleetwatch-falco-fleet?var-host=fleet-a&var-cloud=aws"
PROMETHEUS_RULE_ALERT = {"labels": {"alertname": "FalcoCriticalEvent", "severity": "critical", "host": "fleet-a",
                                    "cloud": "aws", "rule_name": "Launch Privileged Container", "priority": "2"},
                         "annotations": {"summary": "Falco rule 'Launch Privileged Container' (priority 2) matched on fleet-a",
                                         "description": "Falco on fleet-a reported an event at critical priority.",
                                         "runbook_url": RUNBOOK_URL, "dashboard_url": DASHBOARD_URL}}
# falcosidekick's alerts carry no links (tests/fixtures/alertmanager: description is the event's output line).
FALCOSIDEKICK_ALERT = {"labels": {"alertname": "FalcoEvent", "rule": "Terminal shell in container",
                                  "priority": "Notice", "hostname": "fleet-b", "source": "falco"},
                       "annotations": {"description": "A shell was spawned in a container (user=root)"}}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Collector:
    """Loopback HTTP server that records every POST body by path (stands in for a webhook and Slack's API)."""

    def __init__(self):
        self.posts = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


def fixture_alerts():
    if not RECORDED_EVENTS.exists():
        pytest.skip("reference data absent: %s (recorded Falco 0.44.1 events)" % RECORDED_EVENTS)
    events = [json.loads(line) for line in RECORDED_EVENTS.read_text().splitlines() if line.strip()]
    return events, [falcosidekick_alert(e, {"alertname": "FalcoEvent"}) for e in events]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    if not shutil.which("ansible-playbook"):
        pytest.skip("ansible-playbook not on PATH (activate the venv)")
    for binary in (ALERTMANAGER, AMTOOL):
        if not Path(binary).exists():
            pytest.skip("%s not installed (Debian package prometheus-alertmanager)" % binary)
    workdir = tmp_path_factory.mktemp("alertmanager")
    collector = Collector()
    receivers = [{"name": "people",
                  "webhook_configs": [{"url": collector.url + "/webhook", "send_resolved": False}],
                  "slack_configs": [{"api_url": collector.url + "/slack", "channel": "#falco", "send_resolved": False}],
                  "email_configs": [{"to": "secops@example.com", "from": "am@example.com",
                                     "smarthost": "127.0.0.1:1", "require_tls": False}]}]
    values = render_role_vars(workdir, "alertmanager", {
        "template": "lookup('ansible.builtin.template', '%s')" % TEMPLATE}, {
        "alertmanager_config_dir": str(workdir / "etc"), "alertmanager_receivers": receivers,
        "alertmanager_default_receiver": "people", "alertmanager_group_wait": "1s",
        "alertmanager_group_interval": "1s"}, templates=["alertmanager.yml.j2"])
    (workdir / "etc" / "templates").mkdir(parents=True)
    (workdir / "etc" / "templates" / "fleetwatch.tmpl").write_text(values["template"])
    config_file = workdir / "etc" / "alertmanager.yml"
    # The file as the role writes it (templates/alertmanager.yml.j2).
    config_file.write_text(values["alertmanager.yml.j2"])
    values["config"] = yaml.safe_load(values["alertmanager.yml.j2"])
    yield workdir, config_file, values, collector
    collector.close()


def test_rendered_configuration_loads_the_templates_and_fills_receivers(rendered):
    config_file, values = rendered[1], rendered[2]
    config = values["config"]
    assert config["templates"] == [str(config_file.parent / "templates" / "*.tmpl")]
    receiver = config["receivers"][0]
    assert receiver["slack_configs"][0]["text"] == '{{ template "fleetwatch.slack.text" . }}'
    assert receiver["slack_configs"][0]["title"] == '{{ template "fleetwatch.slack.title" . }}'
    assert receiver["slack_configs"][0]["channel"] == "#falco"
    assert receiver["email_configs"][0]["headers"] == {"Subject": '{{ template "fleetwatch.email.subject" . }}'}
    assert receiver["email_configs"][0]["text"] == '{{ template "fleetwatch.email.text" . }}'
    assert "webhook_configs" in receiver and "text" not in receiver["webhook_configs"][0]
    check = subprocess.run([AMTOOL, "check-config", str(config_file)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert " - 1 templates" in check.stdout and check.stdout.count("SUCCESS") == 2, check.stdout
    # The check does parse the templates: a broken one fails it (so the role's validate catches it too).
    broken = config_file.parent / "templates" / "zz-broken.tmpl"
    broken.write_text('{{ define "x" }}{{ .Status {{ end }}')
    try:
        check = subprocess.run([AMTOOL, "check-config", str(config_file)], capture_output=True, text=True, check=False)
        assert check.returncode != 0 and "zz-broken.tmpl" in check.stdout + check.stderr
    finally:
        broken.unlink()


def rendered_config(tmp_path, **extra_vars):
    """alertmanager.yml as the role renders it (templates/alertmanager.yml.j2), read as YAML."""
    rendered = render_role_vars(tmp_path, "alertmanager", {}, extra_vars, templates=["alertmanager.yml.j2"])
    return yaml.safe_load(rendered["alertmanager.yml.j2"])


def test_a_receivers_own_texts_are_kept(tmp_path):
    receivers = [{"name": "chat", "slack_configs": [{"api_url": "https://slack.example/x", "text": "custom"}],
                  "email_configs": [{"to": "a@example.com", "headers": {"Reply-To": "b@example.com"}}]}]
    config = rendered_config(tmp_path, alertmanager_receivers=receivers)
    slack = config["receivers"][0]["slack_configs"][0]
    assert slack["text"] == "custom" and slack["title"] == '{{ template "fleetwatch.slack.title" . }}'
    email = config["receivers"][0]["email_configs"][0]
    assert email["headers"] == {"Reply-To": "b@example.com", "Subject": '{{ template "fleetwatch.email.subject" . }}'}
    off = rendered_config(tmp_path, alertmanager_receivers=receivers, alertmanager_notification_templates_enabled=False)
    assert off["receivers"][:1] == receivers and "templates" not in off


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.3)
    return None


def expected_fields(event):
    return ["Host: %s" % event["hostname"], "Rule: %s" % event["rule"], "Priority: %s" % event["priority"],
            "Output: %s" % event["output"]]


def test_alertmanager_delivers_host_rule_priority_and_output(rendered):
    workdir, config_file, collector = rendered[0], rendered[1], rendered[3]
    events, alerts = fixture_alerts()
    port = free_port()
    log = workdir / "alertmanager.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([ALERTMANAGER, "--config.file=%s" % config_file, "--storage.path=%s" % (workdir / "data"),
                                 "--web.listen-address=127.0.0.1:%d" % port, "--cluster.listen-address=",
                                 "--log.level=warn"], stdout=out, stderr=subprocess.STDOUT)
    try:
        url = "http://127.0.0.1:%d" % port
        assert wait_for(lambda: _ready(url), 30), log.read_text()
        request = urllib.request.Request(url + "/api/v2/alerts", data=json.dumps(alerts + [PROMETHEUS_RULE_ALERT]).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

        def delivered():
            """Alerts the webhook got, by Falco rule; None until every posted alert arrived."""
            seen = {}
            for path, body in collector.posts:
                if path == "/webhook":
                    seen.update({a["labels"].get("rule") or a["labels"].get("rule_name"): a for a in body["alerts"]})
            return seen if len(seen) == len(events) + 1 else None

        webhook = wait_for(delivered)
        assert webhook, "webhook got %s\n%s" % (collector.posts, log.read_text())
        for event in events:
            alert = webhook[event["rule"]]
            assert alert["labels"]["hostname"] == event["hostname"]
            assert alert["labels"]["priority"] == event["priority"]
            assert alert["labels"]["rule"] == event["rule"]
            assert alert["annotations"]["description"] == event["output"]
            assert alert["labels"]["proc_cmdline"] == event["output_fields"]["proc.cmdline"]

        def slack_text():
            texts = [body["attachments"][0]["title"] + "\n" + body["attachments"][0]["text"]
                     for p, body in collector.posts if p == "/slack"]
            joined = "\n".join(texts)
            return joined if all(event["output"] in joined for event in events) and "fleet-a" in joined else None

        text = wait_for(slack_text)
        assert text, "Slack posts: %s" % [b for p, b in collector.posts if p == "/slack"]
        for event in events:
            for field in expected_fields(event):
                assert field in text
        assert "Host: fleet-a" in text and "Rule: Launch Privileged Container" in text and "Priority: critical" in text
        assert "Runbook: %s" % RUNBOOK_URL in text and "Dashboard: %s" % DASHBOARD_URL in text
        body = next(b for p, b in collector.posts if p == "/slack")
        assert body["channel"] == "#falco"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _ready(url):
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def template_data(alerts):
    """Alertmanager's template.Data for one notification holding these alerts (amtool's --template.data)."""
    start = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    items = [{"status": "firing", "labels": a["labels"], "annotations": a["annotations"], "startsAt": start,
              "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "%016x" % i}
             for i, a in enumerate(alerts)]
    common = dict(set.intersection(*[set(a["labels"].items()) for a in alerts]))
    return {"receiver": "people", "status": "firing", "alerts": items, "groupLabels": {}, "commonLabels": common,
            "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093"}


@pytest.mark.parametrize("name", ["fleetwatch.email.text", "fleetwatch.email.html", "fleetwatch.slack.text"])
def test_email_and_slack_texts_render_the_four_fields(rendered, name):
    workdir = rendered[0]
    events, alerts = fixture_alerts()
    data = workdir / ("data-%s.json" % name)
    data.write_text(json.dumps(template_data(alerts)))
    kind = "html" if name.endswith("html") else "text"
    proc = subprocess.run([AMTOOL, "template", "render", "--template.glob=%s" % (workdir / "etc" / "templates" / "*.tmpl"),
                           "--template.text={{ template \"%s\" . }}" % name, "--template.type=%s" % kind,
                           "--template.data=%s" % data], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    if kind == "html":
        assert "<pre>" in text
        text = re.sub(r"&lt;", "<", re.sub(r"&gt;", ">", re.sub(r"&#39;|&#34;|&quot;", "'", text)))
        text = text.replace("&amp;", "&")
    for event in events:
        for field in expected_fields(event):
            assert field in text, "%s missing from %s:\n%s" % (field, name, text)


def test_subject_names_the_host_and_rule_of_a_single_event(rendered):
    workdir = rendered[0]
    events, alerts = fixture_alerts()
    data = workdir / "data-subject.json"
    data.write_text(json.dumps(template_data(alerts[:1])))
    proc = subprocess.run([AMTOOL, "template", "render", "--template.glob=%s" % (workdir / "etc" / "templates" / "*.tmpl"),
                           "--template.text={{ template \"fleetwatch.email.subject\" . }}", "--template.data=%s" % data],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[FIRING:1] FalcoEvent on %s: %s" % (events[0]["hostname"], events[0]["rule"])


def render_template(workdir, name, alerts):
    """One of the notification templates for these alerts, as amtool renders it (HTML: the text in its <pre>)."""
    data = workdir / ("data-%s-%d.json" % (name, len(alerts)))
    data.write_text(json.dumps(template_data(alerts)))
    kind = "html" if name.endswith("html") else "text"
    templates = workdir / "etc" / "templates" / "*.tmpl"
    proc = subprocess.run([AMTOOL, "template", "render", "--template.glob=%s" % templates,
                           "--template.text={{ template \"%s\" . }}" % name, "--template.type=%s" % kind,
                           "--template.data=%s" % data], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    if kind == "text":
        return proc.stdout
    assert "<pre>" in proc.stdout, proc.stdout
    return html.unescape(re.sub(r"</?(html|body|pre)>", "", proc.stdout))


@pytest.mark.parametrize("name", ["fleetwatch.email.text", "fleetwatch.email.html", "fleetwatch.slack.text"])
def test_runbook_and_dashboard_links_show_where_the_alert_has_them(rendered, name):
    text = render_template(rendered[0], name, [PROMETHEUS_RULE_ALERT, FALCOSIDEKICK_ALERT])
    # One block per alert, each from its [FIRING] line.
    blocks = {block.split("\n", 1)[0].split()[1]: block.splitlines()
              for block in re.split(r"^(?=\[FIRING\])", text, flags=re.M) if block.startswith("[FIRING]")}
    assert set(blocks) == {"FalcoCriticalEvent", "FalcoEvent"}, text
    assert "Runbook: %s" % RUNBOOK_URL in blocks["FalcoCriticalEvent"], text
    assert "Dashboard: %s" % DASHBOARD_URL in blocks["FalcoCriticalEvent"], text
    # falcosidekick's alert has no links, so no empty link lines either.
    assert "Host: fleet-b" in blocks["FalcoEvent"], text
    assert not [line for line in blocks["FalcoEvent"] if line.startswith(("Runbook:", "Dashboard:"))], text


def _by_labels(expr):
    return {label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", expr) for label in group.split(",")}


def test_prometheus_falco_rules_name_host_rule_and_priority_in_their_annotations():
    """Where an alert of roles/prometheus keeps host, rule_name/rule or priority, its annotations show them."""
    checked = 0
    for rule in alert_rules():
        by = _by_labels(rule["expr"])
        kept = by if by else ({"host"} if "up{" in rule["expr"] and "absent" not in rule["expr"] else set())
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        for label in kept & {"host", "rule_name", "rule", "priority"}:
            # An aggregation keeps only the labels of its outermost "by"; count() by (rule_name) drops host.
            outer = re.findall(r"^\s*\w+\s+by\s*\(([^)]*)\)", rule["expr"])
            if outer and label not in outer[0]:
                continue
            assert "$labels.%s" % label in text, "%s: %s not in its annotations" % (rule["alert"], label)
            checked += 1
    assert checked >= 10
