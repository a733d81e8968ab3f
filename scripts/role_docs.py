"""Write each role's variable reference from its meta/argument_specs.yml.

Each variable table is generated once: roles/ROLE/README.md holds the role's table; the block between the VARIABLES
markers in docs/ROLE.md links to it; the variables several roles read (the host firewall's fleetwatch_firewall_*,
declared once by _common's firewall entry point) have their one table in docs/security.md, and the READMEs of the
roles that include that entry point link there.
The specs' markup (C(), O(), V(), L(), U(), M(), P(), I(), B(), ...) is parsed by antsibull-docs-parser, the parser
ansible-doc and the Ansible documentation use, and written as Markdown; malformed markup stops the run, naming the
role and the option.
With --check, writes nothing and exits 1 when a file is stale (the lint stage runs it that way).
"""

import argparse
import re
import sys
from pathlib import Path

import yaml
from antsibull_docs_parser import dom
from antsibull_docs_parser.format import Formatter
from antsibull_docs_parser.md import to_md
from antsibull_docs_parser.parser import Context, parse

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = "fleetwatch.falco_stack"
BEGIN, END = "<!-- BEGIN VARIABLES (generated from meta/argument_specs.yml) -->", "<!-- END VARIABLES -->"
# Variables several roles read, declared once by an entry point of _common: one table of them, in the document that
# explains them.
SHARED = {
    "prefix": "fleetwatch_firewall_",
    "entry_point": "firewall",
    "doc": "docs/security.md",
    "anchor": "host-firewall-opt-in",
    "begin": "<!-- BEGIN FIREWALL VARIABLES (generated from roles/_common/meta/argument_specs.yml) -->",
    "end": "<!-- END FIREWALL VARIABLES -->",
}


def escape(text):
    """Plain text as Markdown that shows it as written, also in a table cell: a "|" would end the cell, a backslash
    escape what follows, a "*" start emphasis, a "<" before a letter start an HTML tag ("<= 0.43" is left alone)."""
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def code(text):
    # A code span shows backslashes as they are; only "|" needs escaping inside a table (GitHub splits cells first).
    fence = "``" if "`" in text else "`"
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return "%s%s%s%s%s" % (fence, padding, text.replace("|", "\\|"), padding, fence)


class TableCellFormatter(Formatter):
    """Markdown for table cells and paragraphs: code spans in backticks, links as [text](url), no HTML."""

    def format_error(self, part):
        raise ValueError(part.message)

    def format_bold(self, part):
        return "**%s**" % escape(part.text)

    def format_code(self, part):
        return code(part.text)

    def format_horizontal_line(self, part):
        return " "

    def format_italic(self, part):
        return "_%s_" % escape(part.text)

    def format_link(self, part):
        return "[%s](%s)" % (escape(part.text), part.url)

    def format_module(self, part, url):
        return code(part.fqcn)

    def format_rst_ref(self, part):
        return escape(part.text)

    def format_url(self, part):
        return "<%s>" % part.url

    def format_text(self, part):
        return escape(part.text)

    def format_env_variable(self, part):
        return code(part.name)

    def format_option_name(self, part, url):
        return code(part.name if part.value is None else "%s=%s" % (part.name, part.value))

    def format_option_value(self, part):
        return code(part.value)

    def format_plugin(self, part, url):
        return code(part.plugin.fqcn)

    def format_return_value(self, part, url):
        return self.format_option_name(part, url)


FORMATTER = TableCellFormatter()


def markdown(text, role, where, separator="\n\n"):
    """The specs' markup in text (a string or a list of paragraphs) as Markdown, paragraphs joined by separator."""
    context = Context(current_plugin=dom.PluginIdentifier(fqcn="%s.%s" % (COLLECTION, role), type="role"),
                      role_entrypoint="main")
    try:
        paragraphs = parse(text, context, errors="exception", strict=True)
    except ValueError as error:
        raise SystemExit("roles/%s/meta/argument_specs.yml, %s: bad markup: %s" % (role, where, error)) from error
    return to_md(paragraphs, formatter=FORMATTER, par_sep=separator)


def cell(text, role, where):
    return markdown(text, role, where, separator=" ").replace("\n", " ")


def default_of(option):
    if "default" not in option:
        return "*required*" if option.get("required") else ""
    value = option["default"]
    if isinstance(value, str):
        return code(repr(value) if value == "" else value)
    return code(yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip())


def variables_table(role, options):
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, option in options.items():
        kind = option.get("type", "str")
        if option.get("elements"):
            kind += " of " + option["elements"]
        description = cell(option.get("description", ""), role, name)
        if option.get("choices"):
            description += " Choices: " + ", ".join(code(str(c)) for c in option["choices"]) + "."
        rows.append("| `%s` | %s | %s | %s |" % (name, kind, default_of(option), description))
    return "\n".join(rows) + "\n"


def shared_options():
    spec = yaml.safe_load((ROOT / "roles" / "_common" / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = spec[SHARED["entry_point"]]["options"]
    return {name: option for name, option in options.items() if name.startswith(SHARED["prefix"])}


def includes_shared_entry_point(role):
    """Whether the role's tasks/main.yml includes _common's entry point that reads the shared variables."""
    tasks = yaml.safe_load((ROOT / "roles" / role / "tasks" / "main.yml").read_text()) or []
    return any((task.get("ansible.builtin.include_role") or {}).get("tasks_from") == SHARED["entry_point"]
               for task in tasks)


def role_readme(role, spec):
    lines = [
        "# Role %s" % role, "",
        markdown(spec.get("short_description", ""), role, "short_description"), "",
        markdown(spec.get("description", []), role, "description"), "",
        "This file is generated from `meta/argument_specs.yml` by `scripts/role_docs.py`; the collection's",
        "[docs/%s.md](../../docs/%s.md) has the how-to." % (role, role), "",
        "## Variables", "",
        variables_table(role, spec["options"]),
    ]
    if includes_shared_entry_point(role):
        shared = shared_options()
        lines += ["The role also reads the host firewall's variables, shared by the agent roles: %s "
                  "([%s](../../%s#%s) has their table)." % (
                      ", ".join("`%s`" % name for name in shared), SHARED["doc"], SHARED["doc"], SHARED["anchor"]), ""]
    return "\n".join(lines)


def doc_link(role):
    return ("Every variable of the role, with its type, default and description, is in "
            "[roles/%s/README.md](../roles/%s/README.md#variables), generated from its `meta/argument_specs.yml`.\n"
            % (role, role))


def with_block(text, block, begin=BEGIN, end=END, heading="## Variables"):
    if begin not in text or end not in text:
        return text.rstrip("\n") + "\n\n%s\n\n%s\n%s%s\n" % (heading, begin, block, end)
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + block + end + rest.split(end, 1)[1]


def wanted_files():
    """{path: content} of every generated file and block."""
    wanted = {}
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        if role.startswith("_"):
            continue
        spec = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]
        doc = ROOT / "docs" / ("%s.md" % role)
        wanted[spec_file.parent.parent / "README.md"] = role_readme(role, spec)
        wanted[doc] = with_block(doc.read_text() if doc.exists() else "# %s\n" % role, doc_link(role))
    doc = ROOT / SHARED["doc"]
    wanted[doc] = with_block(doc.read_text(), variables_table("_common", shared_options()), SHARED["begin"],
                             SHARED["end"], "## Host firewall variables")
    return wanted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    args = parser.parse_args()
    stale = []
    for path, content in wanted_files().items():
        if not path.exists() or path.read_text() != content:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(content)
    if args.check and stale:
        print("stale generated docs (run scripts/role_docs.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
