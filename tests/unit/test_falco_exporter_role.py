"""Role falco_exporter: its preflight run for real on this machine, and its container definition rendered.

Only the role's preflight runs here (never the install or run phases): no falco-exporter image can be pulled and
no Falco with gRPC runs on these machines. See docs/falco_exporter.md for what is and isn't exercised.
"""

import json
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from localplay import results, run_json

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "falco_exporter"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    if not shutil.which("ansible-playbook"):
        pytest.skip("ansible-playbook not on PATH (activate the venv: . scripts/lib.sh; activate_venv)")
    if not shutil.which("podman"):
        pytest.skip("podman is not installed: preflight checks the container engine")
    return tmp_path_factory.mktemp("falco_exporter")


@pytest.fixture(scope="module")
def falco_socket(workdir):
    """A listening unix socket standing in for Falco's gRPC socket (a FIXTURE: nothing answers gRPC on it)."""
    path = workdir / "run-falco" / "falco.sock"
    path.parent.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    yield path
    server.close()


def preflight(workdir, role_vars, *args, render_to=None):
    """Run the preflight play (preflight_play); returns (rc, the messages of what failed, the JSON callback's report).
    Refusals are read from the failed results' messages, whitespace folded as the console would show them."""
    rc, report, _output = run_json(workdir, preflight_play(render_to), role_vars, *args)
    refused = []
    for result in results(report):
        if result.get("failed") and not result.get("ignore_errors"):
            items = [item for item in result.get("results", []) if item.get("failed")]
            refused += [" ".join(str(source.get("msg", "")).split()) for source in items or [result]]
    return rc, refused, report


def refused_with(refused, *words):
    """Whether one message says all of words."""
    return any(all(" ".join(w.split()) in message for w in words) for message in refused)


def preflight_play(render_to=None):
    """Only the role's preflight (and, when asked, a file with what the run phase would receive)."""
    tasks = [{"name": "Preflight of role falco_exporter", "ansible.builtin.include_role": {
        "name": "fleetwatch.falco_stack.falco_exporter", "tasks_from": "preflight.yml", "public": True}}]
    if render_to:
        tasks.append({"name": "Write what run.yml gets", "check_mode": False, "ansible.builtin.copy": {
            "dest": str(render_to), "mode": "0600", "content":
            "{{ __falco_exporter_container | to_json }}"}})
    return [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]


@pytest.mark.parametrize("falco_vars", [{}, {"falco_version": "0.44.1"}, {"falco_version": "0.45.0"}],
                         ids=["default falco_version", "0.44.1", "0.45.0"])
def test_falco_044_and_later_is_refused_with_a_pointer_to_native_metrics(workdir, falco_vars):
    rc, refused, report = preflight(workdir, falco_vars)
    assert rc != 0
    assert refused_with(refused, "removed in 0.44.0", "falco_metrics_enabled: true", "native metrics"), refused
    assert report["stats"]["localhost"]["changed"] == 0


def test_falco_without_grpc_is_refused(workdir, falco_socket):
    rc, refused, _report = preflight(workdir, {
        "falco_version": "0.43.1", "falco_grpc_enabled": False, "falco_exporter_client_socket": "unix://%s" % falco_socket})
    assert rc != 0
    assert refused_with(refused, "falco_grpc_enabled is false"), refused


@pytest.mark.parametrize("value,refused", [("false", True), ("no", True), ("true", False)])
def test_falco_grpc_enabled_from_the_command_line_is_a_boolean(workdir, falco_socket, value, refused):
    # -e key=value passes a string: "false" must refuse like false, "true" must pass like true.
    rc, messages, _report = preflight(workdir, {
        "falco_version": "0.43.1", "falco_exporter_client_socket": "unix://%s" % falco_socket},
        "-e", "falco_grpc_enabled=" + value, "--check")
    assert refused_with(messages, "falco_grpc_enabled is false") == refused, messages
    assert (rc != 0) == refused, messages


def test_missing_socket_is_refused_and_named(workdir):
    missing = workdir / "nowhere" / "falco.sock"
    rc, refused, _report = preflight(workdir, {
        "falco_version": "0.43.1", "falco_exporter_client_socket": "unix://%s" % missing})
    assert rc != 0
    assert refused_with(refused, "Falco's gRPC socket %s is not there" % missing, "falco_grpc_enabled: true"), refused


def test_misspelled_variable_is_refused_with_a_suggestion(workdir):
    rc, refused, _report = preflight(workdir, {
        "falco_version": "0.43.1", "falco_exporter_listen_adress": "10.0.0.5:9376"})
    assert rc != 0
    assert refused_with(refused, "falco_exporter_listen_adress (did you mean falco_exporter_listen_address?)"), refused


@pytest.mark.parametrize("bad,needle", [
    ({"falco_exporter_listen_address": "9376"}, "must be HOST:PORT, port 1-65535"),
    ({"falco_exporter_probes_listen_address": "0.0.0.0:0"},
     "must be HOST:PORT, port 1-65535 (got '0.0.0.0:9376', '0.0.0.0:0')"),
    ({"falco_exporter_client_socket": "falco-host:5060"}, "must be empty or 'unix:///path'"),
])
def test_invalid_settings_are_refused(workdir, bad, needle):
    rc, refused, _report = preflight(workdir, dict({"falco_version": "0.43.1"}, **bad))
    assert rc != 0
    assert refused_with(refused, needle), refused


def test_legacy_falco_with_its_socket_passes_preflight_and_renders_the_tutorial_container(workdir, falco_socket):
    out = workdir / "render-socket.json"
    rc, refused, _report = preflight(workdir, {
        "falco_version": "0.43.1", "falco_exporter_client_socket": "unix://%s" % falco_socket,
        "falco_exporter_listen_address": "192.168.1.16:9376"}, render_to=out)
    assert rc == 0, refused
    rendered = json.loads(out.read_text())
    assert rendered["image"] == "docker.io/falcosecurity/falco-exporter:0.8.7"
    assert rendered["command"] == ["--listen-address=192.168.1.16:9376", "--probes-listen-address=127.0.0.1:19376",
                                   "--client-socket=unix://%s" % falco_socket, "--timeout=2m"]
    assert rendered["volumes"] == ["%s:%s" % (falco_socket.parent, falco_socket.parent)]
    # _common's container tasks add the tutorial's host network and restart policy; the image's own user.
    assert (rendered["engine"], rendered["name"]) == ("podman", "falco-exporter")
    assert "user" not in rendered and "pid" not in rendered


@pytest.mark.parametrize("version,socket_url,volume", [
    ("0.31.1", "unix:///var/run/falco.sock", "/var/run/falco.sock:/var/run/falco.sock"),
    ("0.32.2", "unix:///var/run/falco.sock", "/var/run/falco.sock:/var/run/falco.sock"),
    ("0.33.0", "unix:///run/falco/falco.sock", "/run/falco:/run/falco"),
    ("0.43.1", "unix:///run/falco/falco.sock", "/run/falco:/run/falco"),
])
def test_socket_follows_the_falco_generation(workdir, version, socket_url, volume):
    out = workdir / ("render-%s.json" % version)
    # check mode: the socket is not looked for (Falco is not installed here)
    rc, refused, _report = preflight(workdir, {"falco_version": version}, "--check", render_to=out)
    assert rc == 0, refused
    rendered = json.loads(out.read_text())
    assert "--client-socket=" + socket_url in rendered["command"]
    assert rendered["volumes"] == [volume]


def test_listen_address_default_uses_the_shared_port():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["falco_exporter_listen_address"].endswith(":9376")


TLS_ON = {"falco_exporter_tls_enabled": True, "falco_exporter_tls_cert": "PEM cert", "falco_exporter_tls_key": "PEM key"}
UPSTREAM_REFUSED = "falco_exporter_tls_upstream_address must be a loopback HOST:PORT, port 1-65535"


@pytest.mark.parametrize("settings,words", [
    ({"falco_exporter_tls_enabled": True}, "needs falco_exporter_tls_cert and falco_exporter_tls_key"),
    ({"falco_exporter_basic_auth_users": {"prometheus": "pw"}}, "falco_exporter_basic_auth_users needs"),
    (dict(TLS_ON, falco_exporter_basic_auth_users={"prometheus": ""}), "a non-empty password for every user"),
    (dict(TLS_ON, falco_exporter_basic_auth_users={"a b": "pw"}), "plain user names"),
    (dict(TLS_ON, falco_exporter_tls_upstream_address="0.0.0.0:19377"), UPSTREAM_REFUSED),
    (dict(TLS_ON, falco_exporter_tls_upstream_address="127.0.0.1:0"), UPSTREAM_REFUSED),
    (dict(TLS_ON, falco_exporter_tls_upstream_address="localhost:65536"), UPSTREAM_REFUSED),
    (dict(TLS_ON, falco_exporter_tls_upstream_address="127.0.0.1:9376"), "on another port than"),
], ids=["tls without cert", "users without tls", "empty password", "odd user name", "public upstream",
        "upstream port 0", "upstream port above 65535", "same port"])
def test_tls_proxy_settings_are_refused_with_the_variable_named(workdir, settings, words):
    rc, refused, report = preflight(workdir, dict(settings, falco_version="0.43.1"))
    assert rc != 0
    assert refused_with(refused, "Invalid TLS proxy settings", words), refused
    assert report["stats"]["localhost"]["changed"] == 0


def test_valid_tls_proxy_settings_pass_on_this_debian_host(workdir):
    # The proxy's checks pass (this machine is Debian), so preflight goes on to the Falco version check.
    rc, refused, report = preflight(workdir, dict(TLS_ON, falco_exporter_basic_auth_users={"p": "pw"}))
    # The one refusal is the version's: the proxy's checks passed, the Debian family's too, on the distribution
    # read for it.
    assert rc != 0 and len(refused) == 1 and "removed in 0.44.0" in refused[0], refused
    read = [r for r in results(report, "ansible.builtin.setup") if not r.get("skipped")]
    assert [r["ansible_facts"]["ansible_os_family"] for r in read] == ["Debian"], read
