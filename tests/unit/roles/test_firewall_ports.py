"""The shared host firewall (fleetwatch_firewall_*): which ports each role opens, and one variable set for all.

The rules themselves are applied to real ufw and firewalld in molecule/firewall; here the per-generation port list
of the falco role is rendered from its own vars files, and the shared variables are checked to be declared once, by
the firewall entry point of roles/_common that every agent role includes.
"""

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
from localplay import ansible_playbook, failures  # noqa: E402

FALCO = REPO / "roles" / "falco"
ROLES = ["node_exporter", "falco", "falco_exporter"]


# Every case sets all three variables: facts set by one play stay for the next.
CASES = {
    "0.44.1": ({"falco_version": "0.44.1", "falco_metrics_enabled": True, "falco_metrics_port": 8765}, [8765]),
    "0.39.0-port-9000": ({"falco_version": "0.39.0", "falco_metrics_enabled": True, "falco_metrics_port": 9000}, [9000]),
    # Native metrics start at 0.39; the 0.38 drop-in generation and the legacy one serve none.
    "0.38.1": ({"falco_version": "0.38.1", "falco_metrics_enabled": True, "falco_metrics_port": 8765}, []),
    "0.31.1": ({"falco_version": "0.31.1", "falco_metrics_enabled": True, "falco_metrics_port": 8765}, []),
    "0.44.1-metrics-off": ({"falco_version": "0.44.1", "falco_metrics_enabled": False, "falco_metrics_port": 8765}, []),
    # As typed on the command line (-e key=value): the string "false" must not open the port.
    "0.44.1-string-false": ({"falco_version": "0.44.1", "falco_metrics_enabled": "false", "falco_metrics_port": "8765"},
                            []),
}


@pytest.fixture(scope="module")
def falco_ports(tmp_path_factory):
    """__falco_firewall_ports per case, from the role's defaults, vars and generation vars file (one playbook run)."""
    tmp_path = tmp_path_factory.mktemp("firewall-ports")
    plays = []
    for case, case_spec in CASES.items():
        settings = case_spec[0]
        tasks = [{"ansible.builtin.include_vars": {"file": str(FALCO / "defaults" / "main.yml")}},
                 {"ansible.builtin.include_vars": {"file": str(FALCO / "vars" / "main.yml")}},
                 # set_fact outranks include_vars, as extra vars would.
                 {"ansible.builtin.set_fact": settings},
                 {"ansible.builtin.include_vars": {"file": str(FALCO / "vars") + "/{{ __falco_generation_file }}"}},
                 {"ansible.builtin.copy": {"dest": str(tmp_path / (case + ".json")), "mode": "0600",
                                           "content": "{{ __falco_firewall_ports | to_json }}"}}]
        plays.append({"name": case, "hosts": "localhost", "gather_facts": False, "tasks": tasks})
    code, output = ansible_playbook(tmp_path, plays, {})[:2]
    assert code == 0, output
    return {case: [int(item["port"]) for item in json.loads((tmp_path / (case + ".json")).read_text())]
            for case in CASES}


@pytest.mark.parametrize("case", sorted(CASES))
def test_falco_opens_the_metrics_port_only_where_metrics_are_served(falco_ports, case):
    assert falco_ports[case] == CASES[case][1]


def spec_options(role, entry_point="main"):
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"][entry_point]["options"]


def test_the_shared_firewall_variables_are_declared_once_by_the_firewall_step():
    shared = {name for name in spec_options("_common", "firewall") if name.startswith("fleetwatch_firewall_")}
    assert len(shared) == 7
    defaults = yaml.safe_load((REPO / "roles" / "_common" / "defaults" / "main.yml").read_text())
    assert set(defaults) == shared and defaults["fleetwatch_firewall_enabled"] is False
    # No agent role keeps a copy of them, in its specs or its defaults.
    for role in ROLES:
        role_defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
        assert not shared & (set(spec_options(role)) | set(role_defaults)), role
    # The shared task file refuses misspellings against the same list.
    tasks = (REPO / "roles" / "_common" / "tasks" / "firewall_rules.yml").read_text()
    known = re.search(r"__common_firewall_known_vars: \[([^\]]*)\]", tasks).group(1)
    assert sorted(n.strip() for n in known.split(",")) == sorted(shared)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_includes_the_firewall_step_after_preflight_and_before_install(role):
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "main.yml").read_text())
    names = [next(k for k in task if k not in ("name", "when", "tags", "vars")) for task in tasks]
    step = next(i for i, task in enumerate(tasks)
                if task.get("ansible.builtin.include_role", {}).get("tasks_from") == "firewall")
    assert names[0] == "ansible.builtin.import_tasks" and tasks[0]["ansible.builtin.import_tasks"] == "preflight.yml"
    assert step == 1
    assert tasks[step]["tags"] == ["%s_firewall" % role]
    # Included on every run: the step reads fleetwatch_firewall_enabled (its default lives in _common) and skips itself.
    assert "when" not in tasks[step]
    # Each role passes its own firewalld priority slot, and no two roles share one.
    slots = {other: yaml.safe_load((REPO / "roles" / other / "tasks" / "main.yml").read_text())[1]["vars"]
             ["__common_firewall_slot"] for other in ROLES}
    assert len(set(slots.values())) == len(ROLES), slots


def test_a_caller_that_leaves_out_an_input_of_the_firewall_step_is_refused_with_its_name(tmp_path):
    include = {"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack._common", "tasks_from": "firewall"}}
    # No fleetwatch_firewall_* set: the step's own defaults (off) apply.
    play = [{"hosts": "localhost", "gather_facts": False,
             "tasks": [dict(include, vars={"__common_firewall_ports": [{"port": 9100}]})]}]
    rc, failed = failures(tmp_path, play, {})
    assert rc != 0 and len(failed) == 1 and "__common_firewall_slot" in failed[0]["msg"], failed
    play[0]["tasks"] = [dict(include, vars={"__common_firewall_ports": [{"port": 9100}], "__common_firewall_slot": 1})]
    rc, failed = failures(tmp_path, play, {})
    assert rc == 0 and failed == [], failed
