import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.prometheus_targets import FilterModule, prometheus_targets

DEFAULTS = {"node_exporter_web_listen_address": "0.0.0.0:9100", "node_exporter_tls_enabled": False,
            "node_exporter_basic_auth_users": {}, "falco_version": "0.44.1", "falco_metrics_enabled": True,
            "falco_metrics_port": 8765, "falco_grpc_enabled": False, "falco_exporter_listen_address": ":9376",
            "falco_exporter_tls_enabled": False, "falco_exporter_basic_auth_users": {},
            "docker_metrics_port": 9323, "falcosidekick_listen_port": 2801}


class CountingHostvars(dict):
    """hostvars stand-in that counts how often a host's variables are computed (the costly step in Ansible)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lookups = 0

    def __getitem__(self, name):
        self.lookups += 1
        return super().__getitem__(name)


def targets(hostvars, **kwargs):
    options = dict(job_hosts={"node-exporter": list(hostvars), "falco": list(hostvars)}, defaults=DEFAULTS,
                   label_vars=["cloud", "site"])
    options.update(kwargs)
    return prometheus_targets(hostvars, **options)


def hosts_of(groups):
    return [g["labels"]["host"] for g in groups]


def test_each_host_gets_host_and_label_vars_it_sets():
    result = targets({"a": {"cloud": "aws", "site": 3}, "b": {"cloud": "gcp", "site": None}})
    assert result["labels"] == {"a": {"host": "a", "cloud": "aws", "site": "3"}, "b": {"host": "b", "cloud": "gcp"}}
    assert result["jobs"]["node-exporter"] == [{"targets": ["a:9100"], "labels": result["labels"]["a"]},
                                               {"targets": ["b:9100"], "labels": result["labels"]["b"]}]


def test_falco_generations_pick_native_metrics_or_falco_exporter():
    result = targets({"new": {}, "mid": {"falco_version": "0.43.0", "falco_grpc_enabled": True},
                      "old": {"falco_version": "0.31.1", "falco_grpc_enabled": True,
                              "falco_exporter_listen_address": "127.0.0.1:9400"},
                      "quiet": {"falco_version": "0.40.0", "falco_metrics_enabled": False},
                      "grpc-on-044": {"falco_version": "0.44.1", "falco_grpc_enabled": True}})
    assert hosts_of(result["jobs"]["falco"]) == ["new", "mid", "grpc-on-044"]
    assert hosts_of(result["jobs"]["falco-exporter"]) == ["mid", "old"]
    assert result["jobs"]["falco-exporter"][1]["targets"] == ["old:9400"]


def test_falco_hosts_before_0_44_that_no_job_scrapes_are_named():
    result = targets({"new": {}, "exporter": {"falco_version": "0.43.1", "falco_grpc_enabled": True},
                      "tutorial": {"falco_version": "0.31.1"},
                      "quiet-043": {"falco_version": "0.43.1", "falco_metrics_enabled": "false"},
                      "both-off-044": {"falco_version": "0.44.1", "falco_metrics_enabled": False},
                      "native-040": {"falco_version": "0.40.0"},
                      "unstable-names-038": {"falco_version": "0.38.1"},
                      "tutorial-exporter": {"falco_version": "0.31.1", "falco_grpc_enabled": "yes"}})
    # 0.44 with metrics off has no other path and chose none: not named.
    assert result["unscraped_falco"] == [
        {"host": "tutorial", "falco_version": "0.31.1", "native_metrics_supported": False},
        {"host": "quiet-043", "falco_version": "0.43.1", "native_metrics_supported": True},
        {"host": "unstable-names-038", "falco_version": "0.38.1", "native_metrics_supported": False}]
    assert not set(hosts_of(result["jobs"]["falco"]) + hosts_of(result["jobs"]["falco-exporter"])) & {
        "tutorial", "quiet-043", "unstable-names-038"}


def test_every_falco_host_scraped_names_none():
    assert targets({"new": {}, "old": {"falco_version": "0.31.1", "falco_grpc_enabled": True}})["unscraped_falco"] == []


def test_booleans_given_as_strings_read_as_ansible_reads_them():
    result = targets({"a": {"node_exporter_tls_enabled": "false", "falco_metrics_enabled": "no"},
                      "b": {"node_exporter_tls_enabled": "True", "falco_version": "0.43.1", "falco_grpc_enabled": "yes"}})
    assert hosts_of(result["jobs"]["node-exporter"]) == ["a"]
    assert hosts_of(result["jobs"]["node-exporter-tls"]) == ["b"]
    assert hosts_of(result["jobs"]["falco"]) == ["b"]
    assert hosts_of(result["jobs"]["falco-exporter"]) == ["b"]


def test_a_non_boolean_names_the_host_and_variable():
    with pytest.raises(AnsibleFilterError, match="b: node_exporter_tls_enabled must be true or false"):
        targets({"a": {}, "b": {"node_exporter_tls_enabled": "sometimes"}})


def test_address_variable_falls_back_to_the_name_and_reports_empty_values():
    result = targets({"a": {"ansible_host": "10.0.0.5"}, "b": {}, "c": {"ansible_host": ""}}, address_var="ansible_host")
    assert [g["targets"] for g in result["jobs"]["node-exporter"]] == [["10.0.0.5:9100"], ["b:9100"], [":9100"]]
    assert result["missing_address"] == ["c"]


def test_falco_exporter_behind_its_tls_proxy_goes_to_the_tls_job():
    result = targets({"plain": {"falco_version": "0.43.0", "falco_grpc_enabled": True},
                      "proxied": {"falco_version": "0.43.0", "falco_grpc_enabled": True,
                                  "falco_exporter_tls_enabled": "yes", "falco_exporter_listen_address": "0.0.0.0:9500",
                                  "falco_exporter_basic_auth_users": {"prometheus": "x"}},
                      "new": {"falco_exporter_tls_enabled": True}})
    assert hosts_of(result["jobs"]["falco-exporter"]) == ["plain"]
    assert hosts_of(result["jobs"]["falco-exporter-tls"]) == ["proxied"]
    assert result["jobs"]["falco-exporter-tls"][0]["targets"] == ["proxied:9500"]
    assert result["basic_auth_hosts"] == ["proxied"]
    assert json.loads(result["files"]["falco-exporter-tls"]) == result["jobs"]["falco-exporter-tls"]


def test_a_host_asking_for_basic_auth_twice_is_named_once():
    result = targets({"a": {"node_exporter_basic_auth_users": {"prometheus": "x"}, "falco_version": "0.43.0",
                            "falco_grpc_enabled": True, "falco_exporter_tls_enabled": True,
                            "falco_exporter_basic_auth_users": {"prometheus": "x"}}})
    assert result["basic_auth_hosts"] == ["a"]


def test_basic_auth_hosts_are_the_node_exporters_with_users():
    result = targets({"a": {"node_exporter_basic_auth_users": {"prometheus": "x"}}, "b": {}})
    assert result["basic_auth_hosts"] == ["a"]


def test_docker_and_sidekick_jobs_and_the_prometheus_host_labels():
    hostvars = {"mon": {"cloud": "onprem"}, "a": {"docker_metrics_port": 9999}}
    result = prometheus_targets(hostvars, job_hosts={"docker-exporter": ["a", "a"], "falcosidekick": ["mon"]},
                                defaults=DEFAULTS, label_vars=["cloud"], self_host="mon")
    assert result["jobs"]["docker-exporter"] == [{"targets": ["a:9999"], "labels": {"host": "a"}}]
    assert result["jobs"]["falcosidekick"] == [{"targets": ["mon:2801"], "labels": {"host": "mon", "cloud": "onprem"}}]
    assert result["jobs"]["node-exporter"] == []


def test_each_host_is_computed_once_however_many_jobs_name_it():
    hostvars = CountingHostvars({"h%d" % i: {"cloud": "aws"} for i in range(50)})
    targets(hostvars, job_hosts={"node-exporter": list(hostvars), "falco": list(hostvars),
                                 "docker-exporter": list(hostvars)}, self_host="h0")
    assert hostvars.lookups == 50


def test_a_group_member_missing_from_the_inventory_is_named():
    with pytest.raises(AnsibleFilterError, match="ghost is in a target group"):
        prometheus_targets({}, job_hosts={"falco": ["ghost"]}, defaults=DEFAULTS, label_vars=[])


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters()["prometheus_targets"] is prometheus_targets


def test_addresses_and_ports_prometheus_would_refuse_are_named_with_their_variable():
    result = targets({"web 1": {}, "ok": {"falco_metrics_port": "87 65"}, "v6": {"at": "[2001:db8::5]"},
                      "nl": {"at": "10.0.0.1\n"}}, address_var="at")
    assert result["invalid_targets"] == [
        "nl: at '10.0.0.1\\n' is not a host name or address",
        "ok: falco_metrics_port '87 65' is not a port",
        "web 1: the inventory name 'web 1' is not a host name or address"]


class TaggedStr(str):
    """Like the str subclasses Ansible hands filters for inventory values."""


def test_files_hold_each_jobs_target_groups_as_the_json_prometheus_reads():
    hostvars = {"a": {"cloud": TaggedStr("aws"), "ansible_host": TaggedStr("192.0.2.1")}, "b": {"site": "é-1"},
                "mon": {}}
    result = targets(hostvars, job_hosts={"node-exporter": ["a", "b"], "falco": ["a", "b"]},
                     label_vars=[TaggedStr("cloud"), "site"], address_var="ansible_host", self_host="mon")
    assert set(result["files"]) == set(result["jobs"])
    for job, groups in result["jobs"].items():
        assert json.loads(result["files"][job]) == groups
        assert result["files"][job].endswith("]\n")
    # The bytes a converged host holds: keys sorted, two-space indent, one newline at the end.
    assert result["files"]["node-exporter"] == (
        '[\n  {\n    "labels": {\n      "cloud": "aws",\n      "host": "a"\n    },\n    "targets": [\n'
        '      "192.0.2.1:9100"\n    ]\n  },\n  {\n    "labels": {\n      "host": "b",\n      "site": "\\u00e9-1"\n'
        '    },\n    "targets": [\n      "b:9100"\n    ]\n  }\n]\n')
    assert result["files"]["falcosidekick"] == "[]\n"
    assert result["self_labels"] == {"host": "mon"}
    assert targets(hostvars, self_host="a")["self_labels"] == {"host": "a", "cloud": "aws"}
    assert targets(hostvars)["self_labels"] == {}
    # What the roles keep as a fact: the same files, without the groups as data.
    compact = targets(hostvars, job_hosts={"node-exporter": ["a", "b"], "falco": ["a", "b"]},
                      label_vars=[TaggedStr("cloud"), "site"], address_var="ansible_host", self_host="mon",
                      with_groups=False)
    assert "jobs" not in compact and "labels" not in compact
    assert compact["files"] == result["files"] and compact["self_labels"] == result["self_labels"]


def test_the_same_inventory_in_another_variable_order_gives_the_same_bytes():
    """Idempotence: the file a host holds must not change because the inventory lists variables differently."""
    forward = {"a": {"cloud": "aws", "site": "s1", "env": "prod"}, "b": {"site": "s2", "cloud": "gcp"}}
    backward = {"a": {"env": "prod", "site": "s1", "cloud": "aws"}, "b": {"cloud": "gcp", "site": "s2"}}
    labels = ["site", "env", "cloud"]
    assert targets(forward, label_vars=labels)["files"] == targets(backward, label_vars=labels[::-1])["files"]


@pytest.mark.parametrize("value", [
    "aws", "a.b/c:d", "[2001:db8::5]:9100", "yes", "No", "null", "~", "", "1", "1e3", ".inf", "12:30", "2026-11-28",
    "a: b", "a #b", "#a", "'a", '"a', "{a}", "{{ a }}", "[a]", "a,b", "a b", " a", "a\tb", "a\nb", "a\\b", "é-1",
    "a\u2028b", "\U0001f600", "x" * 200, "\x00", "\x7f",
])
def test_any_label_value_or_target_reads_back_from_the_file_unchanged(value):
    hostvars = {"first": {"cloud": "aws"}, "h": {"cloud": value, "zone": "z", "at": value}}
    result = targets(hostvars, label_vars=["cloud", "zone"], address_var="at")
    for job in ("node-exporter", "falco"):
        groups = json.loads(result["files"][job])
        assert groups[1] == {"targets": ["%s:%s" % (value, 9100 if job == "node-exporter" else 8765)],
                             "labels": {"host": "h", "cloud": value, "zone": "z"}}
        assert groups == result["jobs"][job]


class HostVars(dict):
    """Ansible's hostvars as the filter sees it: hostvars[host] computes the host's variables and hands out templated
    values; raw_get(host) computes them and hands them out untemplated. Counts both."""

    def __init__(self, raw, rendered):
        super().__init__(rendered)
        self.raw = raw
        self.computed = []
        self.templated = []

    def raw_get(self, name):
        self.computed.append(name)
        return self.raw[name]

    def __getitem__(self, name):
        self.computed.append(name)
        view = self

        class View(dict):
            def __getitem__(self, key):
                view.templated.append((name, key))
                return super().__getitem__(key)
        return View(super().__getitem__(name))


def test_only_values_that_can_hold_a_template_go_through_templating():
    raw = {"a": {"cloud": "aws", "site": "{{ region }}-1", "ansible_host": "192.0.2.7", "falco_metrics_port": 8765,
                 "falco_metrics_enabled": True, "node_exporter_web_listen_address": "#jinja2:x\n{{ a }}",
                 "falco_version": None},
           "b": {"cloud": "gcp", "ansible_host": "192.0.2.8", "node_exporter_basic_auth_users": {"p": "{{ pw }}"}},
           "c": {"cloud": "aws", "ansible_host": "192.0.2.9", "falco_grpc_enabled": False}}
    rendered = {"a": dict(raw["a"], site="eu-1", node_exporter_web_listen_address=":9101"),
                "b": dict(raw["b"], node_exporter_basic_auth_users={"p": "secret"}), "c": raw["c"]}
    hostvars = HostVars(raw, rendered)
    result = targets(hostvars, address_var="ansible_host")
    assert sorted(hostvars.templated) == [("a", "node_exporter_web_listen_address"), ("a", "site"),
                                          ("b", "node_exporter_basic_auth_users")]
    # Each host's variables computed once, and once more for a host that has values to template.
    assert sorted(hostvars.computed) == ["a", "a", "b", "b", "c"]
    assert result["jobs"]["node-exporter"][0] == {"targets": ["192.0.2.7:9101"],
                                                  "labels": {"host": "a", "cloud": "aws", "site": "eu-1"}}
    # falco_version left null falls back to the default.
    assert result["jobs"]["falco"][0] == {"targets": ["192.0.2.7:8765"],
                                          "labels": {"host": "a", "cloud": "aws", "site": "eu-1"}}
    assert result["basic_auth_hosts"] == ["b"]


def test_job_groups_add_their_hosts_once_in_inventory_order_and_skip_groups_the_inventory_lacks():
    hostvars = {name: {} for name in ("a", "b", "c", "mon")}
    inventory_groups = {"falco": ["a", "b"], "edge": ["b", "c"], "monitoring": ["mon"]}
    result = prometheus_targets(hostvars, defaults=DEFAULTS, label_vars=[], groups=inventory_groups,
                                job_groups={"node-exporter": ["falco", "no-such-group", "edge", "monitoring"],
                                            "falco": ["edge"]},
                                job_hosts={"node-exporter": ["mon"], "falcosidekick": ["mon"]})
    assert hosts_of(result["jobs"]["node-exporter"]) == ["mon", "a", "b", "c"]
    assert hosts_of(result["jobs"]["falco"]) == ["b", "c"]
    assert hosts_of(result["jobs"]["falcosidekick"]) == ["mon"]
    assert result["jobs"]["docker-exporter"] == []


def test_with_ansibles_own_hostvars_plain_hosts_are_computed_once_and_templates_rendered(tmp_path, monkeypatch):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    plain: {cloud: aws, falco_metrics_port: 8765}\n"
        "    templated: {cloud: gcp, zone: west, site: '{{ cloud }}-{{ zone }}'}\n")
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(tmp_path / "hosts.yml")])
    manager = VariableManager(loader=loader, inventory=inventory)
    hostvars = HostVars(inventory=inventory, variable_manager=manager, loader=loader)
    computed = []
    get_vars = VariableManager.get_vars

    def counting_get_vars(self, *args, **kwargs):
        computed.append(kwargs["host"].name)
        return get_vars(self, *args, **kwargs)
    monkeypatch.setattr(VariableManager, "get_vars", counting_get_vars)
    result = targets(hostvars, job_hosts={"node-exporter": ["plain", "templated"], "falco": ["plain", "templated"]})
    assert result["labels"] == {"plain": {"host": "plain", "cloud": "aws"},
                                "templated": {"host": "templated", "cloud": "gcp", "site": "gcp-west"}}
    # Computing a host's variables is the costly step: once per host, once more for a host whose values are templates.
    assert sorted(computed) == ["plain", "templated", "templated"]


class GuardedDefaults(dict):
    """A role's defaults file as include_vars gives it: reading a value renders it, so every read is recorded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = []

    def __getitem__(self, key):
        self.read.append(key)
        return super().__getitem__(key)

    def items(self):
        raise AssertionError("the filter walked every value of a defaults file")


def test_defaults_from_several_roles_files_read_only_the_target_variables_once_each():
    node = GuardedDefaults({"node_exporter_web_listen_address": "0.0.0.0:9111", "node_exporter_tls_cert": "LOOKUP"})
    falco = GuardedDefaults({"falco_metrics_port": 8000, "falco_metrics_tls_cert": "LOOKUP",
                             "node_exporter_web_listen_address": "ignored: the first file that holds it wins"})
    rest = {k: v for k, v in DEFAULTS.items() if k not in ("node_exporter_web_listen_address", "falco_metrics_port")}
    hostvars = {name: {} for name in ("a", "b", "c")}
    result = targets(hostvars, defaults=[node, falco, rest])
    groups = {job: json.loads(text) for job, text in result["files"].items()}
    assert [g["targets"] for g in groups["node-exporter"]] == [["a:9111"], ["b:9111"], ["c:9111"]]
    assert [g["targets"] for g in groups["falco"]] == [["a:8000"], ["b:8000"], ["c:8000"]]
    assert node.read == ["node_exporter_web_listen_address"] and falco.read == ["falco_metrics_port"]
