"""The Falco alert rules shipped in roles/prometheus: promtool accepts them and their unit tests in tests/promtool pass;
every alert links its runbook section in docs/runbooks.md and the Falco fleet dashboard."""

import json
import re
import shutil
import subprocess
import textwrap
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from localplay import ansible_playbook, render_role_vars
from rendered_alert_rules import (REPO_ROOT, TEMPLATE, TEST_DASHBOARD_URL, TEST_RUNBOOK_URL, alert_rules,
                                  render_alert_rules)

PROMTOOL_TESTS = sorted((REPO_ROOT / "tests" / "promtool").glob("*.test.yml"))
PROMTOOL = shutil.which("promtool")
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"
DASHBOARD = REPO_ROOT / "roles" / "grafana" / "files" / "dashboards" / "falco-fleet.json"
ROLE_VARS = REPO_ROOT / "roles" / "prometheus" / "vars" / "main.yml"

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not found (apt-get install prometheus)")


def run(*args, cwd=None):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


@pytest.fixture
def rules_file(tmp_path):
    """The rendered rules as falco-alerts.yml, the name the promtool tests' rule_files give (relative to themselves)."""
    path = tmp_path / "falco-alerts.yml"
    path.write_text(render_alert_rules())
    return path


def alert_names():
    return [rule["alert"] for rule in alert_rules()]


@needs_promtool
def test_promtool_accepts_the_rules(rules_file):
    proc = run("check", "rules", str(rules_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file, rules_file):
    # A copy beside the rendered rules: rule_files paths are relative to the test file.
    copy = rules_file.parent / test_file.name
    shutil.copyfile(test_file, copy)
    assert yaml.safe_load(copy.read_text())["rule_files"] == [rules_file.name]
    proc = run("test", "rules", copy.name, cwd=rules_file.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test():
    tested = set()
    for test_file in PROMTOOL_TESTS:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            tested.update(t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts"))
    assert set(alert_names()) - tested == set(), "alerts without a firing unit test"


def test_every_alert_has_severity_summary_and_description():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_alert_names_are_unique():
    names = alert_names()
    assert len(names) == len(set(names))


def test_priorities_are_matched_as_numeric_strings():
    # Falco's priority label is "0".."7"; names such as "Critical" never match a series.
    text = render_alert_rules()
    assert 'priority=~"0|1|2"' in text
    for name in ("Critical", "Error", "Warning", "critical\"", "error\""):
        assert "priority=~\"%s" % name not in text and "priority=\"%s" % name not in text


# --- Runbook and dashboard links --------------------------------------------------------------------------------------

def heading_anchor(heading):
    """The anchor GitHub (and most Markdown renderers) give a heading: lower case, punctuation gone, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections():
    """Anchors of the level-2 headings of docs/runbooks.md (one per alert)."""
    return {heading_anchor(h) for h in re.findall(r"^## (.+)$", RUNBOOKS.read_text(), re.M)}


def dashboard_variables():
    return {variable["name"] for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]}


def keeps_host(expr):
    """Whether this expression's alerts carry the host label: its outermost aggregation keeps host, or it has none."""
    outer = re.match(r"\s*(\w+)\s*(by\s*\(([^)]*)\))?\s*\(", expr)
    if outer is None:  # a bare selector with a comparison, such as up{...} == 0
        return True
    return outer.group(3) is not None and "host" in {label.strip() for label in outer.group(3).split(",")}


def test_every_alert_links_its_runbook_section():
    sections = runbook_sections()
    for rule in alert_rules():
        url = rule["annotations"].get("runbook_url", "")
        base, separator, anchor = url.partition("#")
        assert separator, (rule["alert"], url)
        assert base == TEST_RUNBOOK_URL, (rule["alert"], url)
        assert anchor == rule["alert"].lower(), (rule["alert"], url)
        assert anchor in sections, "%s has no section '## %s' in docs/runbooks.md" % (rule["alert"], rule["alert"])


def test_every_runbook_section_names_a_shipped_alert():
    # A renamed or removed alert must not leave its old section behind.
    shipped = {name.lower() for name in alert_names()}
    stale = {anchor for anchor in runbook_sections() if anchor.startswith("falco")} - shipped
    assert stale == set()


def test_every_alert_links_the_dashboard_filtered_on_its_host():
    variables = dashboard_variables()
    assert "host" in variables
    filtered = 0
    for rule in alert_rules():
        url = rule["annotations"].get("dashboard_url", "")
        parts = urlsplit(url)
        base = "%s://%s%s" % (parts.scheme, parts.netloc, parts.path)
        assert base == TEST_DASHBOARD_URL, (rule["alert"], url)
        params = dict(parse_qsl(parts.query))
        for name in params:
            assert name.startswith("var-") and name[len("var-"):] in variables, (rule["alert"], name)
        if keeps_host(rule["expr"]):
            # The alert's own host label, URL-quoted by Prometheus when it fills in the annotation.
            assert params == {"var-host": "{{ $labels.host | urlquery }}"}, (rule["alert"], url)
            filtered += 1
        else:
            assert params == {}, "%s has no host label to filter on: %s" % (rule["alert"], url)
    assert filtered >= 8  # the per-host alerts; the fleet-wide ones link the whole fleet


def test_the_templates_delimiters_leave_prometheus_templates_alone():
    text = TEMPLATE.read_text()
    # Jinja's block and comment delimiters stay active with [[ ]] for variables: none may appear.
    assert "{%" not in text and "{#" not in text
    rendered = render_alert_rules()
    assert "[[" not in rendered and "]]" not in rendered
    assert rendered.count("{{ $labels.host") == text.count("{{ $labels.host") > 0


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not on PATH (activate the venv)")
def test_the_roles_lookup_renders_what_the_tests_test(tmp_path):
    """The role's own lookup call (from vars/main.yml) through Ansible gives the file the tests above render."""
    call = re.search(r"lookup\('ansible\.builtin\.template', 'falco-alerts\.yml\.j2',(?P<options>[^)]*)\)",
                     ROLE_VARS.read_text())
    assert call, "vars/main.yml no longer renders falco-alerts.yml.j2 with the template lookup"
    out = tmp_path / "falco-alerts.yml"
    lookup = "lookup('ansible.builtin.template', '%s', %s)" % (TEMPLATE, " ".join(call.group("options").split()))
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.copy": {"dest": str(out), "mode": "0600", "content": "{{ %s }}" % lookup}}]}]
    rc, output, _recap = ansible_playbook(tmp_path, play, {"prometheus_alert_runbook_url": TEST_RUNBOOK_URL,
                                                           "prometheus_alert_dashboard_url": TEST_DASHBOARD_URL})
    assert rc == 0, output
    assert yaml.safe_load(out.read_text()) == yaml.safe_load(render_alert_rules())


MONITORING_INVENTORY = textwrap.dedent("""\
    all:
      vars:
        ansible_connection: local
      children:
        monitoring:
          hosts:
            mon-1:
            mon-2:
    """)


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not on PATH (activate the venv)")
@pytest.mark.parametrize("settings, expected", [
    ({}, "http://mon-1:3000/d/fleetwatch-falco-fleet"),
    ({"fleetwatch_tls_enabled": "true", "grafana_http_port": 3443}, "https://mon-1:3443/d/fleetwatch-falco-fleet"),
    ({"fleetwatch_tls_enabled": "true", "grafana_tls_enabled": "false"}, "http://mon-1:3000/d/fleetwatch-falco-fleet"),
    ({"fleetwatch_monitoring_group": "absent"}, "http://mon-2:3000/d/fleetwatch-falco-fleet"),
], ids=["plain", "tls-and-port", "grafana-tls-off", "no-such-group"])
def test_the_default_dashboard_url_is_grafana_on_the_first_monitoring_host(tmp_path, settings, expected):
    # Rendered for mon-2: every Prometheus of the group links the same Grafana, so their alerts stay identical.
    rendered = render_role_vars(tmp_path, "prometheus", {"url": "prometheus_alert_dashboard_url"}, settings,
                                inventory=MONITORING_INVENTORY, host="mon-2")
    assert rendered["url"] == expected
