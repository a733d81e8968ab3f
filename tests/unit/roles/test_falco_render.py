"""The falco role's rendered configuration and rules, through the role's own render tasks, for each generation.

The effective configuration is what Falco would run with: the packaged falco.yaml (from ../shared/upstream) plus the
package's and our drop-ins, merged the way Falco merges them (whole maps replaced, lists appended).
"""

import json

import pytest
import yaml

from falco_helpers import REPO, UPSTREAM, UPSTREAM_REASON, ansible_playbook, collections_dir, effective_config, load_yaml, run_playbook

jsonschema = pytest.importorskip("jsonschema")

EXCEPTION = {"rule": "Read sensitive file untrusted", "name": "backup_reads_shadow", "fields": ["proc.name", "fd.name"],
             "comps": ["=", "="], "values": [["backup-agent", "/etc/shadow"]]}
LOCAL_RULES = [
    {"list": "fleetwatch_trusted_tools", "items": ["backup-agent"]},
    {"macro": "fleetwatch_trusted", "condition": "proc.name in (fleetwatch_trusted_tools)"},
    {"rule": "Fleetwatch test rule", "desc": "a local rule", "condition": "evt.type = open and fleetwatch_trusted",
     "output": "trusted tool opened a file (file=%fd.name)", "priority": "NOTICE", "tags": ["fleetwatch"]},
]
DISABLED = [{"rule": "Clear Log Activities"}]
TUNING = {"falco_rule_exceptions": [EXCEPTION], "falco_local_rules": LOCAL_RULES, "falco_disabled_rules": DISABLED,
          "falco_http_output_url": "http://sidekick:2801/", "falco_file_output_path": "/var/log/falco/events.json"}

CASES = {
    "0.44.1": dict(TUNING, falco_version="0.44.1", falco_disabled_rules=DISABLED + [{"tag": "T1036"}]),
    "0.43.1": dict(TUNING, falco_version="0.43.1", falco_grpc_enabled=True),
    # falco_metrics_enabled stays at its default (true): native metrics do not exist before 0.39.
    "0.31.1": dict(TUNING, falco_version="0.31.1", falco_grpc_enabled=True),
    "0.38.1": {"falco_version": "0.38.1"},
    # Where the watcher of the rendered falco.yaml changes: 0.32 to 0.36 miss a file replaced by rename.
    "0.36.2": {"falco_version": "0.36.2"},
    "0.37.1": {"falco_version": "0.37.1"},
    "0.44.1-nometrics": {"falco_version": "0.44.1", "falco_metrics_enabled": False},
}
# Booleans as a user types them on the command line: -e key=value makes strings ("false" is a truthy string).
CLI_CASES = {
    "0.44.1-cli-false": ("0.44.1", ["falco_metrics_enabled=false", "falco_syslog_output=false", "falco_grpc_enabled=false"]),
    "0.43.1-cli-true": ("0.43.1", ["falco_metrics_enabled=true", "falco_syslog_output=true", "falco_grpc_enabled=true"]),
    "0.43.1-cli-false": ("0.43.1", ["falco_metrics_enabled=false", "falco_syslog_output=false", "falco_grpc_enabled=false"]),
    "0.31.1-cli-false": ("0.31.1", ["falco_syslog_output=false", "falco_grpc_enabled=false"]),
    "0.31.1-cli-true": ("0.31.1", ["falco_syslog_output=true", "falco_grpc_enabled=true"]),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    collections = collections_dir(tmp_path_factory)
    out = {}
    for case, settings in CASES.items():
        stage = tmp_path_factory.mktemp("stage-" + case)
        rc, output = run_playbook("falco_render.yml", collections, dict(settings, __falco_stage_dir=str(stage)))
        assert rc == 0, output
        out[case] = stage
    for case, (version, strings) in CLI_CASES.items():
        stage = tmp_path_factory.mktemp("stage-" + case)
        args = [a for s in strings + ["falco_version=" + version] for a in ("-e", s)]
        rc, output = run_playbook("falco_render.yml", collections, {"__falco_stage_dir": str(stage)}, *args)
        assert rc == 0, output
        out[case] = stage
    return out


def dropins(stage):
    return sorted((stage / "config.d").glob("*.yaml"))


def packaged_dropins(version):
    return sorted(UPSTREAM.glob("falco-%s_config.d_*.yaml" % version))


def effective(stage, version):
    return effective_config(UPSTREAM / ("falco-%s_falco.yaml" % version), packaged_dropins(version) + dropins(stage))


needs_upstream = pytest.mark.skipif(not UPSTREAM.is_dir(), reason=UPSTREAM_REASON)


def test_native_metrics_start_at_0_39(rendered):
    assert [p.name for p in dropins(rendered["0.38.1"])] == ["fleetwatch-outputs.yaml"]
    assert "metrics" not in load_yaml(rendered["0.31.1"] / "falco.yaml")


def test_legacy_generation_renders_one_full_falco_yaml(rendered):
    stage = rendered["0.31.1"]
    assert dropins(stage) == []
    assert (stage / "falco.yaml").is_file()


@pytest.mark.parametrize("case", ["0.44.1", "0.43.1"])
def test_dropin_generation_leaves_falco_yaml_alone(rendered, case):
    stage = rendered[case]
    assert not (stage / "falco.yaml").exists()
    assert all(p.name.startswith("fleetwatch-") for p in dropins(stage))


@pytest.mark.parametrize("case,watching", [("0.36.2", False), ("0.37.1", True)])
def test_the_full_falco_yaml_lets_falco_watch_its_files_only_where_it_sees_renames(rendered, case, watching):
    """The role replaces files by rename: a watcher that misses that is off (the handler restarts Falco instead)."""
    assert load_yaml(rendered[case] / "falco.yaml")["watch_config_files"] is watching


@needs_upstream
def test_tutorial_settings_for_0_31_1(rendered):
    config = load_yaml(rendered["0.31.1"] / "falco.yaml")
    assert config["json_output"] is True
    assert config["grpc"] == {"enabled": True, "bind_address": "unix:///var/run/falco.sock", "threadiness": 0}
    assert config["grpc_output"] == {"enabled": True}
    assert "rules_files" not in config
    assert config["rules_file"][:2] == ["/etc/falco/falco_rules.yaml", "/etc/falco/falco_rules.local.yaml"]
    assert config["http_output"]["enabled"] is True and config["http_output"]["url"] == "http://sidekick:2801/"
    assert config["file_output"] == {"enabled": True, "keep_alive": False, "filename": "/var/log/falco/events.json"}
    assert config["syslog_output"] == {"enabled": True}
    # Only keys Falco 0.31.1 knows (watch_config_files arrived in 0.32).
    upstream = load_yaml(UPSTREAM / "falco-0.31.1_falco.yaml")
    assert set(config) <= set(upstream), set(config) - set(upstream)
    for key in ("webserver", "syscall_event_drops", "outputs", "http_output", "file_output", "grpc"):
        assert set(upstream[key]) <= set(config[key]), key


@needs_upstream
@pytest.mark.parametrize("case,version", [("0.44.1", "0.44.1"), ("0.43.1", "0.43.1")])
def test_effective_config_has_native_metrics_with_every_subkey(rendered, case, version):
    config = effective(rendered[case], version)
    packaged = load_yaml(UPSTREAM / ("falco-%s_falco.yaml" % version))
    assert config["json_output"] is True
    assert config["metrics"]["enabled"] is True
    assert config["metrics"]["interval"] == "1h"
    assert config["metrics"]["output_rule"] is False
    assert config["webserver"]["enabled"] is True
    assert config["webserver"]["prometheus_metrics_enabled"] is True
    assert config["webserver"]["listen_port"] == 8765
    assert config["webserver"]["listen_address"] == "0.0.0.0"
    # Every map a drop-in touches is restated whole: no packaged sub-key goes missing.
    for path in dropins(rendered[case]):
        for key, value in load_yaml(path).items():
            if isinstance(value, dict) and isinstance(packaged.get(key), dict):
                assert set(packaged[key]) <= set(value), (path.name, key, set(packaged[key]) - set(value))
    # The packaged rules files stay, rules.d included; the package's container plugin drop-in still applies.
    assert config["rules_files"] == packaged["rules_files"]
    assert "rules_file" not in config
    assert config["http_output"]["url"] == "http://sidekick:2801/"
    assert config["file_output"]["filename"] == "/var/log/falco/events.json"


@needs_upstream
def test_grpc_for_0_43_1_uses_the_new_socket(rendered):
    config = effective(rendered["0.43.1"], "0.43.1")
    assert config["grpc"] == {"enabled": True, "bind_address": "unix:///run/falco/falco.sock", "threadiness": 0}
    assert config["grpc_output"] == {"enabled": True}


@needs_upstream
def test_0_44_1_has_no_grpc_and_disables_rules_through_the_config(rendered):
    config = effective(rendered["0.44.1"], "0.44.1")
    assert "grpc" not in config and "grpc_output" not in config
    assert config["rules"] == [{"disable": {"rule": "Clear Log Activities"}}, {"disable": {"tag": "T1036"}}]
    assert config["load_plugins"] == ["container"]
    assert not (rendered["0.44.1"] / "rules.d" / "fleetwatch-700-disabled.yaml").exists()


@needs_upstream
@pytest.mark.parametrize("case", ["0.44.1", "0.44.1-nometrics"])
def test_0_44_1_effective_config_validates_against_falcos_schema(rendered, case):
    schema = load_yaml(UPSTREAM / "falco-0.44.1_config_schema.json")
    jsonschema.validate(effective(rendered[case], "0.44.1"), schema)


@needs_upstream
def test_without_metrics_the_packaged_webserver_and_metrics_stay(rendered):
    config = effective(rendered["0.44.1-nometrics"], "0.44.1")
    packaged = load_yaml(UPSTREAM / "falco-0.44.1_falco.yaml")
    assert config["metrics"] == packaged["metrics"]
    assert config["webserver"] == packaged["webserver"]
    assert [p.name for p in dropins(rendered["0.44.1-nometrics"])] == ["fleetwatch-outputs.yaml"]
    assert list((rendered["0.44.1-nometrics"] / "rules.d").iterdir()) == []


@needs_upstream
@pytest.mark.parametrize("case", ["0.44.1", "0.43.1", "0.31.1"])
def test_rule_files_validate_against_the_0_44_1_rule_schema(rendered, case):
    schema = load_yaml(UPSTREAM / "falco-0.44.1_rule_schema.json")
    files = sorted((rendered[case] / "rules.d").glob("*.yaml"))
    assert files
    for path in files:
        jsonschema.validate(load_yaml(path), schema)


def rules_dir(rendered, case):
    return {p.name: load_yaml(p) for p in (rendered[case] / "rules.d").glob("*.yaml")}


@pytest.mark.parametrize("case", ["0.44.1", "0.43.1"])
def test_exceptions_use_override_append_from_0_37(rendered, case):
    files = rules_dir(rendered, case)
    assert files["fleetwatch-600-exceptions.yaml"] == [{
        "rule": EXCEPTION["rule"], "override": {"exceptions": "append"},
        "exceptions": [{k: v for k, v in EXCEPTION.items() if k != "rule"}]}]
    assert files["fleetwatch-500-local.yaml"] == LOCAL_RULES


def test_exceptions_and_disabled_rules_before_0_37(rendered):
    files = rules_dir(rendered, "0.31.1")
    assert files["fleetwatch-600-exceptions.yaml"] == [{
        "rule": EXCEPTION["rule"], "append": True, "exceptions": [{k: v for k, v in EXCEPTION.items() if k != "rule"}]}]
    assert files["fleetwatch-700-disabled.yaml"] == [{"rule": "Clear Log Activities", "enabled": False}]
    assert sorted(files) == ["fleetwatch-500-local.yaml", "fleetwatch-600-exceptions.yaml", "fleetwatch-700-disabled.yaml"]


def test_rendered_files_say_they_are_managed(rendered):
    for stage in rendered.values():
        for path in stage.rglob("*.yaml"):
            assert path.read_text().startswith("# "), path
            yaml.safe_load(path.read_text())


def outputs_of(stage):
    return load_yaml(stage / "config.d" / "fleetwatch-outputs.yaml")


def test_command_line_false_strings_turn_things_off_in_the_dropin_generation(rendered):
    for case in ("0.44.1-cli-false", "0.43.1-cli-false"):
        stage = rendered[case]
        assert [p.name for p in dropins(stage)] == ["fleetwatch-outputs.yaml"], case
        assert outputs_of(stage)["syslog_output"] == {"enabled": False}, case


def test_command_line_true_strings_turn_things_on_in_the_dropin_generation(rendered):
    stage = rendered["0.43.1-cli-true"]
    assert [p.name for p in dropins(stage)] == ["fleetwatch-grpc.yaml", "fleetwatch-metrics.yaml",
                                                "fleetwatch-outputs.yaml"]
    assert outputs_of(stage)["syslog_output"] == {"enabled": True}
    grpc = load_yaml(stage / "config.d" / "fleetwatch-grpc.yaml")
    assert grpc["grpc"]["enabled"] is True and grpc["grpc_output"] == {"enabled": True}
    assert load_yaml(stage / "config.d" / "fleetwatch-metrics.yaml")["metrics"]["enabled"] is True


@pytest.mark.parametrize("case,expected", [("0.31.1-cli-false", False), ("0.31.1-cli-true", True)])
def test_command_line_strings_are_booleans_in_the_full_falco_yaml(rendered, case, expected):
    config = load_yaml(rendered[case] / "falco.yaml")
    # Real YAML booleans, not the strings 'false' / 'true'.
    assert config["syslog_output"] == {"enabled": expected}
    assert config["grpc"]["enabled"] is expected and config["grpc_output"] == {"enabled": expected}


def test_http_output_for_a_collector_in_the_full_falco_yaml(rendered):
    with_url = load_yaml(rendered["0.31.1"] / "falco.yaml")["http_output"]
    assert with_url == {"enabled": True, "url": "http://sidekick:2801/", "user_agent": "falcosecurity/falco"}
    # Without a URL the output is off (and keeps the packaged placeholder URL 0.31.1 expects).
    assert load_yaml(rendered["0.31.1-cli-true"] / "falco.yaml")["http_output"]["enabled"] is False


@needs_upstream
@pytest.mark.parametrize("case,version", [("0.44.1", "0.44.1"), ("0.43.1", "0.43.1")])
def test_http_output_dropin_restates_the_whole_map(rendered, case, version):
    packaged = load_yaml(UPSTREAM / ("falco-%s_falco.yaml" % version))["http_output"]
    ours = outputs_of(rendered[case])["http_output"]
    # Falco replaces the whole map: every packaged sub-key must be in ours, or it would be lost.
    assert set(packaged) <= set(ours), set(packaged) - set(ours)
    config = effective(rendered[case], version)["http_output"]
    assert config["enabled"] is True and config["url"] == "http://sidekick:2801/"
    # Only the switch and the URL differ from the packaged defaults.
    assert {k: v for k, v in config.items() if k not in ("enabled", "url")} == \
        {k: v for k, v in packaged.items() if k not in ("enabled", "url")}


def test_http_output_is_off_without_a_url_in_the_dropin_generation(rendered):
    http = outputs_of(rendered["0.38.1"])["http_output"]
    assert http["enabled"] is False and http["url"] == ""


@pytest.mark.parametrize("value,expected", [("false", "no"), ("no", "no"), ("true", "yes"), ("True", "yes")])
def test_falcoctl_auto_update_from_the_command_line(tmp_path, value, expected):
    role = REPO / "roles" / "falco"
    out = tmp_path / "env.json"
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_vars": {"file": str(role / "defaults" / "main.yml")}},
        {"ansible.builtin.include_vars": {"file": str(role / "vars" / "main.yml")}},
        {"ansible.builtin.copy": {"dest": str(out), "mode": "0600", "content": "{{ __falco_installer_env | to_json }}"}},
    ]}]
    rc, output, _recap = ansible_playbook(tmp_path, play, {}, "-e", "falco_rules_auto_update=" + value)
    assert rc == 0, output
    assert json.loads(out.read_text())["FALCOCTL_ENABLED"] == expected


def test_only_the_other_units_the_inspection_found_enabled_or_running_are_stopped(tmp_path):
    """__falco_units_to_stop (run.yml's loop) from the units host_inspect reported, in the module's result shape."""
    role = REPO / "roles" / "falco"
    out = tmp_path / "stop.json"

    def unit(file_state, active_state):
        return {"unit_file_state": file_state, "enabled": file_state in ("enabled", "static", "alias"),
                "active_state": active_state, "active": active_state == "active"}

    units = {"falco-kmod.service": unit("disabled", "inactive"), "falco-bpf.service": unit("enabled", "inactive"),
             "falco-custom.service": unit("disabled", "active"), "falco-gone.service": unit("not-found", "inactive"),
             "falcoctl-artifact-follow.service": unit("masked", "inactive")}
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_vars": {"file": str(role / "defaults" / "main.yml")}},
        {"ansible.builtin.include_vars": {"file": str(role / "vars" / "main.yml")}},
        {"ansible.builtin.copy": {"dest": str(out), "mode": "0600", "content": "{{ {'inspected': __falco_inspected_units, "
                                  "'without': __falco_units_to_stop} | to_json }}"}},
        {"ansible.builtin.set_fact": {"__falco_inspection": {"units": units}}},
        {"ansible.builtin.copy": {"dest": str(out) + ".with", "mode": "0600",
                                  "content": "{{ __falco_units_to_stop | to_json }}"}},
    ]}]
    others = ["falco-kmod.service", "falco-bpf.service", "falco-modern-bpf.service", "falco-custom.service",
              "falco-gone.service"]
    rc, output, _recap = ansible_playbook(tmp_path, play, {
        "__falco_other_units": others, "__falco_unit": "falco-modern-bpf.service",
        "__falco_falcoctl_unit": "falcoctl-artifact-follow.service"})
    assert rc == 0, output
    before = json.loads(out.read_text())
    besides_ours = [u for u in others if u != "falco-modern-bpf.service"]
    assert before["inspected"] == besides_ours + ["falcoctl-artifact-follow.service"]
    # Without an inspection (--tags falco_run alone) every other unit is stopped.
    assert before["without"] == besides_ours
    assert json.loads((tmp_path / "stop.json.with").read_text()) == ["falco-bpf.service", "falco-custom.service"]
