"""The smoke test's decisions: rules Falco has enabled, the plan per host, a host's own alerts, the verdict."""

import json
from pathlib import Path

import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_smoke import (
    EVENTS,
    SmokeError,
    alerts_command,
    alerts_seen,
    apply_selection,
    host_marker,
    hostname_from_environ,
    hostname_from_unit_environment,
    outputs_from_support,
    rules_from_files,
    rules_from_listing,
    smoke_plan,
    smoke_report,
)

REPO_ROOT = Path(__file__).resolve().parents[4]
UPSTREAM = REPO_ROOT.parent / "shared" / "upstream"
RECORDED_TUTORIAL = UPSTREAM / "recorded" / "falco-0.44.1_tutorial-events.jsonl"
STABLE_RULES = UPSTREAM / "falco" / "falcosecurity-rules_falco-rules-5.1.0_falco_rules.yaml"
INCUBATING_RULES = UPSTREAM / "falco" / "falcosecurity-rules_falco-rules-5.1.0_falco-incubating_rules.yaml"
SANDBOX_RULES = UPSTREAM / "falco" / "falcosecurity-rules_falco-rules-5.1.0_falco-sandbox_rules.yaml"

TUTORIAL = ["Write below binary dir", "Launch Privileged Container", "Launch Excessively Capable Container",
            "Launch Sensitive Mount Container"]
STABLE = ["Read sensitive file untrusted", "Create Symlink Over Sensitive Files", "Terminal shell in container"]


def probe(rules, engine="podman", image="localhost/img:1", unit="falco-modern-bpf.service", journal=True,
          filename="", json_output=True, hostname="web-1"):
    return {"unit": unit, "hostname": hostname, "rules": dict((name, True) for name in rules) if isinstance(rules, list)
            else rules, "outputs": {"json": json_output, "journal": journal, "file": filename}, "engine": engine,
            "image": image, "image_problem": "", "time": 1796000000}


def by_id(plan_or_report):
    """Events of a plan, or rows of a report, by id."""
    return dict((event["id"], event) for event in plan_or_report["events"])


def alert(rule, text, hostname="web-1", **fields):
    output_fields = {"container.id": "host", "proc.cmdline": text}
    output_fields.update(fields)
    return json.dumps({"hostname": hostname, "output": "12:00:00.0: Warning something | command=%s" % text,
                       "output_fields": output_fields, "priority": "Warning", "rule": rule, "source": "syscall",
                       "tags": [], "time": "2026-12-01T12:00:00.000000000Z"})


# ------------------------------------------------------------------------------------------ what Falco has enabled

LISTING = {"lists": [], "macros": [], "rules": [
    {"details": {}, "info": {"name": "Read sensitive file untrusted", "enabled": True,
                             "tags": ["T1555", "filesystem", "maturity_stable"]}},
    {"details": {}, "info": {"name": "Create Symlink Over Sensitive Files", "enabled": True, "tags": ["T1555"]}},
    {"details": {}, "info": {"name": "Write below binary dir", "enabled": False, "tags": ["maturity_sandbox"]}},
    {"details": {}, "info": {"name": "Launch Privileged Container", "enabled": True, "tags": ["container"]}},
]}


def test_the_listing_gives_each_rule_with_its_enabled_flag_and_tags():
    rules = rules_from_listing(json.dumps(LISTING))
    assert rules["Write below binary dir"] == {"enabled": False, "tags": ["maturity_sandbox"]}
    assert rules["Read sensitive file untrusted"]["enabled"] is True
    assert len(rules) == 4


@pytest.mark.parametrize("text", ["Falco version: 0.31.1\nRead sensitive file untrusted: ...", "{}", "[1, 2]"])
def test_a_listing_that_is_not_json_rules_is_refused_for_the_fallback(text):
    with pytest.raises(SmokeError, match="falco -L did not print its rules as JSON"):
        rules_from_listing(text)


def test_the_configuration_selection_is_applied_in_order_by_name_pattern_and_tag():
    rules = rules_from_listing(json.dumps(LISTING))
    selected = apply_selection(rules, [
        {"disable": {"tag": "T1555"}},
        {"enable": {"rule": "Create Symlink*"}},
        {"enable": {"rule": "Write below binary dir"}},
        {"disable": {"rule": "Launch Privileged Container"}},
        "not a selection item",
    ])
    assert dict((name, rule["enabled"]) for name, rule in selected.items()) == {
        "Read sensitive file untrusted": False, "Create Symlink Over Sensitive Files": True,
        "Write below binary dir": True, "Launch Privileged Container": False}
    assert rules["Read sensitive file untrusted"]["enabled"] is True, "the input is left alone"


def test_an_old_falco_falls_back_to_the_rule_items_of_its_files():
    texts = ["- rule: Write below binary dir\n  desc: x\n- macro: m\n  condition: x\n",
             "- rule: 'Launch Privileged Container'\n  condition: x\n-   rule: Read sensitive file untrusted  \n"]
    assert sorted(rules_from_files(texts)) == [
        "Launch Privileged Container", "Read sensitive file untrusted", "Write below binary dir"]


@pytest.mark.skipif(not STABLE_RULES.exists(), reason="reference data absent: %s" % STABLE_RULES)
def test_every_rule_the_smoke_events_name_is_in_the_upstream_rulesets_of_its_suite():
    stable = rules_from_files([STABLE_RULES.read_text()])
    extra = rules_from_files([INCUBATING_RULES.read_text(), SANDBOX_RULES.read_text()])
    for event in EVENTS:
        where = stable if event["suite"] == "stable" else extra
        assert set(event["rules"]) <= set(where), event["id"]
        if event["suite"] == "tutorial":
            assert not set(event["rules"]) & set(stable), "the tutorial's rules left the stable set after 0.31"


SUPPORT_CONFIG = {"json_output": "true", "syslog_output": {"enabled": "true"},
                  "file_output": {"enabled": "false", "keep_alive": "false", "filename": "./events.txt"},
                  "rules": [{"disable": {"rule": "Read sensitive file untrusted"}}]}


def test_falco_support_gives_the_outputs_and_the_selection():
    text = json.dumps({"version": "0.44.1", "config": json.dumps(SUPPORT_CONFIG), "cmdline": "falco --support"})
    assert outputs_from_support(text) == {"json": True, "journal": True, "file": "", "version": "0.44.1",
                                          "selection": [{"disable": {"rule": "Read sensitive file untrusted"}}]}


def test_a_relative_output_file_is_below_the_root_where_falco_runs():
    config = dict(SUPPORT_CONFIG, syslog_output={"enabled": "false"},
                  file_output={"enabled": "true", "filename": "./events.txt"})
    outputs = outputs_from_support(json.dumps({"version": "0.44.1", "config": config}))
    assert (outputs["journal"], outputs["file"]) == (False, "/events.txt")


def test_falco_support_that_is_not_json_is_refused():
    with pytest.raises(SmokeError, match="falco --support did not print"):
        outputs_from_support("Unrecognized option '--support'")


def test_the_hostname_comes_from_the_process_environment_or_the_unit():
    assert hostname_from_environ("PATH=/usr/bin\0FALCO_HOSTNAME=web-1.example\0HOME=/root\0") == "web-1.example"
    assert hostname_from_environ("PATH=/usr/bin\0FALCO_HOSTNAME=\0") is None
    assert hostname_from_unit_environment('LANG=C "FALCO_HOSTNAME=web 2" X=1') == "web 2"
    assert hostname_from_unit_environment("") is None


# --------------------------------------------------------------------------------------------------------- plan

def test_markers_are_unique_per_host_and_run_safe_and_none_is_a_prefix_of_another():
    hosts = ["web-1", "web-10", "web_1", "web.1", "a host; rm -rf /", "λ"]
    markers = [host_marker("20261201120000ab12", host) for host in hosts]
    assert len(set(markers)) == len(markers)
    assert all(marker.replace("-", "").replace(".", "").replace("_", "").isalnum() and marker.isascii()
               for marker in markers), markers
    assert not any(a != b and b.startswith(a) for a in markers for b in markers)
    assert host_marker("run1", "web-1") != host_marker("run2", "web-1")
    with pytest.raises(SmokeError, match="run_id"):
        host_marker("; ;", "web-1")


def test_where_the_tutorials_rules_are_loaded_its_three_events_run_on_an_engine_host():
    plan = smoke_plan(probe(TUTORIAL + STABLE), "run1", "web-1")
    assert plan["problem"] == "" and plan["suite"] == "tutorial"
    assert [(e["id"], e["status"]) for e in plan["events"]] == [
        ("write_below_bin", "run"), ("privileged_container", "run"), ("sensitive_mount_container", "run")]
    events = by_id(plan)
    assert events["privileged_container"]["rules"] == ["Launch Privileged Container",
                                                       "Launch Excessively Capable Container"]
    for event in plan["events"]:
        assert event["marker"].startswith(plan["marker"] + "-") and event["marker"] in event["command"]
    assert events["write_below_bin"]["command"] == "touch /bin/{0} && rm -f /bin/{0}".format(
        events["write_below_bin"]["marker"])
    assert events["privileged_container"]["command"].startswith(
        "podman run --rm --pull never --network none --user 0 --privileged --entrypoint /bin/sh localhost/img:1 -c : ")
    assert "--volume /etc:" in events["sensitive_mount_container"]["command"]


def test_without_a_container_engine_or_image_the_container_events_are_not_tested():
    plan = smoke_plan(probe(TUTORIAL, engine=""), "run1", "web-1")
    assert [(e["id"], e["status"], e["reason"]) for e in plan["events"]] == [
        ("write_below_bin", "run", ""),
        ("privileged_container", "not tested", "no container engine"),
        ("sensitive_mount_container", "not tested", "no container engine")]
    no_image = by_id(smoke_plan(probe(TUTORIAL, image=""), "run1", "web-1"))
    assert no_image["privileged_container"]["reason"] == "no local image (set fleetwatch_smoke_image)"
    chosen = by_id(smoke_plan(probe(TUTORIAL, image=""), "run1", "web-1", image="busybox:1"))
    assert chosen["privileged_container"]["status"] == "run"
    assert " busybox:1 -c : " in chosen["privileged_container"]["command"]


def test_on_a_default_deployment_the_tutorials_events_are_not_tested_and_the_stable_ones_run():
    """The falco role's defaults load the stable rules only (no falco_rulesets)."""
    plan = smoke_plan(probe(STABLE + ["Run shell untrusted"]), "run1", "web-1")
    assert plan["suite"] == "tutorial and stable" and plan["problem"] == ""
    assert [(e["id"], e["status"]) for e in plan["events"]] == [
        ("write_below_bin", "not tested"), ("privileged_container", "not tested"),
        ("sensitive_mount_container", "not tested"),
        ("read_shadow", "run"), ("symlink_shadow", "run"), ("shell_in_container", "run")]
    events = by_id(plan)
    assert events["write_below_bin"]["reason"] == "rule not loaded: Write below binary dir"
    assert "cat /etc/shadow \"$d/%s\"" % events["read_shadow"]["marker"] in events["read_shadow"]["command"]
    assert "ln -s /etc/shadow \"$d/%s\"" % events["symlink_shadow"]["marker"] in events["symlink_shadow"]["command"]
    assert " --tty " in events["shell_in_container"]["command"]
    no_engine = smoke_plan(probe(STABLE, engine=""), "run1", "web-1")
    assert [e["id"] for e in no_engine["events"] if e["status"] == "run"] == ["read_shadow", "symlink_shadow"]


def test_a_disabled_rule_is_not_tested_and_one_missing_tutorial_rule_brings_in_the_stable_events():
    rules = dict((name, True) for name in TUTORIAL + STABLE)
    rules["Launch Sensitive Mount Container"] = False
    events = by_id(smoke_plan(probe(rules), "run1", "web-1"))
    assert events["sensitive_mount_container"]["status"] == "not tested"
    assert events["sensitive_mount_container"]["reason"] == "rule disabled: Launch Sensitive Mount Container"
    assert events["write_below_bin"]["status"] == events["read_shadow"]["status"] == "run"
    only_capable = dict(rules, **{"Launch Privileged Container": False})
    assert by_id(smoke_plan(probe(only_capable), "run1", "web-1"))["privileged_container"]["rules"] == [
        "Launch Excessively Capable Container"]


@pytest.mark.parametrize("overrides, words", [
    ({"unit": ""}, "No Falco unit is active on web-1"),
    ({"json_output": False}, "does not write JSON alerts"),
    ({"journal": False}, "neither to syslog (the journal) nor to a file"),
    ({"rules": ["Some other rule"]}, "None of the smoke events can run on web-1"),
])
def test_a_host_where_nothing_can_be_tested_has_a_problem_and_runs_nothing(overrides, words):
    plan = smoke_plan(probe(overrides.pop("rules", TUTORIAL + STABLE), **overrides), "run1", "web-1")
    assert words in plan["problem"] and "NOT smoke-tested" in plan["problem"]
    assert plan["events"] and all(e["status"] == "not tested" and not e["command"] for e in plan["events"])


def test_the_alerts_are_read_from_the_journal_and_the_output_file_by_marker():
    plan = smoke_plan(probe(TUTORIAL, filename="/var/log/falco events.json"), "run1", "web-1")
    command = plan["alerts"]["command"]
    assert "journalctl -t falco -o cat --no-pager --since @1795999995 | grep -F -- %s" % plan["marker"] in command
    assert "grep -hF -- %s '/var/log/falco events.json'" % plan["marker"] in command
    assert alerts_command(False, "", 0, "m") == ""


def test_the_plan_is_refused_without_a_probe():
    with pytest.raises(SmokeError, match="falco_smoke_probe"):
        smoke_plan("unit=none", "run1", "web-1")


# ------------------------------------------------------------------------------------------------------ alerts

def tutorial_plan(host="web-1", hostname="web-1"):
    return smoke_plan(probe(TUTORIAL, hostname=hostname), "run1", host)


def test_an_alert_counts_with_the_events_rule_marker_and_the_hosts_falco_hostname():
    plan = tutorial_plan()
    events = by_id(plan)
    bin_marker = events["write_below_bin"]["marker"]
    lines = [
        "Falco version: 0.44.1 (x86_64)",
        "{not json",
        alert("Write below binary dir", "touch /bin/" + bin_marker, **{"fd.name": "/bin/" + bin_marker}),
        alert("Launch Excessively Capable Container", "sh -c : " + events["privileged_container"]["marker"]),
        # Right marker, rule of another event: does not count for either.
        alert("Launch Privileged Container", "sh -c : " + events["sensitive_mount_container"]["marker"]),
    ]
    found = alerts_seen(lines, plan)
    assert found["seen"] == {"write_below_bin": ["Write below binary dir"],
                             "privileged_container": ["Launch Excessively Capable Container"],
                             "sensitive_mount_container": []}
    assert found["missing"] == ["sensitive_mount_container"] and found["foreign"] == {}


def test_another_hosts_or_another_runs_marker_or_a_longer_marker_never_counts():
    """Every Falco sharing a kernel raises the alert for every host's event, under its own hostname."""
    plan = tutorial_plan()
    other = by_id(tutorial_plan(host="web-10"))["write_below_bin"]["marker"]
    older = by_id(smoke_plan(probe(TUTORIAL), "run0", "web-1"))["write_below_bin"]["marker"]
    mine = by_id(plan)["write_below_bin"]["marker"]
    lines = [alert("Write below binary dir", "touch /bin/" + other),
             alert("Write below binary dir", "touch /bin/" + older),
             alert("Write below binary dir", "touch /bin/%sx" % mine),
             alert("Write below binary dir", "touch /bin/%s-more" % mine)]
    assert alerts_seen(lines, plan)["missing"] == ["write_below_bin", "privileged_container",
                                                   "sensitive_mount_container"]


def test_an_alert_with_the_marker_but_another_hostname_is_named_as_foreign():
    plan = tutorial_plan(hostname="web-1.example")
    marker = by_id(plan)["write_below_bin"]["marker"]
    found = alerts_seen("\n".join([alert("Write below binary dir", "touch /bin/" + marker, hostname="web-1")]), plan)
    assert found["seen"]["write_below_bin"] == [] and found["foreign"] == {"write_below_bin": ["web-1"]}


@pytest.mark.skipif(not RECORDED_TUTORIAL.exists(), reason="reference data absent: %s" % RECORDED_TUTORIAL)
def test_the_recorded_real_alerts_of_the_tutorials_events_count_once_they_carry_the_markers():
    """Falco 0.44.1's own alerts (recorded), their command lines and file names given this run's markers."""
    plan = tutorial_plan(hostname="vm")
    events = by_id(plan)
    recorded = [json.loads(line) for line in RECORDED_TUTORIAL.read_text().splitlines() if line.strip()]
    marker_of_rule = {"Write below binary dir": events["write_below_bin"]["marker"],
                      "Launch Excessively Capable Container": events["privileged_container"]["marker"],
                      "Launch Sensitive Mount Container": events["sensitive_mount_container"]["marker"]}
    lines = []
    for item in recorded:
        marker = marker_of_rule.get(item["rule"])
        if marker:
            old = item["output_fields"]["proc.cmdline"]
            item["output_fields"]["proc.cmdline"] = "sh -c : " + marker
            item["output"] = item["output"].replace("command=" + old, "command=sh -c : " + marker)
        lines.append(json.dumps(item))
    found = alerts_seen(lines, plan)
    assert found["missing"] == [] and found["seen"]["privileged_container"] == ["Launch Excessively Capable Container"]
    assert alerts_seen(RECORDED_TUTORIAL.read_text().splitlines(), plan)["missing"] == [
        "write_below_bin", "privileged_container", "sensitive_mount_container"], "without markers nothing counts"


# ----------------------------------------------------------------------------------------------------- verdict

def seen(**events):
    return {"seen": events, "missing": [], "foreign": {}}


def test_an_event_passes_only_with_its_own_alert_and_its_counter_for_the_same_rule():
    plan = smoke_plan(probe(TUTORIAL, engine=""), "run1", "web-1")
    both = smoke_report(plan, seen(write_below_bin=["Write below binary dir"]), ["Write below binary dir"])
    assert both["passed"] and both["waiting_for_counters"] == []
    assert both["events"][0] == {"id": "write_below_bin", "title": "a file written below /bin", "status": "passed",
                                 "rule": "Write below binary dir", "alert": True, "counter": True, "reason": ""}
    assert both["msg"] == ("passed. Seen in its own alert and its Prometheus counter: a file written below /bin "
                           "(Write below binary dir). Not tested: a privileged container (no container engine), "
                           "a container with the host's /etc mounted (no container engine).")
    counter_only = smoke_report(plan, seen(write_below_bin=[]), ["Write below binary dir"], deadline=120)
    assert not counter_only["passed"] and counter_only["events"][0]["status"] == "failed"
    assert "Not confirmed within 120 s: a file written below /bin: no alert of web-1's Falco with hostname web-1 and " \
           "marker %s" % by_id(plan)["write_below_bin"]["marker"] in counter_only["msg"]
    alert_only = smoke_report(plan, seen(write_below_bin=["Write below binary dir"]), ["Read sensitive file untrusted"])
    assert not alert_only["passed"] and alert_only["waiting_for_counters"] == ["write_below_bin"]
    assert "Prometheus did not show web-1's counter rise for Write below binary dir" in alert_only["msg"]


def test_the_counter_must_rise_for_the_rule_the_hosts_alert_named():
    plan = tutorial_plan()
    alerts = seen(write_below_bin=["Write below binary dir"],
                  sensitive_mount_container=["Launch Sensitive Mount Container"],
                  privileged_container=["Launch Excessively Capable Container"])
    rose = ["Write below binary dir", "Launch Sensitive Mount Container"]
    other_rule = smoke_report(plan, alerts, rose + ["Launch Privileged Container"])
    assert other_rule["waiting_for_counters"] == ["privileged_container"] and not other_rule["passed"]
    right_rule = smoke_report(plan, alerts, rose + ["Launch Excessively Capable Container"])
    assert right_rule["passed"]
    assert by_id(right_rule)["privileged_container"]["rule"] == "Launch Excessively Capable Container"
    no_alert_yet = smoke_report(plan, seen(), rose + ["Launch Privileged Container"])
    assert "privileged_container" not in no_alert_yet["waiting_for_counters"], "either rule's counter will do"


def test_a_command_that_failed_fails_its_event():
    plan = smoke_plan(probe(TUTORIAL, engine=""), "run1", "web-1")
    caused = [{"item": {"id": "write_below_bin"}, "rc": 1,
               "stderr": "touch: cannot touch '/bin/x': Read-only file system"}]
    report = smoke_report(plan, seen(write_below_bin=["Write below binary dir"]), ["Write below binary dir"],
                          caused=caused)
    assert not report["passed"]
    assert "its command failed (rc 1: touch: cannot touch '/bin/x': Read-only file system)" in report["msg"]


def test_not_tested_events_never_pass_a_host_and_a_host_with_a_problem_fails():
    plan = smoke_plan(probe(TUTORIAL + STABLE), "run1", "web-1")
    nothing_passed = smoke_report(plan, seen(), [])
    assert not nothing_passed["passed"]
    problem = smoke_plan(probe(TUTORIAL, unit=""), "run1", "web-1")
    report = smoke_report(problem, {}, [])
    assert not report["passed"] and report["msg"].startswith("FAILED. No Falco unit is active on web-1")
    assert all(row["status"] == "not tested" for row in report["events"])
