"""playbooks/preflight.yml, stage one of site.yml: every host checked before any host changes, one list of every
host's problems, then the rollout (here a stand-in play that leaves a marker per host) only when nothing is refused.

The hosts are local-connection stand-ins; the checks are the node_exporter role's real ones (read-only on this
machine). molecule/faults runs the real site.yml on two lab hosts.
"""

import json
import shutil
import sys

import pytest
import yaml

from localplay import REPO, run_playbook

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not found")
PLAYBOOKS = REPO / "playbooks"
DOWN = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9,
        "ansible_ssh_common_args": "-o ConnectTimeout=3"}


def run_site_shape(tmp_path, hosts, *args):
    """site.yml's shape with the real reachable.yml, preflight.yml and report_unreachable.yml around a stand-in
    rollout play; node_exporter is checked on every host. Returns (exit code, JSON report, deployed hosts)."""
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump([{
        "name": "Deploy", "hosts": "{{ fleetwatch_node_exporter_hosts }}", "gather_facts": False,
        "tasks": [{"name": "Mark", "ansible.builtin.copy": {
            "dest": str(tmp_path) + "/deployed-{{ inventory_hostname }}", "content": "x", "mode": "0600"}}]}]))
    patterns = {"fleetwatch_preflight_hosts": "all:&fleetwatch_reachable",
                "fleetwatch_node_exporter_hosts": "all:&fleetwatch_reachable"}
    (tmp_path / "site.yml").write_text(yaml.safe_dump([
        {"ansible.builtin.import_playbook": str(PLAYBOOKS / "reachable.yml")},
        {"ansible.builtin.import_playbook": str(PLAYBOOKS / "preflight.yml"), "vars": patterns},
        {"ansible.builtin.import_playbook": "deploy.yml", "vars": patterns},
        {"ansible.builtin.import_playbook": str(PLAYBOOKS / "report_unreachable.yml")}]))
    inventory = {"all": {"vars": {"ansible_python_interpreter": sys.executable, "ansible_connection": "local"},
                         "hosts": hosts}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    proc = run_playbook(tmp_path, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "site.yml"), *args,
                        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_HOST_KEY_CHECKING": "0"})
    try:
        report = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
    except ValueError:
        raise AssertionError("no JSON report:\n" + (proc.stdout + proc.stderr)[-3000:])
    deployed = sorted(p.name[len("deployed-"):] for p in tmp_path.glob("deployed-*"))
    return proc.returncode, report, deployed


def preflight_lists(report):
    """Every result of the list task: a message that is a list, its first line saying what the preflight found."""
    return [result for play in report["plays"] for task in play["tasks"] for result in task["hosts"].values()
            if isinstance(result.get("msg"), list) and result["msg"]
            and result["msg"][0].startswith(("The preflight refused", "All "))]


def plays_run(report):
    return [play["play"]["name"] for play in report["plays"] if play["tasks"]]


TWO_PROBLEMS = {
    # A misspelled variable on one host, a combination the role refuses on another, a clean third.
    "typo-1": {"node_exporter_web_listen_adress": "0.0.0.0:9101"},
    "combo-1": {"node_exporter_basic_auth_users": {"prometheus": "secret"}},
    "clean-1": {},
}


def test_two_hosts_with_different_problems_stop_the_run_before_any_host_changes_with_one_list(tmp_path):
    rc, report, deployed = run_site_shape(tmp_path, TWO_PROBLEMS)
    assert rc != 0
    assert deployed == []
    assert "Deploy" not in plays_run(report)
    assert all(stats["changed"] == 0 for stats in report["stats"].values()), report["stats"]
    [listing] = preflight_lists(report)
    assert listing["failed"]
    lines = listing["msg"]
    assert lines[0].startswith("The preflight refused 2 of 3 host(s); no role has changed anything on any host")
    by_host = {line.split(": ", 1)[0]: line for line in lines[1:]}
    assert len(lines) == 3 and sorted(by_host) == ["combo-1", "typo-1"], lines
    assert by_host["typo-1"].startswith("typo-1: node_exporter: Unknown variable(s) node_exporter_web_listen_adress")
    assert "did you mean node_exporter_web_listen_address?" in by_host["typo-1"]
    assert by_host["combo-1"].startswith("combo-1: node_exporter: ")
    assert "node_exporter_basic_auth_users needs node_exporter_tls_enabled: true" in by_host["combo-1"]


def test_leave_out_deploys_the_clean_hosts_and_names_the_refused_ones_at_the_end(tmp_path):
    rc, report, deployed = run_site_shape(tmp_path, TWO_PROBLEMS, "-e", "fleetwatch_preflight_refused=leave_out")
    assert deployed == ["clean-1"]
    [listing] = preflight_lists(report)
    assert not listing.get("failed") and "are left out, the other 1 are deployed" in listing["msg"][0]
    assert rc != 0
    ends = [result["msg"] for play in report["plays"] for task in play["tasks"]
            for result in task["hosts"].values() if "Failed or lost during the run" in str(result.get("msg"))]
    assert len(ends) == 1 and "typo-1" in ends[0] and "combo-1" in ends[0] and "clean-1" not in ends[0], ends


def test_a_host_that_does_not_answer_is_named_but_does_not_stop_the_others(tmp_path):
    rc, report, deployed = run_site_shape(tmp_path, {"clean-1": {}, "clean-2": {}, "down-1": DOWN})
    assert deployed == ["clean-1", "clean-2"]
    [listing] = preflight_lists(report)
    assert listing["msg"] == [
        "All 2 checked host(s) passed every role's checks.",
        "down-1: not checked: did not answer the reachability check (left out, named again at the end)"]
    # report_unreachable.yml still fails the run at the end for it, as before.
    assert rc != 0


def test_a_clean_fleet_is_deployed(tmp_path):
    rc, report, deployed = run_site_shape(tmp_path, {"clean-1": {}, "clean-2": {}})
    assert rc == 0, report["stats"]
    assert deployed == ["clean-1", "clean-2"]
    [listing] = preflight_lists(report)
    assert listing["msg"] == ["All 2 checked host(s) passed every role's checks."]


def test_an_unknown_choice_for_what_to_do_with_refused_hosts_is_refused(tmp_path):
    rc, report, deployed = run_site_shape(tmp_path, {"clean-1": {}}, "-e", "fleetwatch_preflight_refused=skip")
    assert rc != 0 and deployed == []
    failed = [result["msg"] for play in report["plays"] for task in play["tasks"]
              for result in task["hosts"].values() if result.get("failed")]
    assert failed == ["fleetwatch_preflight_refused must be stop or leave_out (got 'skip')."]


# --- The shape: one role check per rollout playbook, on the same hosts --------------------------------------------

def load(name):
    return yaml.safe_load((PLAYBOOKS / name).read_text())


def rollout_plays():
    """(hosts pattern, role, when) for every role the rollout playbooks deploy."""
    found = []
    for name in ("monitoring.yml", "falcosidekick.yml", "node_exporter.yml", "falco.yml", "events.yml",
                 "falco_exporter.yml", "pki.yml"):
        for play in load(name):
            for role in play.get("roles", []):
                found.append((play["hosts"], role["role"].split(".")[-1], role.get("when")))
            for task in play.get("tasks", []):
                found.append((play["hosts"], task["ansible.builtin.include_role"]["name"].split(".")[-1],
                              task.get("when")))
    return found


def preflight_checks():
    found = []
    for play in load("preflight.yml")[:-1]:
        for task in play["tasks"]:
            assert task["ansible.builtin.include_role"]["tasks_from"] == "preflight"
            assert task["tags"] == ["always"]
            found.append((play["hosts"], task["vars"]["__common_preflight_role"], task.get("when")))
    return found


def test_preflight_checks_every_role_on_the_hosts_and_under_the_switch_its_rollout_play_uses():
    assert sorted(preflight_checks()) == sorted(rollout_plays())


def test_site_yml_runs_the_preflight_after_the_certificates_and_before_any_rollout_with_the_same_host_table():
    site = load("site.yml")
    imports = [entry["ansible.builtin.import_playbook"] for entry in site]
    assert imports[:4] == ["reachable.yml", "pki.yml", "preflight.yml", "monitoring.yml"]
    tables = [entry["vars"] for entry in site[1:-1]]
    assert all(table == tables[0] for table in tables)
    used = {"fleetwatch_%s_hosts" % name for name in (
        "pki", "preflight", "monitoring", "falcosidekick", "node_exporter", "falco", "event_collector",
        "event_forwarder", "falco_exporter")}
    assert set(tables[0]) == used


# --- Read-only: what the preflight stage runs on a host cannot change it -------------------------------------------

READ_ONLY = {"assert", "set_fact", "include_vars", "setup", "stat", "slurp", "validate_argument_spec", "debug", "fail",
             "import_tasks", "include_role", "host_inspect"}
PROBES = {"command", "raw"}  # allowed as probes: check_mode false (they run in check mode) and changed_when false
COMMON_CHECKS = {"unknown_vars", "fleet_tls", "container_engine", "inspect"}


def module_of(task):
    names = [key for key in task if key.startswith(("ansible.builtin.", "fleetwatch.", "community.", "containers."))]
    assert len(names) == 1, task
    return names[0]


def preflight_tasks(path):
    """Every task of a preflight file, following its import_tasks and its includes of _common's checks."""
    yield from preflight_tasks_from(yaml.safe_load(path.read_text()) or [], path)


def preflight_tasks_from(tasks, path):
    for task in tasks:
        if "block" in task:
            for key in ("block", "rescue", "always"):
                yield from preflight_tasks_from(task.get(key, []), path)
            continue
        module = module_of(task)
        yield path, task, module
        if module.endswith("import_tasks"):
            yield from preflight_tasks(path.parent / task[module])
        elif module.endswith("include_role"):
            assert task[module]["name"] == "fleetwatch.falco_stack._common", (path, task)
            assert task[module]["tasks_from"] in COMMON_CHECKS, (path, task)
            yield from preflight_tasks(REPO / "roles" / "_common" / "tasks" / ("%s.yml" % task[module]["tasks_from"]))


@pytest.mark.parametrize("role", sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/tasks/preflight.yml")
                                        if p.parent.parent.name != "_common"))
def test_every_task_of_a_roles_checks_only_reads_the_host(role):
    for path, task, module in preflight_tasks(REPO / "roles" / role / "tasks" / "preflight.yml"):
        short = module.split(".")[-1]
        if short in PROBES:
            assert task.get("check_mode") is False and task.get("changed_when") is False, (path, task["name"])
        else:
            assert short in READ_ONLY, (path, task["name"], module)
