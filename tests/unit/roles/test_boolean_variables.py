"""Boolean variables of roles falco, node_exporter, falco_exporter and _common are read with `| bool`.

Values passed as `-e key=value` arrive as strings, and the string "false" is truthy in Jinja. The first test reads
every task, handler and vars file and template of these roles and fails on a boolean variable (type: bool in any of
their meta/argument_specs.yml) read without `| bool`; the others run the roles' own code with strings from the
command line.
"""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
from localplay import ansible_playbook  # noqa: E402  (tests/unit is not on sys.path when only this folder runs)

ROLES = ["falco", "node_exporter", "falco_exporter", "_common"]
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
# Keys whose values Ansible evaluates as bare Jinja expressions.
BARE = {"when", "that", "failed_when", "changed_when", "until"}
MESSAGES = {"msg", "fail_msg", "success_msg"}


def boolean_variables():
    names = set()
    for role in ROLES:
        specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        for entry in specs.values():
            names |= {name for name, spec in (entry.get("options") or {}).items() if spec.get("type") == "bool"}
    return sorted(names)


def expressions(node, key=None):
    """Every Jinja expression of a loaded YAML task, handler or vars file."""
    if isinstance(node, dict):
        for k, value in node.items():
            yield from expressions(value, k)
    elif isinstance(node, list):
        for value in node:
            yield from expressions(value, key)
    elif isinstance(node, str):
        if key in BARE:
            yield node
        else:
            for match in JINJA.findall(node):
                # Printing a value in a message is not a boolean use.
                if key in MESSAGES and re.fullmatch(r"\{\{\s*\w+\s*\}\}", match):
                    continue
                yield match


def sources():
    for role in ROLES:
        base = REPO / "roles" / role
        for folder in ("tasks", "handlers", "vars"):
            for path in sorted((base / folder).glob("*.yml")):
                yield path, list(expressions(yaml.safe_load(path.read_text())))
        for path in sorted((base / "templates").glob("*.j2")):
            yield path, JINJA.findall(path.read_text())


def test_every_boolean_variable_is_read_with_the_bool_filter():
    names = boolean_variables()
    assert {"falco_grpc_enabled", "falco_metrics_enabled", "falco_syslog_output", "node_exporter_tls_enabled"} <= set(names)
    bare, seen = [], set()
    for path, exprs in sources():
        for expr in exprs:
            for name in names:
                for match in re.finditer(r"(?<![\w.'\"])%s(?![\w'\"])" % name, expr):
                    seen.add(name)
                    rest = expr[match.end():]
                    if not re.match(r"\s*(\|\s*default\([^()]*\)\s*)?\|\s*bool\b", rest):
                        bare.append("%s: %s in %s" % (path.relative_to(REPO), name, expr.strip()))
    assert not bare, "read without | bool:\n" + "\n".join(bare)
    # The scan found the variables where they are used (a scan that sees nothing proves nothing).
    assert {"falco_grpc_enabled", "falco_metrics_enabled", "falco_syslog_output", "falco_rules_auto_update",
            "node_exporter_tls_enabled", "node_exporter_container_pull", "falco_exporter_container_pull"} <= seen


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    if not shutil.which("ansible-playbook"):
        pytest.skip("ansible-playbook not on PATH (activate the venv: . scripts/lib.sh; activate_venv)")
    return tmp_path_factory.mktemp("booleans")


def node_exporter_vars(workdir, value):
    """node_exporter's web settings as its vars/main.yml computes them, with -e node_exporter_tls_enabled=VALUE."""
    role = REPO / "roles" / "node_exporter"
    out = workdir / ("node-exporter-%s.json" % value)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_vars": {"file": str(role / "defaults" / "main.yml")}},
        {"ansible.builtin.include_vars": {"file": str(role / "vars" / "main.yml")}},
        {"ansible.builtin.copy": {"dest": str(out), "mode": "0600", "content":
                                  "{{ {'enabled': __node_exporter_web_config_enabled | bool,"
                                  " 'args': __node_exporter_args, 'volumes': __node_exporter_container_volumes} | to_json }}"}},
    ]}]
    rc, output, _recap = ansible_playbook(workdir, play, {}, "-e", "node_exporter_tls_enabled=" + value)
    assert rc == 0, output
    return json.loads(out.read_text())


@pytest.mark.parametrize("value", ["false", "False", "no"])
def test_node_exporter_tls_false_from_the_command_line(workdir, value):
    rendered = node_exporter_vars(workdir, value)
    assert rendered["enabled"] is False
    assert rendered["volumes"] == ["/:/host:ro,rslave"]
    assert not [a for a in rendered["args"] if a.startswith("--web.config.file")]


def test_node_exporter_tls_true_from_the_command_line(workdir):
    rendered = node_exporter_vars(workdir, "true")
    assert rendered["enabled"] is True
    assert "/etc/node_exporter:/etc/node_exporter:ro" in rendered["volumes"]
    assert "--web.config.file=/etc/node_exporter/web-config.yml" in rendered["args"]


def test_node_exporter_basic_auth_needs_tls_even_when_false_is_a_string(workdir):
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack.node_exporter", "tasks_from": "preflight"}}]}]
    rc, output, recap = ansible_playbook(workdir, play, {"node_exporter_basic_auth_users": {"prometheus": "secret"}},
                                         "-e", "node_exporter_tls_enabled=false")
    assert rc != 0
    assert "node_exporter_basic_auth_users needs node_exporter_tls_enabled: true" in output
    assert recap["changed"] == 0
