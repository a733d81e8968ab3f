"""Role alertmanager: the configuration its template renders, and the flags and container definition its vars
render, without a host."""

import shutil

import pytest
import yaml

from localplay import ansible_playbook, render_role_vars

ANSIBLE = shutil.which("ansible-playbook")
pytestmark = pytest.mark.skipif(ANSIBLE is None, reason="ansible-playbook not found (activate the venv)")

RENDERED = {"args": "__alertmanager_args", "volumes": "__alertmanager_container_volumes",
            "image": "__alertmanager_container_image_ref", "amtool": "__alertmanager_amtool_cmd"}


def render(tmp_path, **extra_vars):
    """The role's vars, and its alertmanager.yml (templates/alertmanager.yml.j2) read as YAML under "config"."""
    rendered = render_role_vars(tmp_path, "alertmanager", RENDERED, extra_vars, templates=["alertmanager.yml.j2"])
    rendered["config"] = yaml.safe_load(rendered.pop("alertmanager.yml.j2"))
    return rendered


def test_defaults_drop_alerts_into_a_null_receiver(tmp_path):
    rendered = render(tmp_path)
    assert rendered["config"]["route"]["receiver"] == "null"
    assert rendered["config"]["route"]["group_by"] == ["alertname", "host"]
    assert rendered["config"]["route"]["routes"] == []
    assert rendered["config"]["receivers"] == [{"name": "null"}]
    assert "--cluster.listen-address=" in rendered["args"]
    assert rendered["amtool"] == "/usr/bin/amtool check-config %s"


def test_routes_by_host_then_severity_to_receivers_given_as_data(tmp_path):
    receivers = [{"name": "oncall", "webhook_configs": [{"url": "https://hooks.example/a"}]},
                 {"name": "mail", "email_configs": [{"to": "secops@example.com"}]},
                 {"name": "chat", "slack_configs": [{"api_url": "https://slack.example/x", "channel": "#falco"}]}]
    rendered = render(tmp_path, alertmanager_receivers=receivers, alertmanager_default_receiver="chat",
                      alertmanager_severity_receivers={"critical": "oncall", "warning": "chat"},
                      alertmanager_host_receivers={"db-1": "mail"},
                      alertmanager_global={"smtp_smarthost": "mail.example.com:587"},
                      # Receivers verbatim; the texts the templates fill in: tests/unit/test_alertmanager_templates.py.
                      alertmanager_notification_templates_enabled=False)
    config = rendered["config"]
    assert config["global"] == {"smtp_smarthost": "mail.example.com:587"}
    assert config["receivers"] == receivers
    assert config["route"]["receiver"] == "chat"
    assert config["route"]["routes"] == [
        {"receiver": "mail", "matchers": ['host="db-1"'], "continue": True},
        {"receiver": "oncall", "matchers": ['severity="critical"']},
        {"receiver": "chat", "matchers": ['severity="warning"']},
    ]


def test_the_file_holds_every_section_in_order_with_extra_routes_first(tmp_path):
    receivers = [{"name": "oncall", "webhook_configs": [{"url": "https://hooks.example/a"}]},
                 {"name": "mail", "email_configs": [{"to": "a@example.com"}]},
                 {"name": "mail-2", "email_configs": [{"to": "b@example.com"}]}]
    extra = [{"receiver": "oncall", "matchers": ['alertname="Watchdog"'], "group_wait": "0s"}]
    inhibit = [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["host"]}]
    rendered = render(tmp_path, alertmanager_receivers=receivers, alertmanager_default_receiver="oncall",
                      alertmanager_severity_receivers={"info": "null"}, alertmanager_host_receivers={"db-1": "mail"},
                      alertmanager_extra_routes=extra, alertmanager_inhibit_rules=inhibit,
                      alertmanager_global={"resolve_timeout": "5m"}, alertmanager_repeat_interval="12h")
    config = rendered["config"]
    assert list(config) == ["global", "route", "receivers", "inhibit_rules", "templates"]
    assert list(config["route"]) == ["receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "routes"]
    assert config["route"]["repeat_interval"] == "12h"
    assert config["route"]["routes"] == extra + [
        {"receiver": "mail", "matchers": ['host="db-1"'], "continue": True},
        {"receiver": "null", "matchers": ['severity="info"']},
    ]
    assert [r["name"] for r in config["receivers"]] == ["oncall", "mail", "mail-2", "null"]
    assert config["inhibit_rules"] == inhibit
    assert config["templates"] == ["/etc/alertmanager/templates/*.tmpl"]
    # Both email receivers get the subject (the file may carry it once, as a YAML anchor, and alias it).
    assert [r["email_configs"][0]["headers"] for r in config["receivers"][1:3]] == [
        {"Subject": '{{ template "fleetwatch.email.subject" . }}'}] * 2


def test_cluster_and_container_definition(tmp_path):
    rendered = render(tmp_path, alertmanager_mode="container", alertmanager_cluster_peers=["am-2:9094"],
                      alertmanager_container_engine="docker")
    assert "--cluster.peer=am-2:9094" in rendered["args"]
    assert not any(a.startswith("--cluster.listen-address") for a in rendered["args"])
    assert rendered["image"] == "docker.io/prom/alertmanager:v0.28.1"
    assert rendered["volumes"] == ["/etc/alertmanager:/etc/alertmanager:ro",
                                   "/var/lib/prometheus/alertmanager:/var/lib/prometheus/alertmanager"]
    assert rendered["amtool"].startswith("docker -H unix:///var/run/docker.sock run --rm --network none")
    assert rendered["amtool"].endswith("check-config /tmp/candidate.yml")
    assert rendered["amtool"].count("%s") == 1


def test_container_pull_false_from_the_command_line_skips_the_pull(tmp_path):
    """-e alertmanager_container_pull=false arrives as the string "false": the pull must still be skipped."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Install the container image", "ansible.builtin.include_role": {
            "name": "fleetwatch.falco_stack.alertmanager", "tasks_from": "install_container.yml"}}]}]
    # An image no registry has: a pull that is not skipped fails.
    extra = {"alertmanager_mode": "container", "alertmanager_container_engine": "podman",
             "alertmanager_container_image": "localhost/fleetwatch-unit-fixture/absent-alertmanager"}
    rc, output, recap = ansible_playbook(tmp_path, play, extra, "-e", "alertmanager_container_pull=false")
    assert rc == 0, output
    assert recap["failed"] == 0 and recap["changed"] == 0, output
    rc, output, recap = ansible_playbook(tmp_path, play, extra, "-e", "alertmanager_container_pull=true")
    assert rc != 0 and recap["failed"] == 1, output  # the same run with pulling on does try, and fails
