"""Write each role's variable reference from its meta/argument_specs.yml.

Generates roles/ROLE/README.md and the block between the VARIABLES markers in docs/ROLE.md.
With --check, writes nothing and exits 1 when a file is stale (the lint stage runs it that way).
"""

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN VARIABLES (generated from meta/argument_specs.yml) -->", "<!-- END VARIABLES -->"
MARKUP = [(re.compile(r"[CO]\(([^)]*)\)"), r"`\1`"), (re.compile(r"L\(([^,]*),([^)]*)\)"), r"[\1](\2)")]


def plain(text):
    text = " ".join(text) if isinstance(text, list) else str(text)
    for pattern, replacement in MARKUP:
        text = pattern.sub(replacement, text)
    return text.replace("|", "\\|").replace("\n", " ")


def default_of(option):
    if "default" not in option:
        return "*required*" if option.get("required") else ""
    value = option["default"]
    # Table cells: a "|" (Jinja filters in defaults that follow fleetwatch_tls_enabled) would end the cell.
    return "`%s`" % (yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()
                     if not isinstance(value, str) else repr(value) if value == "" else value).replace("|", "\\|")


def variables_table(spec):
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, option in spec["options"].items():
        kind = option.get("type", "str")
        if option.get("elements"):
            kind += " of " + option["elements"]
        description = plain(option.get("description", ""))
        if option.get("choices"):
            description += " Choices: " + ", ".join("`%s`" % c for c in option["choices"]) + "."
        rows.append("| `%s` | %s | %s | %s |" % (name, kind, default_of(option), description))
    return "\n".join(rows) + "\n"


def role_readme(role, spec):
    return "\n".join([
        "# Role %s" % role, "",
        plain(spec.get("short_description", "")), "",
        *[plain(line) + "\n" for line in spec.get("description", [])],
        "This file is generated from `meta/argument_specs.yml` by `scripts/role_docs.py`; the collection's",
        "[docs/%s.md](../../docs/%s.md) has the how-to." % (role, role), "",
        "## Variables", "",
        variables_table(spec),
    ])


def with_block(text, table):
    if BEGIN not in text or END not in text:
        return text.rstrip("\n") + "\n\n## Variables\n\n%s\n%s%s\n" % (BEGIN, table, END)
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + table + END + rest.split(END, 1)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    args = parser.parse_args()
    stale = []
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        if role.startswith("_"):
            continue
        spec = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]
        doc = ROOT / "docs" / ("%s.md" % role)
        wanted = {
            spec_file.parent.parent / "README.md": role_readme(role, spec),
            doc: with_block(doc.read_text() if doc.exists() else "# %s\n" % role, variables_table(spec)),
        }
        for path, content in wanted.items():
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
