"""Task file _common/web_config (Prometheus' and Alertmanager's web TLS and basic auth), run for real on this machine
against a temporary directory, with the inspection the roles pass it: what is written, checked and skipped."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from localplay import NEEDS_ANSIBLE_PLAYBOOK, results, run_json  # noqa: E402

PASSWORD = "web-secret-4kQz"

pytestmark = [
    NEEDS_ANSIBLE_PLAYBOOK,
    pytest.mark.skipif(not Path("/usr/bin/promtool").exists() or shutil.which("openssl") is None,
                       reason="needs Debian's prometheus package (promtool) and openssl: scripts/setup.sh installs them"),
]


def key_and_cert(tmp_path, name):
    key, cert = tmp_path / (name + ".key"), tmp_path / (name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=" + name],
                   check=True, capture_output=True)
    return key.read_text(), cert.read_text()


def web_config(tmp_path, web_dir, web):
    paths = [str(web_dir / name) for name in ("web.crt", "web.key", "web-config.yml")]
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"fleetwatch.falco_stack.host_inspect": {"paths": paths}, "register": "inspection"},
        {"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack._common", "tasks_from": "web_config"},
         "vars": {"__common_web": dict({"dir": str(web_dir), "group": "daemon", "validate": "/usr/bin/promtool check web-config %s",
                                        "inspected": "{{ inspection.paths }}"}, **web)}}]}]
    rc, report, output = run_json(tmp_path, play, {})
    assert rc == 0, output[-3000:]
    return output, report


def copied(report):
    """How many web files the run handed to the copy module, changed or not (a round trip each): the items of its
    loop (hidden by no_log, but there one result each)."""
    return sum(len(result.get("results", [])) for result in results(report, "ansible.builtin.copy"))


def test_only_differing_web_files_are_written_and_a_converged_server_gets_no_write(tmp_path):
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    key, cert = key_and_cert(tmp_path, "first")
    settings = {"tls_enabled": True, "cert": cert, "key": key, "users": {"scraper": PASSWORD}}
    output, report = web_config(tmp_path, web_dir, settings)
    assert copied(report) == 3
    assert (web_dir / "web.crt").read_text() == cert.strip() + "\n"
    assert (web_dir / "web.key").read_text() == key.strip() + "\n"
    config = (web_dir / "web-config.yml").read_text()
    assert "tls_server_config" in config and "scraper: $2" in config and PASSWORD not in config
    assert {p.name: (oct(p.stat().st_mode & 0o777), p.group()) for p in web_dir.iterdir()} == {
        "web.crt": ("0o644", "daemon"), "web.key": ("0o640", "daemon"), "web-config.yml": ("0o640", "daemon")}
    assert PASSWORD not in output

    output, report = web_config(tmp_path, web_dir, settings)
    assert copied(report) == 0 and report["stats"]["localhost"]["changed"] == 0, output[-3000:]

    # A new certificate and key: those two are written, the configuration (same users, same paths) is not.
    key2, cert2 = key_and_cert(tmp_path, "second")
    output, report = web_config(tmp_path, web_dir, dict(settings, cert=cert2, key=key2))
    assert copied(report) == 2, output[-3000:]
    assert (web_dir / "web.crt").read_text() == cert2.strip() + "\n"
    assert (web_dir / "web-config.yml").read_text() == config

    # A changed mode is a difference too.
    (web_dir / "web.key").chmod(0o600)
    output, report = web_config(tmp_path, web_dir, dict(settings, cert=cert2, key=key2))
    assert copied(report) == 1 and oct((web_dir / "web.key").stat().st_mode & 0o777) == "0o640", output[-3000:]

    # TLS off, users kept: certificate and key go, the configuration keeps only the users.
    output, report = web_config(tmp_path, web_dir, dict(settings, tls_enabled=False))
    assert sorted(p.name for p in web_dir.iterdir()) == ["web-config.yml"]
    assert "tls_server_config" not in (web_dir / "web-config.yml").read_text()
