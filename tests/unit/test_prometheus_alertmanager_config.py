"""Role alertmanager: the configuration, flags and container definition its vars render, without a host."""

import shutil

import pytest

from localplay import ansible_playbook, render_role_vars

ANSIBLE = shutil.which("ansible-playbook")
pytestmark = pytest.mark.skipif(ANSIBLE is None, reason="ansible-playbook not found (activate the venv)")

RENDERED = {"config": "__alertmanager_config", "args": "__alertmanager_args",
            "volumes": "__alertmanager_container_volumes", "image": "__alertmanager_container_image_ref",
            "amtool": "__alertmanager_amtool_cmd"}


def render(tmp_path, **extra_vars):
    return render_role_vars(tmp_path, "alertmanager", RENDERED, extra_vars)


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
