"""falco_exporter's TLS proxy (Caddy) in front of a TEST FIXTURE upstream that serves falco-exporter-style metrics."""

import sys
from pathlib import Path

import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import run_playbook  # noqa: E402

HOST = testinfra.get_host("podman://xp-agent")
CA = "/root/fixture-fleet-ca.crt"
PASSWORD = "lab-only-exporter-proxy-secret-9Tz"
URL = "https://localhost:9376/metrics"


def curl(*args):
    """(exit code, HTTP status, body) of a curl run inside the lab host."""
    cmd = "curl -s --max-time 5 -o /tmp/xp-body -w '%%{http_code}' " + " ".join(["%s"] * len(args))
    result = HOST.run(cmd, *args)
    body = HOST.run("cat /tmp/xp-body 2>/dev/null; rm -f /tmp/xp-body").stdout
    return result.rc, result.stdout.strip(), body


def listening_ports():
    return {line.split()[3].rsplit(":", 1)[-1] for line in HOST.check_output("ss -Hltn").splitlines()}


def test_https_with_the_fleet_credential_returns_the_upstream_metrics():
    rc, code, body = curl("--cacert", CA, "-u", "prometheus:" + PASSWORD, URL)
    assert (rc, code) == (0, "200")
    assert 'falco_events{hostname="xp-agent"' in body
    assert 'rule="Fixture Write below etc"' in body


def test_missing_or_wrong_credentials_are_refused():
    assert curl("--cacert", CA, URL)[1] == "401"
    assert curl("--cacert", CA, "-u", "prometheus:wrong-" + PASSWORD, URL)[1] == "401"
    assert curl("--cacert", CA, "-u", "someone:" + PASSWORD, URL)[1] == "401"


def test_plain_http_on_the_public_port_gets_no_metrics():
    rc, code, body = curl("-u", "prometheus:" + PASSWORD, "http://localhost:9376/metrics")
    assert code != "200"
    assert "falco_events" not in body


def test_a_client_without_the_ca_fails_verification():
    rc, code, body = curl("-u", "prometheus:" + PASSWORD, URL)
    assert rc == 60, (rc, code)
    assert "falco_events" not in body  # curl: peer certificate cannot be authenticated with known CA certificates


def test_listeners_port_80_gone_upstream_on_loopback_only():
    ports = listening_ports()
    assert "80" not in ports
    assert "9376" in ports
    upstream = [line.split()[3] for line in HOST.check_output("ss -Hltn").splitlines() if line.split()[3].endswith(":19377")]
    assert upstream == ["127.0.0.1:19377"]


def test_key_and_config_permissions():
    key = HOST.file("/etc/caddy/fleetwatch-falco-exporter/tls.key")
    assert (key.user, key.group, key.mode) == ("root", "caddy", 0o640)
    caddyfile = HOST.file("/etc/caddy/Caddyfile")
    assert caddyfile.contains("Managed by fleetwatch.falco_stack")
    assert not caddyfile.contains(PASSWORD)
    assert caddyfile.group == "caddy" and caddyfile.mode == 0o640


def test_check_mode_on_the_converged_host_changes_nothing():
    rc, output, recap = run_playbook("converge.yml", "--check")
    assert rc == 0, output[-3000:]
    assert recap["xp-agent"]["changed"] == 0, output[-3000:]


def test_verbose_run_does_not_log_the_password():
    rc, output, recap = run_playbook("converge.yml", "-vvv")
    assert rc == 0, output[-3000:]
    assert recap["xp-agent"]["changed"] == 0
    assert PASSWORD not in output


def test_zz_turning_the_proxy_off_frees_the_port():
    # Last in the file (pytest runs in file order): removes what the converge set up.
    rc, output, recap = run_playbook("proxy_off.yml")
    assert rc == 0, output[-3000:]
    assert recap["xp-agent"]["changed"] >= 1
    assert "9376" not in listening_ports()
    assert not HOST.file("/etc/caddy/Caddyfile").exists
    assert not HOST.file("/etc/caddy/fleetwatch-falco-exporter").exists
    assert not HOST.service("caddy").is_running
    # The fixture upstream is untouched.
    assert HOST.run("curl -s --max-time 5 http://127.0.0.1:19377/metrics").stdout.count("falco_events{") == 2
