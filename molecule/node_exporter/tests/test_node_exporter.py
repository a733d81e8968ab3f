"""node_exporter as a package, under podman and through the Docker API, scraped from a third container."""

import os
import sys
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import assert_reached_over_ssh, converge, failures, http_get  # noqa: E402

CLIENT = testinfra.get_host("podman://client")
SECRET = os.environ.get("FLEETWATCH_LAB_SECRET", "lab-only-secret")
TLS_HOSTS = ["ne-package", "ne-docker"]
ALL_HOSTS = ["ne-package", "ne-podman", "ne-docker"]


def refusals(report, text):
    """{host: [messages of what failed there that contain text]} for every host of the run."""
    return {name: [m for m in failures(report, name) if text in m] for name in report["stats"]}


def get(url, user=None, password=None):
    """Status code ("000" without an HTTP answer) and body of a request made from the client container, which trusts
    the lab CA."""
    reply = http_get(CLIENT, url, user=user, password=password, timeout=10)
    return "%03d" % (reply.status or 0), reply.body


def test_plain_exporter_serves_node_metrics():
    status, body = get("http://ne-podman:9100/metrics")
    assert status == "200"
    assert "\nnode_uname_info{" in body
    assert "\nnode_cpu_seconds_total{" in body


@pytest.mark.parametrize("host", TLS_HOSTS)
def test_tls_exporter_serves_metrics_with_credentials(host):
    status, body = get(f"https://{host}:9100/metrics", "prometheus", SECRET)
    assert status == "200"
    assert "\nnode_uname_info{" in body


@pytest.mark.parametrize("host", TLS_HOSTS)
@pytest.mark.parametrize("credentials", [[], ["prometheus", "wrong-password"], ["intruder", SECRET]])
def test_tls_exporter_refuses_requests_without_valid_credentials(host, credentials):
    status, body = get(f"https://{host}:9100/metrics", *credentials)
    assert status == "401"
    assert "node_" not in body


@pytest.mark.parametrize("host", TLS_HOSTS)
def test_tls_exporter_refuses_plain_http(host):
    status, body = get(f"http://{host}:9100/metrics", "prometheus", SECRET)
    assert status != "200"
    assert "node_" not in body


def test_package_service_runs_with_our_flags():
    host = testinfra.get_host("podman://ne-package")
    service = host.service("prometheus-node-exporter")
    assert service.is_running
    assert service.is_enabled
    cmdline = host.check_output("tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value prometheus-node-exporter)/cmdline")
    assert "--web.listen-address=0.0.0.0:9100" in cmdline
    assert "--web.config.file=/etc/node_exporter/web-config.yml" in cmdline


@pytest.mark.parametrize("host_name,group", [("ne-package", "prometheus"), ("ne-docker", "65534")])
def test_secrets_are_not_world_readable_and_passwords_are_hashed(host_name, group):
    host = testinfra.get_host(f"podman://{host_name}")
    key = host.file("/etc/node_exporter/web.key")
    assert key.mode == 0o640
    assert key.user == "root"
    assert group in (key.group, str(key.gid))
    web_config = host.file("/etc/node_exporter/web-config.yml")
    assert web_config.mode == 0o640
    assert SECRET not in web_config.content_string
    assert "prometheus: $2b$" in web_config.content_string


@pytest.mark.parametrize("host_name,engine", [("ne-podman", "podman"), ("ne-docker", "podman")])
def test_container_shares_the_hosts_network_and_pids_and_restarts(host_name, engine):
    host = testinfra.get_host(f"podman://{host_name}")
    inspect = host.check_output(
        "%s inspect node_exporter --format '{{.HostConfig.NetworkMode}} {{.HostConfig.PidMode}} "
        "{{.HostConfig.RestartPolicy.Name}} {{.State.Running}}'", engine)
    assert inspect.split() == ["host", "host", "always", "true"]


@pytest.mark.parametrize("host_name,installed,left_out", [
    # the package without its Recommends (smartmontools, ipmitool and perl with them), python3-apt for the apt module
    ("ne-package", ["prometheus-node-exporter", "python3-apt"], ["smartmontools", "ipmitool"]),
    # community.docker's modules run on python3-requests (the lab image has no Python library for them)
    ("ne-docker", ["python3-requests"], []),
])
def test_the_role_installed_what_its_tasks_need_and_no_recommends(host_name, installed, left_out):
    host = testinfra.get_host(f"podman://{host_name}")
    assert [p for p in installed if not host.package(p).is_installed] == []
    assert [p for p in left_out if host.package(p).is_installed] == []


def test_podman_restart_service_is_enabled():
    assert testinfra.get_host("podman://ne-podman").service("podman-restart").is_enabled


def test_check_mode_on_converged_hosts_reports_no_change():
    rc, report, output = converge("--check", "--diff")
    assert rc == 0, output
    assert set(report["stats"]) == set(ALL_HOSTS)
    assert all(r["changed"] == 0 and r["failures"] == 0 for r in report["stats"].values()), report["stats"]


def test_wrong_mode_fails_in_preflight_before_any_change():
    rc, report, output = converge("-e", "node_exporter_mode=dockr")
    assert rc != 0
    assert set(report["stats"]) == set(ALL_HOSTS)
    # The role's argument specs refuse the value on every host, naming the variable, the value and the choices.
    for name in ALL_HOSTS:
        named = [m for m in failures(report, name) if "node_exporter_mode" in m and "dockr" in m]
        assert [m for m in named if "package, container" in m or "container, package" in m], (name, failures(report, name))
    assert all(r["changed"] == 0 for r in report["stats"].values()), report["stats"]
    assert get("http://ne-podman:9100/metrics")[0] == "200"


def test_misspelled_variable_fails_with_a_suggestion():
    rc, report, output = converge("-e", "node_exporter_mdoe=container")
    assert rc != 0
    found = refusals(report, "node_exporter_mdoe (did you mean node_exporter_mode?)")
    assert set(found) == set(ALL_HOSTS) and all(found.values()), (found, output)
    assert all(r["changed"] == 0 for r in report["stats"].values()), report["stats"]


def test_basic_auth_without_tls_is_refused():
    rc, report, output = converge("--limit", "ne-podman", "-e", '{"node_exporter_basic_auth_users": {"prometheus": "x"}}')
    assert rc != 0
    refused = [m for m in failures(report, "ne-podman") if "node_exporter_basic_auth_users needs node_exporter_tls_enabled" in m]
    assert refused, (failures(report, "ne-podman"), output)
    assert report["stats"]["ne-podman"]["changed"] == 0, report["stats"]


@pytest.mark.parametrize("name", ["ne-package", "ne-podman", "client"])
def test_the_playbooks_reach_the_hosts_over_ssh(name):
    assert_reached_over_ssh(name, testinfra.get_host("podman://" + name))
