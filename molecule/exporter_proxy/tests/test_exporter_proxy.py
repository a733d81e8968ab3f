"""falco_exporter's TLS proxy (Caddy) in front of a TEST FIXTURE upstream that serves falco-exporter-style metrics."""

import sys
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import http_get, run_playbook_json  # noqa: E402

# The same proxy on Debian 12 (xp-agent) and Debian 13 (xp-agent-13).
NAMES = ["xp-agent", "xp-agent-13"]
HOSTS = {name: testinfra.get_host("podman://" + name) for name in NAMES}
CA = "/root/fixture-fleet-ca.crt"
PASSWORD = "lab-only-exporter-proxy-secret-9Tz"
URL = "https://localhost:9376/metrics"


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def get(name, url, user=None, password=None, cafile=None):
    """A request made inside the lab host (labtest.Reply: status, body, error)."""
    return http_get(HOSTS[name], url, user=user, password=password, cafile=cafile, timeout=5)


def listening_ports(name):
    return {line.split()[3].rsplit(":", 1)[-1] for line in HOSTS[name].check_output("ss -Hltn").splitlines()}


def test_https_with_the_fleet_credential_returns_the_upstream_metrics(name):
    reply = get(name, URL, "prometheus", PASSWORD, CA)
    assert (reply.error, reply.status) == (None, 200), reply
    assert 'falco_events{hostname="xp-agent"' in reply.body  # the fixture's recorded series, on both hosts
    assert 'rule="Fixture Write below etc"' in reply.body


def test_missing_or_wrong_credentials_are_refused(name):
    assert get(name, URL, cafile=CA).status == 401
    assert get(name, URL, "prometheus", "wrong-" + PASSWORD, CA).status == 401
    assert get(name, URL, "someone", PASSWORD, CA).status == 401


def test_plain_http_on_the_public_port_gets_no_metrics(name):
    reply = get(name, "http://localhost:9376/metrics", "prometheus", PASSWORD)
    assert reply.status != 200, reply
    assert "falco_events" not in reply.body


def test_a_client_without_the_ca_fails_verification(name):
    reply = get(name, URL, "prometheus", PASSWORD)  # the host's own trust store, which lacks the fleet CA
    assert (reply.error, reply.status) == ("certificate", None), reply
    assert "falco_events" not in reply.body


def test_listeners_port_80_gone_upstream_on_loopback_only(name):
    ports = listening_ports(name)
    assert "80" not in ports
    assert "9376" in ports
    upstream = [line.split()[3] for line in HOSTS[name].check_output("ss -Hltn").splitlines() if line.split()[3].endswith(":19377")]
    assert upstream == ["127.0.0.1:19377"]


def test_key_and_config_permissions(name):
    key = HOSTS[name].file("/etc/caddy/fleetwatch-falco-exporter/tls.key")
    assert (key.user, key.group, key.mode) == ("root", "caddy", 0o640)
    caddyfile = HOSTS[name].file("/etc/caddy/Caddyfile")
    assert caddyfile.contains("Managed by fleetwatch.falco_stack")
    assert not caddyfile.contains(PASSWORD)
    assert caddyfile.group == "caddy" and caddyfile.mode == 0o640


def test_check_mode_on_the_converged_host_changes_nothing():
    rc, report, output = run_playbook_json("converge.yml", "--check")
    assert rc == 0, output[-3000:]
    assert [report["stats"][name]["changed"] for name in NAMES] == [0, 0], report["stats"]


def test_verbose_run_does_not_log_the_password():
    # labtest sends -vvv's lines to stderr so that stdout holds the report alone; the output read below is both, so
    # the password is looked for in everything a user would see: the verbose console lines and every result of the
    # report (the callback keeps each result whole, module arguments included).
    rc, report, output = run_playbook_json("converge.yml", "-vvv")
    assert rc == 0, output[-3000:]
    assert [report["stats"][name]["changed"] for name in NAMES] == [0, 0], report["stats"]
    assert "Using module file" in output, "no -vvv lines in the output"
    assert PASSWORD not in output


def test_zz_turning_the_proxy_off_frees_the_port():
    # Last in the file (pytest runs in file order): removes what the converge set up.
    rc, report, output = run_playbook_json("proxy_off.yml")
    assert rc == 0, output[-3000:]
    for name, host in HOSTS.items():
        assert report["stats"][name]["changed"] >= 1, report["stats"]
        assert "9376" not in listening_ports(name)
        assert not host.file("/etc/caddy/Caddyfile").exists
        assert not host.file("/etc/caddy/fleetwatch-falco-exporter").exists
        assert not host.service("caddy").is_running
        # The fixture upstream is untouched.
        assert get(name, "http://127.0.0.1:19377/metrics").body.count("falco_events{") == 2
