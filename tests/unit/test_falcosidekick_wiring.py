"""The documented wiring: the group_vars line of docs/falcosidekick.md gives every Falco agent the URL of falcosidekick.

The line is read from the docs (between the WIRING markers), put into a temporary inventory's group_vars/falco.yml,
and resolved by ansible for each agent, so the docs cannot drift from what works.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "falcosidekick.md"
pytestmark = pytest.mark.skipif(shutil.which("ansible") is None, reason="ansible not on PATH (activate the venv)")


def documented_group_vars():
    block = re.search(r"<!-- BEGIN WIRING.*?```yaml\n(.*?)```.*?<!-- END WIRING -->", DOC.read_text(), re.S)
    assert block, "docs/falcosidekick.md lost its WIRING block"
    return block.group(1)


def resolve(tmp_path, sidekick_vars):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "group_vars" / "falco.yml").write_text(documented_group_vars())
    hosts = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                     "children": {"monitoring": {"hosts": {"mon-1": sidekick_vars}},
                                  "falcosidekick": {"hosts": {"mon-1": {}}},
                                  "falco": {"hosts": {"web-1": {}, "db-1": {}}}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    proc = subprocess.run(["ansible", "falco", "-i", str(inventory), "-m", "ansible.builtin.debug",
                           "-a", "var=falco_http_output_url", "-o"], capture_output=True, text=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    urls = {}
    for line in proc.stdout.splitlines():
        host, payload = line.split(" | SUCCESS => ", 1)
        urls[host.strip()] = json.loads(payload)["falco_http_output_url"]
    return urls


def test_agents_get_the_monitoring_hosts_address_and_port(tmp_path):
    urls = resolve(tmp_path, {"ansible_host": "10.9.8.7", "falcosidekick_listen_port": 2901})
    assert urls == {"web-1": "http://10.9.8.7:2901/", "db-1": "http://10.9.8.7:2901/"}


def test_defaults_are_the_inventory_name_and_port_2801(tmp_path):
    urls = resolve(tmp_path, {})
    assert urls == {"web-1": "http://mon-1:2801/", "db-1": "http://mon-1:2801/"}
    # What role falco's preflight accepts (roles/falco/tasks/preflight.yml): an http(s) URL.
    assert all(re.match(r"^https?://", url) for url in urls.values())
