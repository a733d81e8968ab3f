"""The fleet preflight's filters: a failed check's result into list entries, every host's entries into one list."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.preflight_problems import (
    FilterModule as ProblemsFilters, preflight_problems)
from ansible_collections.fleetwatch.falco_stack.plugins.filter.preflight_report import (
    FilterModule as ReportFilters, preflight_report)

SPEC = {"node_exporter_mode": {"type": "str", "choices": ["package", "container"]},
        "node_exporter_tls_enabled": {"type": "bool"}, "node_exporter_tls_cert": {"type": "str"}}


def test_each_argument_spec_error_is_an_entry_naming_its_variables():
    result = {"failed": True, "msg": "Validation of arguments failed:\n...", "argument_spec_data": SPEC,
              "argument_errors": ["value of node_exporter_mode must be one of: package, container, got: dockr",
                                  "argument 'node_exporter_tls_enabled' is of type str and we were unable to convert "
                                  "to bool: 'maybe' is not a valid boolean"]}
    assert preflight_problems(result, "node_exporter") == [
        {"role": "node_exporter", "check": "argument specs", "variables": ["node_exporter_mode"],
         "message": "value of node_exporter_mode must be one of: package, container, got: dockr"},
        {"role": "node_exporter", "check": "argument specs", "variables": ["node_exporter_tls_enabled"],
         "message": "argument 'node_exporter_tls_enabled' is of type str and we were unable to convert to bool: "
                    "'maybe' is not a valid boolean"}]


def test_a_passed_validation_registered_without_failing_has_no_errors_key_and_a_missing_required_one_is_named():
    result = {"argument_spec_data": {"grafana_admin_password": {"required": True}},
              "argument_errors": ["missing required arguments: grafana_admin_password"], "failed": False}
    [problem] = preflight_problems(result, "grafana")
    assert problem["variables"] == ["grafana_admin_password"]


def test_an_assert_gives_one_entry_with_its_message_folded_onto_one_line():
    result = {"failed": True, "assertion": "x", "msg": "falco_version must be a release\n  such as 0.44.1"}
    assert preflight_problems(result, "falco", "Check falco_version") == [
        {"role": "falco", "check": "Check falco_version", "variables": [],
         "message": "falco_version must be a release such as 0.44.1"}]


def test_a_loop_gives_one_entry_per_failed_item():
    result = {"failed": True, "msg": "One or more items failed", "results": [
        {"failed": False, "msg": "All assertions passed"},
        {"failed": True, "msg": "falco_rulesets item 2 needs a name"},
        {"failed": True, "msg": "falco_rulesets item 3 needs a name"},
        "not a result"]}
    assert [p["message"] for p in preflight_problems(result, "falco", "Check")] == [
        "falco_rulesets item 2 needs a name", "falco_rulesets item 3 needs a name"]


def test_a_list_message_an_unreachable_result_and_no_message_still_read_as_sentences():
    assert preflight_problems({"msg": ["a", "b"]}, "r")[0]["message"] == "a; b"
    assert preflight_problems({"unreachable": True, "msg": "ssh: timeout"}, "r")[0]["message"] == \
        "did not answer: ssh: timeout"
    assert "without a message" in preflight_problems({"failed": True}, "r")[0]["message"]


def test_a_result_that_is_not_a_dict_is_refused():
    with pytest.raises(AnsibleFilterError):
        preflight_problems("boom", "r")


def problem(role, message):
    return {"role": role, "check": "c", "variables": [], "message": message}


HOSTVARS = {
    "mon-1": {"__fleetwatch_preflight_problems": [problem("prometheus", "Unknown variable(s) prometheus_retention_tim")]},
    "agent-1": {"__fleetwatch_preflight_problems": [], "__fleetwatch_preflight_checking": ""},
    "agent-2": {"__fleetwatch_preflight_problems": [problem("node_exporter", "basic auth needs TLS"),
                                                    problem("falco", "falco_version 0.35.0")]},
    "agent-3": {"__fleetwatch_preflight_checking": "falco"},
    "agent-4": {},
}
HOSTS = ["mon-1", "agent-1", "agent-2", "agent-3", "agent-4"]


def test_one_list_names_every_refused_host_and_problem_in_inventory_order():
    report = preflight_report(HOSTS, HOSTVARS, ["mon-1", "agent-1", "agent-2"], not_answered=["down-1"])
    assert report["refused"] == ["mon-1", "agent-2", "agent-3", "agent-4"]
    assert report["lines"][0].startswith("The preflight refused 4 of 5 host(s); no role has changed anything")
    assert report["lines"][1:] == [
        "mon-1: prometheus: Unknown variable(s) prometheus_retention_tim",
        "agent-2: node_exporter: basic auth needs TLS",
        "agent-2: falco: falco_version 0.35.0",
        # Lost while the falco role's checks ran (the marker was still set) and before any check.
        "agent-3: falco: failed or stopped answering during these checks (see its error above)",
        "agent-4: -: failed or stopped answering before the checks (see its error above)",
        "down-1: not checked: did not answer the reachability check (left out, named again at the end)"]
    assert report["problems"]["agent-2"][1]["role"] == "falco" and "agent-1" not in report["problems"]


def test_a_clean_fleet_passes_and_the_hosts_that_did_not_answer_are_still_named():
    report = preflight_report(["agent-1"], HOSTVARS, ["agent-1"], not_answered=["down-1", "agent-1"])
    assert report["refused"] == [] and report["problems"] == {}
    assert report["lines"] == [
        "All 1 checked host(s) passed every role's checks.",
        "down-1: not checked: did not answer the reachability check (left out, named again at the end)"]


def test_leave_out_says_the_others_are_deployed():
    report = preflight_report(["mon-1", "agent-1"], HOSTVARS, ["mon-1", "agent-1"], leave_out=True)
    assert report["refused"] == ["mon-1"]
    assert "left out, the other 1 are deployed, and the run fails at the end" in report["lines"][0]


def test_the_report_refuses_anything_but_host_lists():
    with pytest.raises(AnsibleFilterError):
        preflight_report("mon-1", HOSTVARS, [])


def test_the_filters_are_registered():
    assert ProblemsFilters().filters()["preflight_problems"] is preflight_problems
    assert ReportFilters().filters()["preflight_report"] is preflight_report
