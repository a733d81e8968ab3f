"""site.yml: a host that does not answer is left out and reported at the end; the others are deployed."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from localplay import REPO

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not found")
PLAYBOOKS = REPO / "playbooks"


def test_every_deploying_play_of_site_yml_runs_only_on_reachable_hosts():
    site = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
    imports = [entry["ansible.builtin.import_playbook"] for entry in site]
    assert imports[0] == "reachable.yml" and imports[-1] == "report_unreachable.yml"
    for entry in site[1:-1]:
        patterns = list(entry["vars"].values())
        assert patterns and all(p.endswith(":&fleetwatch_reachable") for p in patterns), entry


def run_site_shape(tmp_path, hosts, failing=()):
    """Run the shape of site.yml (reachable.yml, a deploying play restricted by import vars,
    report_unreachable.yml) against the given falco hosts, the deploy failing on the hosts named in failing;
    return (exit code, output)."""
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump([{
        "name": "Deploy", "hosts": "{{ fleetwatch_falco_hosts | default('falco') }}", "gather_facts": False,
        "tasks": [{"name": "Fail part-way", "ansible.builtin.fail": {"msg": "injected failure"},
                   "when": "inventory_hostname in %r" % list(failing)},
                  {"name": "Mark", "ansible.builtin.copy": {"dest": str(tmp_path) + "/deployed-{{ inventory_hostname }}",
                                                            "content": "x", "mode": "0600"}}]}]))
    (tmp_path / "site.yml").write_text(yaml.safe_dump([
        {"ansible.builtin.import_playbook": str(PLAYBOOKS / "reachable.yml")},
        {"ansible.builtin.import_playbook": "deploy.yml",
         "vars": {"fleetwatch_falco_hosts": "falco:&fleetwatch_reachable"}},
        {"ansible.builtin.import_playbook": str(PLAYBOOKS / "report_unreachable.yml")}]))
    inventory = {"all": {"vars": {"ansible_python_interpreter": sys.executable},
                         "children": {"falco": {"hosts": hosts}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "site.yml")],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_when_every_host_answers_all_are_deployed_and_the_run_succeeds(tmp_path):
    rc, output = run_site_shape(tmp_path, {"up-1": {"ansible_connection": "local"},
                                           "up-2": {"ansible_connection": "local"}})
    assert rc == 0, output
    assert "Every host answered." in output
    assert sorted(p.name for p in tmp_path.glob("deployed-*")) == ["deployed-up-1", "deployed-up-2"]


def test_an_unreachable_host_is_left_out_reported_and_fails_the_run(tmp_path):
    rc, output = run_site_shape(tmp_path, {
        "up-1": {"ansible_connection": "local"},
        "up-2": {"ansible_connection": "local"},
        # Nothing listens on the discard port of the loopback: the connection is refused at once.
        "down-1": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
                   "ansible_ssh_common_args": "-o ConnectTimeout=3"}})
    assert sorted(p.name for p in tmp_path.glob("deployed-*")) == ["deployed-up-1", "deployed-up-2"], output
    assert rc != 0, output
    assert "Left out because they did not answer: down-1. Every other host was deployed." in output, output


def test_a_host_that_fails_part_way_is_named_at_the_end_with_the_unreachable_ones(tmp_path):
    rc, output = run_site_shape(tmp_path, {
        "up-1": {"ansible_connection": "local"},
        "up-2": {"ansible_connection": "local"},
        "down-1": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
                   "ansible_ssh_common_args": "-o ConnectTimeout=3"}}, failing=["up-2"])
    assert sorted(p.name for p in tmp_path.glob("deployed-*")) == ["deployed-up-1"], output
    assert rc != 0, output
    assert "Left out because they did not answer: down-1." in output, output
    assert "Failed or lost during the run (see the errors above): up-2. Every other host was deployed." in output, output


@pytest.mark.parametrize("playbook", ["falco.yml", "node_exporter.yml", "falco_exporter.yml"])
def test_fleet_plays_roll_out_in_batches_with_a_failure_threshold(playbook):
    for play in yaml.safe_load((PLAYBOOKS / playbook).read_text()):
        assert play["serial"] == "{{ fleetwatch_agent_batch | default('25%') }}"
        assert play["max_fail_percentage"] == "{{ fleetwatch_agent_max_fail_percentage | default(20) }}"
