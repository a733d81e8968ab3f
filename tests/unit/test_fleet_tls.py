"""The fleet-wide TLS switch (fleetwatch_tls_enabled) on the controller side: the fleet_pki role run for real into a
temporary directory, and what the switch makes the roles render, checked with the tools that exist here (promtool,
openssl, Falco's published config schema). Falco and Grafana do not run on this machine: their configuration is
rendered and inspected, not served. The served endpoints are exercised for real in molecule/tls.
"""

import base64
import configparser
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from localplay import ansible_playbook, render_prometheus, render_role_vars, target_groups

REPO = Path(__file__).resolve().parents[1].parent
sys.path.insert(0, str(REPO / "tests" / "unit" / "roles"))
from falco_helpers import UPSTREAM, UPSTREAM_REASON, effective_config, load_yaml  # noqa: E402

PASSWORD = "unit-fixture-scrape-pw"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not found (activate the venv)")

PKI_PLAY = [{"hosts": "all", "gather_facts": False, "roles": [{"role": "fleetwatch.falco_stack.fleet_pki"}]}]


def pki_run(workdir, pki_dir, *args):
    inventory = workdir / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "fleetwatch_pki_dir": str(pki_dir)},
        "hosts": {"localhost": {}, "agent-1": {"ansible_host": "10.88.0.41", "scrape_address": "agent-1.lab.example"}}}}))
    playbook = workdir / "pki.yml"
    playbook.write_text(yaml.safe_dump(PKI_PLAY))
    collections = workdir / "collections"
    link = collections / "ansible_collections" / "fleetwatch" / "falco_stack"
    if not link.exists():
        link.parent.mkdir(parents=True)
        link.symlink_to(REPO)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook), *args], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert "{" in proc.stdout, output[-3000:]
    return proc.returncode, json.loads(proc.stdout[proc.stdout.index("{"):]), output


def changed_counts(report):
    """Tasks changed per host, from the JSON callback's recap."""
    return {host: stats["changed"] for host, stats in report["stats"].items()}


def refusals(report):
    """The messages of the failed tasks, on any host."""
    return [result.get("msg", "") for play in report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fleet-pki")
    pki_dir = workdir / "pki"
    rc, first, output = pki_run(workdir, pki_dir, "-e", "prometheus_target_address_var=scrape_address")
    assert rc == 0, output[-3000:]
    return workdir, pki_dir, first


def x509(path):
    return subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-text"], capture_output=True, text=True,
                          check=True).stdout


def test_the_ca_and_one_certificate_per_host_are_made_with_private_modes(pki):
    pki_dir, first = pki[1], pki[2]
    # The first host makes the CA key, the CA, its key and certificate (and the directories); the other its key and cert.
    assert sorted(changed_counts(first).values()) == [2, 5]
    files = {str(p.relative_to(pki_dir)): stat.S_IMODE(p.stat().st_mode) for p in pki_dir.rglob("*")}
    assert files == {"ca.crt": 0o644, "ca.key": 0o600, "hosts": 0o700, "hosts/localhost.crt": 0o644,
                     "hosts/localhost.key": 0o600, "hosts/agent-1.crt": 0o644, "hosts/agent-1.key": 0o600}
    assert stat.S_IMODE(pki_dir.stat().st_mode) == 0o700


def test_host_certificates_name_the_host_and_the_addresses_prometheus_scrapes(pki):
    pki_dir = pki[1]
    text = x509(pki_dir / "hosts" / "agent-1.crt")
    assert "DNS:agent-1, IP Address:10.88.0.41, DNS:agent-1.lab.example, DNS:localhost, IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication" in text and "CA:FALSE" in text
    ca_text = x509(pki_dir / "ca.crt")
    assert "CA:TRUE, pathlen:0" in ca_text and "Certificate Sign" in ca_text
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(pki_dir / "ca.crt"), str(pki_dir / "hosts" / "agent-1.crt")],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_rerun_issues_nothing_and_a_changed_name_reissues_only_that_host(pki):
    workdir, pki_dir = pki[0], pki[1]
    before = {p.name: p.read_bytes() for p in pki_dir.rglob("*.*")}
    rc, again, output = pki_run(workdir, pki_dir, "-e", "prometheus_target_address_var=scrape_address")
    assert rc == 0, output[-3000:]
    assert changed_counts(again) == {"localhost": 0, "agent-1": 0}
    assert {p.name: p.read_bytes() for p in pki_dir.rglob("*.*")} == before
    # Without the address variable agent-1's names change: its certificate (only) is re-issued, with the same key.
    rc, renamed, output = pki_run(workdir, pki_dir)
    assert rc == 0, output[-3000:]
    assert changed_counts(renamed) == {"localhost": 0, "agent-1": 1}
    after = {p.name: p.read_bytes() for p in pki_dir.rglob("*.*")}
    assert [name for name in before if before[name] != after[name]] == ["agent-1.crt"]
    assert "agent-1.lab.example" not in x509(pki_dir / "hosts" / "agent-1.crt")


def test_an_existing_ca_is_kept_and_a_ca_without_its_key_is_refused(tmp_path):
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=Site CA", "-days", "30", "-keyout", str(pki_dir / "ca.key"), "-out", str(pki_dir / "ca.crt"),
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   capture_output=True, check=True)
    own_ca = (pki_dir / "ca.crt").read_bytes()
    rc, _report, output = pki_run(tmp_path, pki_dir)
    assert rc == 0, output[-3000:]
    assert (pki_dir / "ca.crt").read_bytes() == own_ca
    assert "Issuer: CN = Site CA" in x509(pki_dir / "hosts" / "agent-1.crt")
    (pki_dir / "ca.key").unlink()
    rc, report, output = pki_run(tmp_path, pki_dir)
    assert rc != 0 and any("holds only one of ca.crt and ca.key" in m for m in refusals(report)), output[-3000:]


SWITCH = {"fleetwatch_tls_enabled": True, "fleetwatch_scrape_password": PASSWORD}


@pytest.fixture(scope="module")
def prometheus(pki, tmp_path_factory):
    pki_dir = pki[1]
    workdir = tmp_path_factory.mktemp("prometheus-tls")
    inventory = yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "fleetwatch_pki_dir": str(pki_dir), "fleetwatch_tls_enabled": True},
        "children": {"monitoring": {"hosts": {"localhost": {}}},
                     "falco": {"hosts": {"agent-1": {"falco_version": "0.44.1"},
                                         "legacy-1": {"falco_version": "0.43.1", "falco_grpc_enabled": True,
                                                      "falco_metrics_enabled": False}}}}}})
    config_dir = workdir / "etc"
    values = render_prometheus(workdir, {
        "args": "__prometheus_args", "files": "__prometheus_scrape.files",
        "ca": "prometheus_scrape_ca_cert", "web": "prometheus_web_basic_auth_users | fleetwatch.falco_stack.web_config("
        "tls=prometheus_web_tls_enabled | bool, cert_file='%s/web.crt', key_file='%s/web.key', salt_seed=inventory_hostname)"
        % (config_dir, config_dir)},
        {"prometheus_config_dir": str(config_dir), "prometheus_alertmanagers": ["localhost:9093"],
         "fleetwatch_scrape_password": PASSWORD}, inventory=inventory)
    return workdir, config_dir, pki_dir, values


def test_the_switch_turns_every_prometheus_connection_to_https_with_basic_auth(prometheus):
    config_dir, pki_dir, values = prometheus[1:]
    config, targets = values["config"], target_groups(values["files"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    auth = {"username": "prometheus", "password_file": "%s/scrape-password" % config_dir}
    tls = {"ca_file": "%s/scrape-ca.crt" % config_dir}
    assert jobs["prometheus"]["scheme"] == "https" and jobs["prometheus"]["basic_auth"] == auth
    assert jobs["prometheus"]["tls_config"] == tls
    assert jobs["node-exporter-tls"]["basic_auth"] == auth and jobs["node-exporter-tls"]["tls_config"] == tls
    # Falco's webserver has TLS but no basic auth: the falco-tls job sends none.
    assert jobs["falco-tls"]["scheme"] == "https" and jobs["falco-tls"]["tls_config"] == tls
    assert "basic_auth" not in jobs["falco-tls"]
    assert [t["targets"] for t in targets["falco-tls"]] == [["agent-1:8765"]]
    assert targets["falco"] == [] and targets["node-exporter"] == []
    node_targets = {h for g in targets["node-exporter-tls"] for h in g["targets"]}
    assert node_targets == {"localhost:9100", "agent-1:9100", "legacy-1:9100"}
    # falco-exporter (Falco < 0.44 with gRPC) behind the falco_exporter role's TLS proxy: HTTPS and basic auth.
    assert jobs["falco-exporter-tls"]["scheme"] == "https" and jobs["falco-exporter-tls"]["tls_config"] == tls
    assert jobs["falco-exporter-tls"]["basic_auth"] == auth
    assert [t["targets"] for t in targets["falco-exporter-tls"]] == [["legacy-1:9376"]]
    assert targets["falco-exporter"] == []
    [manager] = config["alerting"]["alertmanagers"]
    assert manager == {"scheme": "https", "tls_config": tls, "basic_auth": auth,
                       "static_configs": [{"targets": ["localhost:9093"]}]}
    assert "--web.config.file=%s/web-config.yml" % config_dir in values["args"]
    assert values["ca"] == (pki_dir / "ca.crt").read_text()
    assert PASSWORD not in json.dumps(config)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_the_rendered_configuration_and_web_configuration(prometheus):
    config_dir, pki_dir, values = prometheus[1:]
    config_dir.mkdir(exist_ok=True)
    (config_dir / "scrape-ca.crt").write_text(values["ca"])
    (config_dir / "scrape-password").write_text(PASSWORD)
    (config_dir / "web.crt").write_text((pki_dir / "hosts" / "localhost.crt").read_text())
    (config_dir / "web.key").write_text((pki_dir / "hosts" / "localhost.key").read_text())
    (config_dir / "prometheus.yml").write_text(yaml.safe_dump(values["config"]))
    (config_dir / "web-config.yml").write_text(yaml.safe_dump(values["web"]))
    for command in (["check", "config", "--syntax-only", str(config_dir / "prometheus.yml")],
                    ["check", "web-config", str(config_dir / "web-config.yml")]):
        proc = subprocess.run([PROMTOOL, *command], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert values["web"]["tls_server_config"] == {"cert_file": str(config_dir / "web.crt"), "key_file": str(config_dir / "web.key")}
    assert list(values["web"]["basic_auth_users"]) == ["prometheus"]


def test_switch_off_renders_todays_prometheus_configuration(tmp_path):
    values = render_prometheus(tmp_path, {"args": "__prometheus_args"}, {"prometheus_alertmanagers": ["localhost:9093"]})
    jobs = {job["job_name"]: job for job in values["config"]["scrape_configs"]}
    assert "scheme" not in jobs["prometheus"] and "basic_auth" not in jobs["prometheus"]
    assert values["config"]["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["localhost:9093"]}]}]
    assert not any(a.startswith("--web.config.file") for a in values["args"])


def test_falco_exporter_proxy_follows_the_switch(pki, tmp_path):
    bcrypt = pytest.importorskip("bcrypt")
    pki_dir = pki[1]
    # The socket given: the generation's vars file is loaded by the role's preflight, not by vars/main.yml.
    socket = {"falco_exporter_client_socket": "unix:///run/falco/falco.sock"}
    switch = dict(SWITCH, fleetwatch_pki_dir=str(pki_dir), **socket)
    template = REPO / "roles" / "falco_exporter" / "templates" / "Caddyfile.j2"
    names = {"args": "__falco_exporter_args", "users": "falco_exporter_basic_auth_users", "key": "falco_exporter_tls_key",
             "caddyfile": "lookup('ansible.builtin.template', '%s')" % template}
    on = render_role_vars(tmp_path, "falco_exporter", names, switch)
    # falco-exporter moves to loopback; the proxy takes the public port with the host's certificate.
    assert "--listen-address=127.0.0.1:19377" in on["args"]
    assert on["users"] == {"prometheus": PASSWORD}
    assert on["key"] == (pki_dir / "hosts" / "localhost.key").read_text()
    lines = [line.strip() for line in on["caddyfile"].splitlines()]
    assert "https://:9376 {" in lines and "bind 0.0.0.0" in lines and "auto_https off" in lines
    assert "reverse_proxy 127.0.0.1:19377" in lines
    [user_line] = [line for line in lines if line.startswith("prometheus ")]
    hashed = base64.b64decode(user_line.split()[1])
    assert bcrypt.checkpw(PASSWORD.encode(), hashed) and not bcrypt.checkpw(b"wrong", hashed)
    assert PASSWORD not in on["caddyfile"]
    off = render_role_vars(tmp_path, "falco_exporter", {"args": "__falco_exporter_args"}, socket)
    assert "--listen-address=0.0.0.0:9376" in off["args"]


def test_alertmanager_follows_the_switch(pki, tmp_path):
    pki_dir = pki[1]
    switch = dict(SWITCH, fleetwatch_pki_dir=str(pki_dir))
    am = render_role_vars(tmp_path, "alertmanager", {"args": "__alertmanager_args", "users": "alertmanager_web_basic_auth_users",
                                                     "key": "alertmanager_web_tls_key"}, switch)
    assert "--web.config.file=/etc/alertmanager/web-config.yml" in am["args"]
    assert am["users"] == {"prometheus": PASSWORD}
    assert am["key"] == (pki_dir / "hosts" / "localhost.key").read_text()
    off = render_role_vars(tmp_path, "alertmanager", {"args": "__alertmanager_args"}, {})
    assert not any(a.startswith("--web.config.file") for a in off["args"])


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason=UPSTREAM_REASON)
def test_falco_metrics_tls_renders_a_drop_in_falcos_schema_accepts(pki, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    pki_dir = pki[1]
    stage = tmp_path / "stage"
    stage.mkdir()
    play = load_yaml(REPO / "tests" / "unit" / "roles" / "falco_render.yml")
    rc, output = ansible_playbook(tmp_path, play, dict(SWITCH, fleetwatch_pki_dir=str(pki_dir), falco_version="0.44.1",
                                                       __falco_stage_dir=str(stage)))[:2]
    assert rc == 0, output
    dropins = sorted((stage / "config.d").glob("*.yaml"))
    packaged = sorted(UPSTREAM.glob("falco-0.44.1_config.d_*.yaml"))
    config = effective_config(UPSTREAM / "falco-0.44.1_falco.yaml", packaged + dropins)
    jsonschema.validate(config, load_yaml(UPSTREAM / "falco-0.44.1_config_schema.json"))
    assert config["webserver"]["ssl_enabled"] is True
    assert config["webserver"]["ssl_certificate"] == "/etc/falco/fleetwatch-webserver.pem"
    assert config["webserver"]["enabled"] is True and config["webserver"]["prometheus_metrics_enabled"] is True
    assert "PRIVATE KEY" not in output


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("podman") is None,
                    reason="the grafana role sets file owners (run as root) and its container-mode preflight needs podman")
def test_grafana_serves_https_and_queries_prometheus_with_the_ca_and_basic_auth(pki, tmp_path):
    pki_dir = pki[1]
    config_dir = tmp_path / "etc" / "grafana"
    variables = dict(SWITCH, fleetwatch_pki_dir=str(pki_dir), grafana_mode="container", grafana_container_engine="podman",
                     grafana_container_name="fleetwatch-unit-fixture-tls", grafana_config_dir=str(config_dir),
                     grafana_data_dir=str(tmp_path / "data"), grafana_admin_password="unit-fixture-admin-pw",
                     grafana_dashboard_cache_dir=str(tmp_path / "cache"))
    play = [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "fleetwatch.falco_stack.grafana"}]}]
    rc, output = ansible_playbook(tmp_path, play, variables, "--tags", "grafana_configure", "-vvv")[:2]
    assert rc == 0, output
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string((config_dir / "grafana.ini").read_text())
    assert (ini["server"]["protocol"], ini["server"]["cert_file"], ini["server"]["cert_key"]) == (
        "https", str(config_dir / "grafana.crt"), str(config_dir / "grafana.key"))
    assert stat.S_IMODE((config_dir / "grafana.key").stat().st_mode) == 0o640
    datasources = config_dir / "provisioning" / "datasources" / "fleetwatch.yml"
    [source] = yaml.safe_load(datasources.read_text())["datasources"]
    assert source["url"] == "https://localhost:9090"
    assert source["basicAuth"] is True and source["basicAuthUser"] == "prometheus"
    assert source["jsonData"]["tlsAuthWithCACert"] is True
    assert source["secureJsonData"] == {"basicAuthPassword": PASSWORD, "tlsCACert": (pki_dir / "ca.crt").read_text()}
    assert stat.S_IMODE(datasources.stat().st_mode) & 0o007 == 0
    key_body = "".join(line for line in (pki_dir / "hosts" / "localhost.key").read_text().splitlines() if "-----" not in line)
    for secret in (PASSWORD, "unit-fixture-admin-pw", key_body):
        assert secret not in output


def test_falcosidekick_posts_to_alertmanager_over_https_with_the_fleet_credential(pki, tmp_path):
    from test_falcosidekick_role import (CONFIG, UPSTREAM_EXAMPLE as SIDEKICK_UPSTREAM, assert_keys_known, render,
                                         upstream_keys)
    pki_dir = pki[1]
    rendered = render(tmp_path, dict(SWITCH, fleetwatch_pki_dir=str(pki_dir)),
                      {"text": CONFIG, "ca": "falcosidekick_alertmanager_ca_cert"})
    config = yaml.safe_load(rendered["text"])
    token = base64.b64encode(("prometheus:" + PASSWORD).encode()).decode()
    assert config["alertmanager"]["hostport"] == "https://127.0.0.1:9093"
    assert config["alertmanager"]["checkcert"] is True
    assert config["alertmanager"]["customHeaders"] == {"Authorization": "Basic " + token}
    assert config["tlsclient"] == {"cacertfile": "/etc/falcosidekick/alertmanager-ca.crt"}
    assert rendered["ca"] == (pki_dir / "ca.crt").read_text()
    if SIDEKICK_UPSTREAM.is_file():
        assert_keys_known(config, upstream_keys())
    off = yaml.safe_load(render(tmp_path, {}, {"text": CONFIG})["text"])
    assert off["alertmanager"]["hostport"] == "http://127.0.0.1:9093" and "tlsclient" not in off
    assert "customHeaders" not in off["alertmanager"]
