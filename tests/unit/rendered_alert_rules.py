"""The Falco alert rules of role prometheus as the role writes them, for the tests that read them.

roles/prometheus/vars/main.yml renders templates/falco-alerts.yml.j2 with lookup('ansible.builtin.template') and
[[ ]] as variable delimiters (so Prometheus's own {{ $labels.x }} stay literal); this renders it the same way with
plain Jinja2 and the two test URLs that tests/promtool/falco-alerts.test.yml expects in its exp_annotations.
"""

from pathlib import Path

import jinja2
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "roles" / "prometheus" / "templates" / "falco-alerts.yml.j2"
TEST_RUNBOOK_URL = "https://runbooks.test/runbooks.md"
TEST_DASHBOARD_URL = "https://grafana.test/d/fleetwatch-falco-fleet"


def render_alert_rules(runbook_url=TEST_RUNBOOK_URL, dashboard_url=TEST_DASHBOARD_URL):
    """The rendered rule file's text; a variable the template names but the role does not pass fails here."""
    env = jinja2.Environment(variable_start_string="[[", variable_end_string="]]", keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(TEMPLATE.read_text()).render(prometheus_alert_runbook_url=runbook_url,
                                                        prometheus_alert_dashboard_url=dashboard_url)


def alert_rules(**urls):
    """Every alerting rule of the rendered file, in file order."""
    return [rule for group in yaml.safe_load(render_alert_rules(**urls))["groups"] for rule in group["rules"]]
