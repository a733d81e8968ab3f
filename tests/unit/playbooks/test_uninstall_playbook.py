"""playbooks/uninstall.yml and the roles' uninstall entry points: every role has one, the playbook runs them in the
reverse order of site.yml on the same groups, and it refuses to start without confirmation. The uninstall itself
runs for real in the Molecule scenario molecule/uninstall."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from localplay import REPO

PLAYBOOKS = REPO / "playbooks"
# fleet_pki writes only on the controller (the CA and host keys in fleetwatch_pki_dir), which uninstall leaves alone.
CONTROLLER_ROLES = {"fleet_pki"}
ROLES = sorted(p.name for p in (REPO / "roles").iterdir()
               if p.is_dir() and not p.name.startswith("_") and p.name not in CONTROLLER_ROLES)
# Roles that keep data and the variable (main options) holding where.
DATA_ROLES = {"prometheus": "prometheus_storage_path", "alertmanager": "alertmanager_storage_path",
              "grafana": "grafana_data_dir", "event_collector": "event_collector_store_dir",
              "falcosidekick": "falcosidekick_ui_redis_data_dir"}


def specs(role):
    return yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def uninstall_plays():
    """The plays that uninstall something (not the confirmation, not the imported reachability plays)."""
    return [play for play in yaml.safe_load((PLAYBOOKS / "uninstall.yml").read_text()) if list(role_tasks(play))]


def role_tasks(play):
    """(role, task) for each uninstall task of a play."""
    for task in play.get("tasks", []):
        ref = task.get("ansible.builtin.import_role") or task.get("ansible.builtin.include_role")
        if ref:
            yield ref["name"].rsplit(".", 1)[-1], task, ref


def test_there_are_roles():
    assert len(ROLES) >= 9, ROLES


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_an_uninstall_entry_point_declared_last(role):
    assert (REPO / "roles" / role / "tasks" / "uninstall.yml").is_file()
    entry_points = specs(role)
    assert list(entry_points)[-1] == "uninstall", list(entry_points)
    # The entry point reads the role's variables as the main one declares them.
    main, uninstall = entry_points["main"]["options"], entry_points["uninstall"]["options"] or {}
    assert {name: main.get(name) for name in uninstall} == uninstall


@pytest.mark.parametrize("role", ROLES)
def test_data_is_kept_unless_the_purge_switch_is_set(role):
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    purge = role + "_uninstall_purge_data"
    tasks = (REPO / "roles" / role / "tasks" / "uninstall.yml").read_text()
    if role in DATA_ROLES:
        assert defaults[purge] is False
        assert specs(role)["uninstall"]["options"][purge]["default"] is False
        # The data path goes only inside the purge condition.
        assert "[%s] if %s | bool else []" % (DATA_ROLES[role], purge) in tasks
    else:
        assert purge not in defaults


def test_the_playbook_uninstalls_every_role_once_in_the_reverse_order_of_site_yml():
    order = [entry[0] for play in uninstall_plays() for entry in role_tasks(play)]
    assert sorted(order) == ROLES
    site_order = []
    for entry in yaml.safe_load((PLAYBOOKS / "site.yml").read_text()):
        imported = yaml.safe_load((PLAYBOOKS / entry["ansible.builtin.import_playbook"]).read_text())
        for play in imported:
            for role in play.get("roles", []):
                site_order.append(role["role"].rsplit(".", 1)[-1])
            for task in play.get("tasks", []):
                included = task.get("ansible.builtin.include_role")
                # Another entry point (the prometheus role's unscraped_falco report) deploys nothing.
                if included and included.get("tasks_from", "main") == "main":
                    site_order.append(included["name"].rsplit(".", 1)[-1])
    site_order = [role for role in site_order if role in ROLES]
    assert order == list(reversed(site_order))


def test_each_piece_is_uninstalled_on_the_group_site_yml_deployed_it_to():
    site_patterns = {value for entry in yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
                     for name, value in (entry.get("vars") or {}).items()
                     if name not in ("fleetwatch_pki_hosts", "fleetwatch_preflight_hosts")}
    uninstall_patterns = {play["hosts"] for play in uninstall_plays()}
    assert uninstall_patterns == site_patterns


def test_every_uninstall_task_carries_its_tags_and_the_entry_point():
    for play in uninstall_plays():
        for role, task, ref in role_tasks(play):
            assert ref["tasks_from"] == "uninstall"
            assert set(task["tags"]) == {"uninstall", role + "_uninstall"}
            if "apply" in ref:
                assert set(ref["apply"]["tags"]) == set(task["tags"])


pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not found")


def run_uninstall(tmp_path, *args):
    """Run playbooks/uninstall.yml against hosts that cannot be reached (nothing listens on the loopback's discard
    port), so whatever the guard lets through changes nothing anywhere."""
    collections = tmp_path / "collections"
    link = collections / "ansible_collections" / "fleetwatch" / "falco_stack"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO)
    down = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
            "ansible_ssh_common_args": "-o ConnectTimeout=3"}
    inventory = {"all": {"vars": {"ansible_python_interpreter": sys.executable},
                         "children": {"monitoring": {"hosts": {"mon-1": down}}, "falco": {"hosts": {"agent-1": down}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_COLLECTIONS_PATH=str(collections))
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(PLAYBOOKS / "uninstall.yml"), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("confirm", [[], ["-e", "fleetwatch_uninstall_confirm=no"], ["-e", "fleetwatch_uninstall_confirm="]])
def test_without_confirmation_the_playbook_stops_before_any_host(tmp_path, confirm):
    rc, output = run_uninstall(tmp_path, *confirm)
    assert rc != 0, output
    assert "Nothing was changed. To go ahead, run it again with -e fleetwatch_uninstall_confirm=yes" in output, output
    # The run ended with the guard: not even the reachability round trip started.
    assert "Find the hosts that answer" not in output, output
    assert "mon-1" not in output and "agent-1" not in output, output


def test_with_confirmation_the_playbook_goes_on_to_the_hosts(tmp_path):
    rc, output = run_uninstall(tmp_path, "-e", "fleetwatch_uninstall_confirm=yes")
    assert "Find the hosts that answer" in output, output
    # The hosts do not answer: left out and reported, the run fails.
    assert rc != 0, output
    assert "Left out because they did not answer: mon-1, agent-1" in output or \
        "Left out because they did not answer: agent-1, mon-1" in output, output


def test_a_role_tag_selects_that_role_alone_and_keeps_the_guard_and_the_reachability_check(tmp_path):
    rc, output = run_uninstall(tmp_path, "--list-tasks", "--tags", "falco_exporter_uninstall")
    assert rc == 0, output
    assert "Refuse to uninstall without fleetwatch_uninstall_confirm=yes" in output
    assert "One round trip" in output and "Fail if any host was unreachable" in output
    assert "Remove the container" in output
    for other in ("Remove the Falco package", "Restart rsyslog without the forwarding", "Remove the package"):
        assert other not in output, other
