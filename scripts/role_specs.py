"""Check that every role's defaults/main.yml and meta/argument_specs.yml say the same.

For each role under roles/ and each entry point of its argument specs:
- every variable in defaults/main.yml is an option of the main entry point, and every option of any entry point is in
  defaults/main.yml, unless the spec marks it required: a required variable has no default by design;
- an option whose variable is in defaults/main.yml has a `default:` equal to that value. Literal values are compared
  as loaded YAML, type included (`1` is not `true`, `"1"` is not `1`). Strings holding Jinja (`{{ }}`, `{% %}`) are
  compared as Jinja's lexer reads them, without the whitespace between tokens: a template folded over several lines
  in one file and written on one line in the other is the same default, while any other difference (a name, an
  operator, the text of a string literal or outside the braces) is not;
- a literal default has the option's type (and, for a list, each element the type in `elements`); a templated default
  is a string whose type only shows when Ansible renders it, so its type is not checked;
- a literal default is one of the option's `choices` (for a list, each of its elements).
Options named with two leading underscores are the include variables of an internal role's task files (`_common`):
the caller passes them, they have no defaults/main.yml value by design, and only their own literal `default:` is
checked against their type and choices.
An internal role's defaults/main.yml values (the host firewall's fleetwatch_firewall_*, read by _common's firewall
task file) are options of the entry point that reads them instead of main, which only refuses direct use.

The lint stage runs it (`python scripts/role_specs.py`); it prints each problem with the role, the variable and what
to change, and exits 1 when there is any.
"""

import argparse
import sys
from pathlib import Path

import jinja2
import yaml

ROOT = Path(__file__).resolve().parent.parent
_LEXER = jinja2.Environment()
# Ansible's option types and the Python types a literal value of each loads as from YAML.
TYPES = {
    "str": (str,), "path": (str,), "bool": (bool,), "int": (int,), "float": (float, int),
    "list": (list,), "dict": (dict,),
}


def is_template(value):
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def jinja_tokens(text):
    return [(kind, value) for _line, kind, value in _LEXER.lex(text) if kind != "whitespace"]


def same(a, b):
    """Whether two loaded YAML values are the same default (templates compared as Jinja tokens)."""
    if is_template(a) or is_template(b):
        return is_template(a) and is_template(b) and jinja_tokens(a) == jinja_tokens(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def has_type(value, kind):
    """Whether a literal value has an option type; types this check cannot judge (raw, json, ...) accept anything."""
    wanted = TYPES.get(kind)
    if wanted is None or value is None:
        return True
    # bool is a subclass of int in Python; YAML's true is no int.
    return isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted)


def load(path):
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def option_problems(where, name, option, defaults):
    """What is wrong between one option and defaults/main.yml."""
    if name not in defaults:
        if not option.get("required"):
            yield "%s: %s has no value in defaults/main.yml: add one there, or mark the option required: true" % (
                where, name)
        return
    value = defaults[name]
    if option.get("required"):
        yield "%s: %s is required: true but defaults/main.yml gives it a value: drop one of the two" % (where, name)
    if "default" not in option:
        yield "%s: %s has no default: in the spec; defaults/main.yml has %r" % (where, name, value)
    elif not same(option["default"], value):
        yield "%s: %s defaults to %r in the spec but %r in defaults/main.yml: make them the same" % (
            where, name, option["default"], value)
    if is_template(value):
        return
    kind = option.get("type", "str")
    if not has_type(value, kind):
        yield "%s: %s is type: %s but its default %r is a %s" % (where, name, kind, value, type(value).__name__)
    elements = option.get("elements")
    if kind == "list" and elements and isinstance(value, list):
        for item in value:
            if not is_template(item) and not has_type(item, elements):
                yield "%s: %s has elements: %s but its default holds %r" % (where, name, elements, item)
    choices = option.get("choices")
    if choices is not None and value is not None:
        for item in (value if isinstance(value, list) else [value]):
            if not is_template(item) and item not in choices:
                yield "%s: %s defaults to %r, which is not one of its choices %s" % (where, name, item, choices)


def role_problems(role_dir):
    """Every disagreement between a role's defaults/main.yml and its argument specs."""
    spec_file = role_dir / "meta" / "argument_specs.yml"
    role = "roles/%s" % role_dir.name
    if not spec_file.is_file():
        return ["%s: no meta/argument_specs.yml: declare every variable of defaults/main.yml there" % role]
    defaults = load(role_dir / "defaults" / "main.yml")
    entry_points = (load(spec_file).get("argument_specs") or {})
    # An internal role (_common) is only used through its other entry points, the task files callers include: one
    # of those declares each of its defaults. Any other role's defaults are options of its main entry point.
    internal = role_dir.name.startswith("_")
    declaring = entry_points.values() if internal else [entry_points.get("main")]
    declared = {name for spec in declaring for name in ((spec or {}).get("options") or {})}
    problems = ["%s: %s is in defaults/main.yml but not in meta/argument_specs.yml (%s): declare it there" % (
        role, name, "an entry point" if internal else "main") for name in defaults if name not in declared]
    for entry, spec in entry_points.items():
        for name, option in ((spec or {}).get("options") or {}).items():
            known = defaults
            if name.startswith("__"):
                # An include variable's own default stands in for the defaults/main.yml value it cannot have.
                if "default" not in (option or {}):
                    continue
                known = {name: option["default"]}
            problems.extend(option_problems("%s (entry point %s)" % (role, entry), name, option, known))
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roles", nargs="*", type=Path, help="role directories (default: every one under roles/)")
    args = parser.parse_args(argv)
    role_dirs = args.roles or sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
    problems = [problem for role_dir in role_dirs for problem in role_problems(role_dir)]
    for problem in problems:
        print(problem)
    if problems:
        print("%d problem(s) between defaults/main.yml and meta/argument_specs.yml" % len(problems))
        return 1
    print("defaults and argument specs agree in %d roles" % len(role_dirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
