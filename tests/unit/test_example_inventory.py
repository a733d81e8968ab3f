"""inventories/example: what Prometheus would scrape for the documented mixed fleet, and that one line adds a host."""

import shutil

import pytest

from localplay import PROMETHEUS_FACTS, REPO, render_role_vars, target_groups

EXAMPLE = REPO / "inventories" / "example"
pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not found")
# The monitoring host is this machine for the render; nothing else is contacted.
LOCAL = {"ansible_connection": "local", "ansible_become": False}


def scrape(tmp_path, hosts_text):
    for sub in ("group_vars", "host_vars"):
        shutil.copytree(EXAMPLE / sub, tmp_path / sub)
    rendered = render_role_vars(tmp_path, "prometheus", {"files": "__prometheus_scrape.files"}, LOCAL,
                                inventory=hosts_text, host="monitor-1", facts=PROMETHEUS_FACTS)
    return {job: {g["labels"]["host"]: g for g in groups} for job, groups in target_groups(rendered["files"]).items()}


def test_each_generation_is_scraped_on_its_own_path(tmp_path):
    jobs = scrape(tmp_path, (EXAMPLE / "hosts.yml").read_text())
    assert set(jobs["node-exporter"]) == {"monitor-1", "fedora-legacy", "pi-edge", "web-aws-1"}
    assert set(jobs["falco"]) == {"pi-edge", "web-aws-1"}
    assert set(jobs["falco-exporter"]) == {"fedora-legacy"}
    assert jobs["falco"]["web-aws-1"]["labels"] == {"host": "web-aws-1", "cloud": "aws", "env": "prod"}
    assert jobs["falco-exporter"]["fedora-legacy"]["targets"] == ["fedora-legacy:9376"]


def test_adding_a_host_is_one_line(tmp_path):
    hosts = (EXAMPLE / "hosts.yml").read_text()
    anchor = "        web-aws-1:"
    assert anchor in hosts
    hosts = hosts.replace(anchor, "        web-gcp-1: {ansible_host: 203.0.113.7, cloud: gcp}\n" + anchor)
    jobs = scrape(tmp_path, hosts)
    assert jobs["falco"]["web-gcp-1"]["labels"] == {"host": "web-gcp-1", "cloud": "gcp"}
    assert "web-gcp-1" in jobs["node-exporter"]
