"""Adversarial inventories: each case either stops in preflight with a message naming the variable, or is escaped safely.

One ansible-playbook run per role: every case is an inventory host of its own (local connection) carrying the case's
variables, and the play runs only what is tagged `always` (argument specs and preflight), so an error here is an
error before anything on a host changes. Cases that must pass get their generated artifact written next to the
test and parsed back. The terminal summary prints how many cases were tried and how many behaved.
"""

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from localplay import REPO, run_playbook, target_groups

PLAYBOOK = shutil.which("ansible-playbook")
pytestmark = pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook not found (activate the venv)")
PROMTOOL = shutil.which("promtool")
RESULTS = []  # (role, case, behaved, detail) for the terminal summary (tests/unit/conftest.py)

# Hosts named with characters that break YAML, PromQL or a unit file if written unescaped.
NASTY_LABEL = 'eu "west"\n{job="x"} \\ #'


def error(*mentions):
    return {"expect": "error", "mentions": mentions}


def escaped(check):
    return {"expect": "ok", "check": check}


def same_label(var, value):
    def check(artifact):
        labels = [g["labels"] for groups in artifact["targets"].values() for g in groups if g["labels"]["host"].endswith("-fleet")]
        assert labels and all(label.get(var) == value for label in labels), labels
    return check


def target_addresses(want):
    def check(artifact):
        got = sorted(t for groups in artifact["targets"].values() for g in groups for t in g["targets"])
        assert got == sorted(want), got
    return check


# Each prometheus case gets its own fleet group, so cases don't see each other's fleet hosts.
PROMETHEUS = {
    "label value with quotes, braces, newline and backslash": (
        {"fleet": {"cloud": NASTY_LABEL}}, {}, escaped(same_label("cloud", NASTY_LABEL))),
    "label value that YAML reads as a number": (
        {"fleet": {"site": 1e3}}, {}, escaped(same_label("site", "1000.0"))),
    "label value that YAML reads as a boolean": (
        {"fleet": {"env": "yes"}}, {}, escaped(same_label("env", "yes"))),
    "host name with a space": (
        {"fleet one": {}}, {}, error("fleet one", "prometheus_target_address_var")),
    "address variable with a newline": (
        {"fleet": {"scrape_at": "10.0.0.1\nx"}}, {"prometheus_target_address_var": "scrape_at"},
        error("fleet", "scrape_at")),
    "address variable set to an IPv6 address": (
        {"fleet": {"scrape_at": "[2001:db8::5]"}}, {"prometheus_target_address_var": "scrape_at"},
        escaped(target_addresses(["[2001:db8::5]:9100", "[2001:db8::5]:8765"]))),
    "label variable that is not a Prometheus label name": (
        {"fleet": {}}, {"prometheus_target_label_vars": ["cloud-zone"]}, error("prometheus_target_label_vars", "cloud-zone")),
    "label variable that would overwrite the host label": (
        {"fleet": {}}, {"prometheus_target_label_vars": ["host"]}, error("prometheus_target_label_vars", "host")),
    "falco_version that is not a version": (
        {"fleet": {"falco_version": "latest"}}, {}, error("fleet", "falco_version")),
    "node_exporter_tls_enabled that is not a boolean": (
        {"fleet": {"node_exporter_tls_enabled": "sometimes"}}, {}, error("fleet", "node_exporter_tls_enabled")),
    "port that is not a number": (
        {"fleet": {"falco_metrics_port": "87 65"}}, {}, error("fleet", "falco_metrics_port")),
    "misspelled role variable": (
        {"fleet": {}}, {"prometheus_scrape_intervall": "15s"}, error("prometheus_scrape_intervall", "prometheus_scrape_interval")),
    "scrape interval that is not a duration": (
        {"fleet": {}}, {"prometheus_scrape_interval": "fast"}, error("prometheus_scrape_interval")),
    "scrape interval of the wrong type": (
        {"fleet": {}}, {"prometheus_scrape_interval": ["15s"]}, error("prometheus_scrape_interval")),
    "listen address without a port": (
        {"fleet": {}}, {"prometheus_web_listen_address": "0.0.0.0"}, error("prometheus_web_listen_address")),
    "external label value with a newline": (
        {"fleet": {}}, {"prometheus_external_labels": {"monitor": "a\nb"}}, escaped(lambda artifact: None)),
}

FALCO = {
    "unknown driver": ({"falco_driver": "ebpf-classic"}, error("falco_driver")),
    "gRPC with 0.44": ({"falco_grpc_enabled": True}, error("falco_grpc_enabled", "native")),
    "boolean given as a word": ({"falco_grpc_enabled": "maybe"}, error("falco_grpc_enabled")),
    "version read by YAML as a float": ({"falco_version": 0.44}, error("falco_version")),
    "version Falco never released in a supported generation": ({"falco_version": "0.35.1"}, error("falco_version")),
    "host name with a newline for FALCO_HOSTNAME": (
        {"falco_hostname": "web\nEnvironment=LD_PRELOAD=/tmp/x.so"}, error("falco_hostname")),
    "exception with fields and values of different lengths": (
        {"falco_rule_exceptions": [{"rule": "Terminal shell in container", "name": "x", "fields": ["proc.name", "user.name"],
                                    "comps": ["=", "="], "values": [["bash"]]}]}, error("falco_rule_exceptions")),
    "disabled rule item that is neither rule nor tag": (
        {"falco_disabled_rules": [{"name": "Terminal shell in container"}]}, error("falco_disabled_rules")),
    "ruleset URL without a checksum": (
        {"falco_rulesets": [{"name": "incubating", "src": "https://example.invalid/r.yaml"}]}, error("falco_rulesets", "checksum")),
    "ruleset name with a path separator": (
        {"falco_rulesets": [{"name": "../../etc/cron.d/x", "src": "/tmp/r.yaml"}]}, error("falco_rulesets")),
    "metrics port out of range": ({"falco_metrics_port": 70000}, error("falco_metrics_port")),
    "http output that is not a URL": ({"falco_http_output_url": "sidekick:2801"}, error("falco_http_output_url")),
    "local rule with a misspelled key": (
        {"falco_local_rules": [{"rule": "R", "desc": "d", "condition": "c", "output": "o", "prio": "Warning"}]},
        error("falco_local_rules item 1 (rule 'R')", "did you mean 'priority'?")),
    "local rule item that is no mapping": ({"falco_local_rules": ["- rule: R"]}, error("falco_local_rules")),
    "exception value YAML read as a boolean": (
        {"falco_rule_exceptions": [{"rule": "R", "name": "x", "fields": ["user.name"], "comps": ["="],
                                    "values": [[False]]}]}, error("falco_rule_exceptions item 1", "quote it")),
}

ALERTMANAGER = {
    "receiver without a name": ({"alertmanager_receivers": [{"webhook_configs": [{"url": "http://x/"}]}]},
                                error("alertmanager_receivers")),
    "route to a receiver that is not declared": ({"alertmanager_severity_receivers": {"critical": "pager"}},
                                                 error("alertmanager_severity_receivers", "pager")),
    "listen address without a port": ({"alertmanager_web_listen_address": "localhost"},
                                      error("alertmanager_web_listen_address")),
}

NODE_EXPORTER = {
    "basic auth without TLS": ({"node_exporter_basic_auth_users": {"prometheus": "pw"}}, error("node_exporter_tls_enabled")),
    "listen address with a space": ({"node_exporter_web_listen_address": "0.0.0.0: 9100"},
                                    error("node_exporter_web_listen_address")),
    "unknown mode": ({"node_exporter_mode": "binary"}, error("node_exporter_mode")),
}

GRAFANA = {
    "no admin password": ({}, error("grafana_admin_password")),
    "anonymous access switched on through grafana_ini": (
        {"grafana_admin_password": "x" * 20, "grafana_ini": {"auth.anonymous": {"enabled": True}}}, error("grafana_ini")),
}


def run_cases(tmp_path, role, hosts, groups=None, post_tasks=()):
    """Run the role's argument specs and preflight for every case host; return {host: (failed, message)}."""
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": dict({"cases": {"hosts": hosts}}, **(groups or {}))}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    play = [{"hosts": "cases", "gather_facts": False, "roles": ["fleetwatch.falco_stack." + role],
             "post_tasks": list(post_tasks)}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    proc = run_playbook(tmp_path, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"),
                        "--tags", "adversarial_preflight_only",
                        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_FORKS": "8"}, timeout=900)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("no JSON report:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    outcome = {host: (False, "") for host in hosts}
    for play_report in report["plays"]:
        for task in play_report["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed") and not result.get("ignore_errors"):
                    items = [item.get("msg", "") for item in result.get("results", []) if item.get("failed")]
                    outcome[host] = (True, " ".join(json.dumps(m) for m in [result.get("msg", result)] + items
                                                    + [result.get("stderr", "")]))
    for host, stats in report["stats"].items():
        if stats.get("unreachable"):
            outcome[host] = (True, "unreachable")
    return outcome


def judge(role, cases, outcome, artifacts=None):
    misbehaved = []
    for index, (name, expectation) in enumerate(cases.items()):
        host = "case%02d" % index
        failed, message = outcome[host]
        try:
            if expectation["expect"] == "error":
                assert failed, "passed preflight"
                for mention in expectation["mentions"]:
                    assert mention in message.replace("\\n", "\n"), "message does not name %r: %s" % (mention, message[:600])
            else:
                assert not failed, message[:600]
                expectation["check"](artifacts(host))
            RESULTS.append((role, name, True, ""))
        except AssertionError as exc:
            RESULTS.append((role, name, False, str(exc)))
            misbehaved.append("%s: %s" % (name, exc))
    assert not misbehaved, "\n".join(misbehaved)


def test_prometheus_inputs(tmp_path):
    hosts, groups = {}, {}
    for index, (fleet, role_vars, _expectation) in enumerate(PROMETHEUS.values()):
        host = "case%02d" % index
        group = "fleet%02d" % index
        # Inventory hosts are global: each case's fleet hosts get names of their own.
        groups[group] = {"hosts": {"c%02d-%s" % (index, name): hv for name, hv in fleet.items()}}
        hosts[host] = dict({"prometheus_node_exporter_groups": [group], "prometheus_falco_groups": [group],
                            "prometheus_config_dir": str(tmp_path / "etc" / host)}, **role_vars)
    # The configuration as the role's template renders it (a play's lookup looks for templates beside the play).
    config = "lookup('ansible.builtin.template', '%s') | from_yaml" % (REPO / "roles/prometheus/templates/prometheus.yml.j2")
    dump = {"ansible.builtin.copy": {
        "dest": str(tmp_path) + "/{{ inventory_hostname }}.json", "mode": "0600",
        "content": "{{ {'files': __prometheus_scrape.files, 'config': %s} | to_json }}" % config},
        "tags": ["always"]}
    outcome = run_cases(tmp_path, "prometheus", hosts, groups, post_tasks=[dump])

    def artifacts(host):
        data = json.loads((tmp_path / (host + ".json")).read_text())
        # A scraped endpoint must never be able to set its own host label (docs/security.md).
        assert not any(job.get("honor_labels") for job in data["config"]["scrape_configs"])
        # The file_sd files as the role writes them, read back the way Prometheus reads YAML.
        data["targets"] = target_groups(data["files"])
        if PROMTOOL:
            config = tmp_path / (host + ".prometheus.yml")
            config.write_text(yaml.safe_dump(data["config"]))
            check = subprocess.run([PROMTOOL, "check", "config", "--syntax-only", str(config)], capture_output=True,
                                   text=True, check=False)
            assert check.returncode == 0, check.stdout + check.stderr
        return data

    judge("prometheus", {name: case[2] for name, case in PROMETHEUS.items()}, outcome, artifacts)


@pytest.mark.parametrize("role,cases,base", [
    ("falco", FALCO, {"falco_install_method": "none"}),
    ("alertmanager", ALERTMANAGER, {}),
    ("node_exporter", NODE_EXPORTER, {}),
    ("grafana", GRAFANA, {"grafana_mode": "package"}),
])
def test_role_inputs(tmp_path, role, cases, base):
    hosts = {"case%02d" % i: dict(base, **case[0]) for i, case in enumerate(cases.values())}
    outcome = run_cases(tmp_path, role, hosts)
    judge(role, {name: case[1] for name, case in cases.items()}, outcome)
