"""scripts/role_docs.py: the specs' markup as Markdown through antsibull-docs-parser, on fixture text, and the one
place each table is generated. (The lint stage's `role_docs.py --check` keeps the generated files in sync.)"""

import importlib.util

import pytest

from localplay import REPO

_spec = importlib.util.spec_from_file_location("role_docs", REPO / "scripts" / "role_docs.py")
role_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(role_docs)


@pytest.mark.parametrize("markup,markdown", [
    ("Set C(foo) to C(bar) here.", "Set `foo` to `bar` here."),
    ("O(node_exporter_mode=container) or O(node_exporter_mode)", "`node_exporter_mode=container` or `node_exporter_mode`"),
    ("V(true) and E(HOME)", "`true` and `HOME`"),
    ("See L(the docs,https://example.com/a_b) and U(https://example.com/x).",
     "See [the docs](https://example.com/a_b) and <https://example.com/x>."),
    ("The P(fleetwatch.falco_stack.event_forwarder#role) role, M(ansible.builtin.copy).",
     "The `fleetwatch.falco_stack.event_forwarder` role, `ansible.builtin.copy`."),
    ("I(one) B(two)", "_one_ **two**"),
    # A table cell ends at "|", in code too; "<=" stays as written, a tag-like "<b" does not become HTML.
    ("C(a | b) or x | y, Falco <= 0.43, <b>", "`a \\| b` or x \\| y, Falco <= 0.43, &lt;b>"),
    (["First paragraph,", "second."], "First paragraph, second."),
])
def test_markup_becomes_markdown_for_a_table_cell(markup, markdown):
    assert role_docs.cell(markup, "node_exporter", "fixture") == markdown


def test_bad_markup_stops_the_run_naming_the_role_and_the_option():
    with pytest.raises(SystemExit) as stopped:
        role_docs.cell("the M(event_collector) host", "event_forwarder", "event_forwarder_port")
    message = str(stopped.value)
    assert "roles/event_forwarder/meta/argument_specs.yml, event_forwarder_port" in message
    assert "event_collector" in message and "FQCN" in message


def test_defaults_in_the_table():
    options = {
        "x_port": {"type": "int", "default": 9100, "description": "A port."},
        "x_url": {"type": "str", "default": "{{ a | default('') }}", "description": "A template."},
        "x_empty": {"type": "str", "default": "", "description": "Empty."},
        "x_list": {"type": "list", "elements": "str", "default": ["monitoring"], "description": "Groups."},
        "x_password": {"type": "str", "required": True, "description": "Required."},
        "x_mode": {"type": "str", "choices": ["package", "container"], "default": "package", "description": "Mode."},
    }
    rows = role_docs.variables_table("node_exporter", options).splitlines()
    assert rows[2:] == [
        "| `x_port` | int | `9100` | A port. |",
        "| `x_url` | str | `{{ a \\| default('') }}` | A template. |",
        "| `x_empty` | str | `''` | Empty. |",
        "| `x_list` | list of str | `[monitoring]` | Groups. |",
        "| `x_password` | str | *required* | Required. |",
        "| `x_mode` | str | `package` | Mode. Choices: `package`, `container`. |",
    ]


def test_each_table_is_generated_in_one_place():
    wanted = {str(path.relative_to(REPO)): text for path, text in role_docs.wanted_files().items()}
    roles = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml")
                   if not p.parent.parent.name.startswith("_"))
    assert roles and all("roles/%s/README.md" % role in wanted for role in roles)
    for role in roles:
        # The role's README has its table; docs/ROLE.md links to it instead of holding a copy.
        assert "| Variable | Type | Default | Description |" in wanted["roles/%s/README.md" % role]
        block = wanted["docs/%s.md" % role].split(role_docs.BEGIN, 1)[1].split(role_docs.END, 1)[0]
        assert "| Variable |" not in block and "../roles/%s/README.md#variables" % role in block
    # Every variable name appears in exactly one generated table.
    firewall = wanted["docs/security.md"].split(role_docs.SHARED["begin"], 1)[1].split(role_docs.SHARED["end"], 1)[0]
    tables = [wanted["roles/%s/README.md" % role] for role in roles] + [firewall]
    rows = [line.split("`")[1] for text in tables for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(set(rows)), sorted(name for name in set(rows) if rows.count(name) > 1)
    assert "fleetwatch_firewall_enabled" in rows
    assert "| `fleetwatch_firewall_enabled` | bool | `false` |" in firewall
    assert "docs/security.md#host-firewall-opt-in" in wanted["roles/falco/README.md"]
