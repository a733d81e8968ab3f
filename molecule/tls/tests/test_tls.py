"""The fleet-wide TLS switch on real node_exporter, Prometheus and Alertmanager (Debian's packages), with the
collection's own CA: unencrypted or unauthenticated requests refused, authenticated ones served, Prometheus scraping
and alerting over HTTPS with basic auth, and no secret in a -vvv log or in a world-readable file.

Falco and Grafana are not run here (they cannot be installed on this machine); tests/unit/test_fleet_tls.py renders
their configuration with the switch on.
"""

import os
import re
import stat
import sys
from pathlib import Path

import pytest
import testinfra
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import failures, get_json, http_get, run_playbook_json, wait_for  # noqa: E402

MON = testinfra.get_host("podman://tls-mon")
AGENT = testinfra.get_host("podman://tls-agent")
PASSWORD = os.environ.get("FLEETWATCH_LAB_SECRET", "lab-only-scrape-secret-7Qx")
RECEIVER_SECRET = "lab-only-receiver-secret-4Kp"
CA = "/etc/prometheus/scrape-ca.crt"
PKI_DIR = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki"
ENDPOINTS = {"node_exporter on the agent": "tls-agent:9100/metrics",
             "node_exporter on the monitoring host": "tls-mon:9100/metrics",
             "Prometheus": "tls-mon:9090/api/v1/status/buildinfo",
             "Alertmanager": "tls-mon:9093/api/v2/status"}


def get(url, user=None, password=None, cafile=None):
    """(error, HTTP status) of one request from the monitoring host: error None, "certificate", "tls", "refused"..."""
    reply = http_get(MON, url, user=user, password=password, cafile=cafile, timeout=10)
    return reply.error, reply.status


def fleet_json(url):
    return get_json(MON, url, user="prometheus", password=PASSWORD, cafile=CA, timeout=10)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_authenticated_https_is_served(name):
    assert get("https://" + ENDPOINTS[name], "prometheus", PASSWORD, CA) == (None, 200)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_https_without_credentials_or_with_a_wrong_one_is_refused(name):
    url = "https://" + ENDPOINTS[name]
    assert get(url, cafile=CA) == (None, 401)
    assert get(url, "prometheus", "wrong-" + PASSWORD, CA) == (None, 401)
    assert get(url, "someone", PASSWORD, CA) == (None, 401)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_plain_http_is_refused(name):
    # The TLS listener answers a plain-HTTP request with 400 (Go's "client sent an HTTP request to an HTTPS server")
    # and serves nothing: never 200, never the metrics.
    error, status = get("http://" + ENDPOINTS[name], "prometheus", PASSWORD)
    assert status != 200 and (error is not None or status == 400), (error, status)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_client_without_the_collections_ca_does_not_trust_the_server(name):
    # the host's own trust store, which lacks the collection's CA
    assert get("https://" + ENDPOINTS[name], "prometheus", PASSWORD) == ("certificate", None)


def test_the_host_certificate_names_the_inventory_host_and_is_signed_by_the_collections_ca():
    text = MON.check_output("openssl x509 -in /etc/node_exporter/web.crt -noout -text")
    assert "DNS:tls-mon" in text and "DNS:localhost" in text
    assert MON.run("openssl verify -CAfile %s /etc/node_exporter/web.crt" % CA).rc == 0
    assert AGENT.run("openssl x509 -in /etc/node_exporter/web.crt -noout -text").stdout.count("DNS:tls-agent") == 1


def test_prometheus_scrapes_every_target_over_https_with_basic_auth():
    def targets():
        active = fleet_json("https://localhost:9090/api/v1/targets")["data"]["activeTargets"]
        found = {(t["labels"]["job"], t["labels"]["host"], t["scrapeUrl"].split(":")[0], t["health"]) for t in active}
        return found if all(t[3] == "up" for t in found) and len(found) == 3 else None
    found = wait_for(targets)
    assert found == {("prometheus", "tls-mon", "https", "up"), ("node-exporter", "tls-mon", "https", "up"),
                     ("node-exporter", "tls-agent", "https", "up")}


def test_prometheus_delivers_alerts_to_alertmanager_over_https():
    managers = fleet_json("https://localhost:9090/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert [m["url"] for m in managers] == ["https://localhost:9093/api/v2/alerts"]

    def delivered():
        alerts = fleet_json("https://localhost:9093/api/v2/alerts")
        return [a for a in alerts if a["labels"].get("alertname") == "FixtureTlsLabAlwaysFiring"]
    assert wait_for(delivered)


def secret_values():
    """Every secret of the scenario: the scrape password, the receiver's password, and each private key (the
    controller's CA key and both host keys) as its PEM body, the body's first line (the one holding the private
    scalar; the last lines of an EC key's PEM encode its public point, which is no secret and does appear in the
    log, in the public key the crypto modules report) and the private scalar in hex and decimal."""
    values = {"scrape password": PASSWORD, "receiver secret": RECEIVER_SECRET}
    for key in sorted(PKI_DIR.rglob("*.key")):
        lines = [line for line in key.read_text().splitlines() if not line.startswith("-----")]
        scalar = serialization.load_pem_private_key(key.read_bytes(), password=None).private_numbers().private_value
        values.update({"private key %s body" % key.name: "".join(lines),
                       "private key %s first line" % key.name: lines[0],
                       "private key %s scalar (hex)" % key.name: "%x" % scalar,
                       "private key %s scalar (decimal)" % key.name: str(scalar)})
    return values


@pytest.fixture(scope="module")
def verbose_converge():
    """converge.yml with -vvv and the JSON callback: (exit code, report, the whole output). The output is both the
    verbose console lines (labtest sends them to stderr) and the report, whose results the callback keeps whole
    (module arguments included)."""
    return run_playbook_json("converge.yml", "-vvv")


def test_a_verbose_converge_succeeds_and_changes_nothing(verbose_converge):
    rc, report, output = verbose_converge
    assert rc == 0, output[-3000:]
    assert set(report["stats"]) == {"tls-mon", "tls-agent"}
    assert all(r["changed"] == 0 and r["failures"] == 0 for r in report["stats"].values()), report["stats"]


def test_no_secret_appears_anywhere_in_the_verbose_log(verbose_converge):
    # The raw output on purpose, not the report's results: a secret must show neither on the console nor in a result.
    output = verbose_converge[2]
    assert len(output) > 100000, "the -vvv log is suspiciously short"
    # Also with the log's line wrapping, quoting and JSON escapes removed, so a value split over lines is caught.
    flat = re.sub(r'\\n|[\s"\\]', "", output)
    leaked = sorted(name for name, value in secret_values().items() if value in output or value.lower() in flat.lower())
    assert leaked == []


def test_private_keys_on_the_controller_are_0600_in_0700_directories():
    keys = sorted(PKI_DIR.rglob("*.key"))
    assert [k.name for k in keys] == ["ca.key", "tls-agent.key", "tls-mon.key"]
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (PKI_DIR, PKI_DIR / "hosts"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


@pytest.mark.parametrize("host, path", [
    (AGENT, "/etc/node_exporter/web.key"), (AGENT, "/etc/node_exporter/web-config.yml"),
    (MON, "/etc/node_exporter/web.key"), (MON, "/etc/prometheus/web.key"), (MON, "/etc/prometheus/web-config.yml"),
    (MON, "/etc/prometheus/scrape-password"), (MON, "/etc/alertmanager/web.key"),
    (MON, "/etc/alertmanager/web-config.yml"), (MON, "/etc/alertmanager/alertmanager.yml"),
])
def test_secret_files_on_the_hosts_are_not_world_readable(host, path):
    secret_file = host.file(path)
    assert secret_file.exists, path
    assert secret_file.mode & 0o007 == 0, (path, oct(secret_file.mode))
    assert secret_file.user == "root"


def test_web_configurations_hold_bcrypt_hashes_never_the_password():
    for host, path in ((AGENT, "/etc/node_exporter/web-config.yml"), (MON, "/etc/prometheus/web-config.yml"),
                       (MON, "/etc/alertmanager/web-config.yml")):
        content = host.file(path).content_string
        assert PASSWORD not in content
        assert re.search(r"prometheus: \$2b\$12\$", content), content


def test_the_switch_without_a_password_is_refused_before_any_change():
    rc, report, output = run_playbook_json("converge.yml", "-e", "fleetwatch_scrape_password=")
    assert rc != 0
    # Each host's first role (node_exporter) refuses it in its preflight.
    refused = {name: [m for m in failures(report, name) if "set fleetwatch_scrape_password" in m] for name in report["stats"]}
    assert set(refused) == {"tls-mon", "tls-agent"} and all(refused.values()), (refused, output[-3000:])
    assert all(r["changed"] == 0 for r in report["stats"].values()), report["stats"]
