# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check Falco rules items and rule exceptions, given as data, the way Falco's rule loader reads them.

The falco role's preflight runs these checks on ``falco_local_rules`` and ``falco_rule_exceptions`` before anything
on a host changes, so a typo is reported with the variable, the item and the fix instead of surfacing later as
Falco's validation error on the host (or, before Falco 0.44, not at all: older releases ignore unknown keys).

What Falco accepts is what its rule schema (``falco --rule-schema``, 0.39 and newer) and its loader
(userspace/engine/rule_loader_reader.cpp) say: the keys of each kind of item, their types, the priorities, the keys
an ``override`` may append to or replace, and the comparison operators of exceptions. The unit tests compare these
tables with the schema Falco 0.44.1 prints. Conditions, outputs and field names are left to Falco's own validation
on the host (``falco -V``), which needs the engine.
"""

from __future__ import annotations

__metaclass__ = type

import difflib
import re

# Kinds of item in the order Falco's loader tests for them: an item with a "list" key is a list even if it has a
# "rule" key too (such an item is refused here: it is one or the other).
KINDS = ("required_engine_version", "required_plugin_versions", "list", "macro", "rule")

# Value types of the keys.
STRING = "a non-empty string"
BOOL = "true or false"
INT = "a whole number"
STRINGS = "a list of strings"
SCALARS = "a list of strings or numbers"
PRIORITY = "a priority"
EXCEPTIONS = "a list of exceptions"
OVERRIDE = "a mapping of keys to append or replace"
PLUGINS = "a list of {name, version} plugin requirements"
ENGINE_VERSION = "an engine version such as 0.31.0 or 26"

ITEM_KEYS = {
    "required_engine_version": {"required_engine_version": ENGINE_VERSION},
    "required_plugin_versions": {"required_plugin_versions": PLUGINS},
    "list": {"list": STRING, "items": SCALARS, "append": BOOL, "override": OVERRIDE},
    "macro": {"macro": STRING, "condition": STRING, "append": BOOL, "override": OVERRIDE},
    "rule": {"rule": STRING, "desc": STRING, "condition": STRING, "output": STRING, "priority": PRIORITY,
             "source": STRING, "enabled": BOOL, "tags": STRINGS, "exceptions": EXCEPTIONS, "append": BOOL,
             "override": OVERRIDE, "warn_evttypes": BOOL, "skip-if-unknown-filter": BOOL, "capture": BOOL,
             "capture_duration": INT},
}
# Keys newer than the oldest Falco the role supports (0.31), and the release that brought each. Older releases
# ignore a key they do not know, so the item would not do what it says.
KEY_SINCE = {"override": (0, 37, 0), "capture": (0, 42, 0), "capture_duration": (0, 42, 0)}
# What an override may do to each key (Falco's loader; an override is a mapping such as {condition: append}).
OVERRIDE_APPEND = {"list": ("items",), "macro": ("condition",),
                   "rule": ("condition", "output", "desc", "tags", "exceptions")}
OVERRIDE_REPLACE = {"list": ("items",), "macro": ("condition",),
                    "rule": ("condition", "output", "desc", "priority", "tags", "exceptions", "enabled",
                             "warn_evttypes", "skip-if-unknown-filter", "capture", "capture_duration")}
# The four keys a new rule must have; a rule item without any of them only switches an existing rule on or off.
RULE_REQUIRED = ("condition", "output", "desc", "priority")
# Falco's priorities; Falco compares them case-insensitively and takes "info" for "informational".
PRIORITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "info", "debug")
# Comparison operators of libsinsp's filter grammar that take a value ("exists" takes none).
COMPARISON_OPERATORS = ("=", "==", "!=", "<", "<=", ">", ">=", "contains", "icontains", "bcontains", "glob", "iglob",
                        "startswith", "bstartswith", "endswith", "regex", "in", "intersects", "pmatch")
# Operators that compare with a list of values: the only ones for a single (string) field, and the only ones whose
# value may itself be a list.
LIST_OPERATORS = ("in", "intersects", "pmatch")
EXCEPTION_KEYS = ("name", "fields", "comps", "values")
REQUIRED_EXCEPTION_KEYS = {"name": "a name for the exception, unique within its rule",
                           "rule": "the name of the rule the exception is added to"}
PLUGIN_KEYS = ("name", "version", "alternatives")
ALTERNATIVE_KEYS = ("name", "version")
# Names Falco's loader accepts: macros are identifiers; lists anything without blanks, quotes, parentheses, = or ,.
MACRO_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*\Z")
LIST_NAME = re.compile(r"[^()\"'\s=,]+\Z")
ENGINE_SEMVER = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\Z")
NEWEST = (999, 0, 0)


def parse_version(version):
    """(major, minor, patch) of a Falco version such as "0.44.1"; anything else counts as the newest."""
    match = re.match(r"\s*([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", "%s" % (version,))
    if not match:
        return NEWEST
    return tuple(int(part or 0) for part in match.groups())


def _version_text(version):
    return ".".join("%d" % part for part in version)


def _is_string(value):
    return isinstance(value, str)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value):
    """A short account of a wrong value for a message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "the boolean %s" % ("true" if value else "false")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if _is_int(value) or isinstance(value, float):
        return "the number %s" % (value,)
    if _is_string(value):
        return "'%s'" % (value,) if value else "an empty string"
    return "a %s" % (type(value).__name__,)


def _did_you_mean(key, candidates):
    close = difflib.get_close_matches("%s" % (key,), list(candidates), n=1, cutoff=0.6)
    return ", did you mean '%s'?" % close[0] if close else ""


def _type_problem(value, kind):
    """What is wrong with value for a key of type kind, or None."""
    if kind in (STRING, ENGINE_VERSION):
        if kind == ENGINE_VERSION and _is_int(value):
            return None
        if not _is_string(value) or not value.strip():
            return "must be %s, not %s" % (kind, _describe(value))
        if kind == ENGINE_VERSION and not (value.isdigit() or ENGINE_SEMVER.match(value)):
            return "must be %s, not %s" % (kind, _describe(value))
        return None
    if kind == BOOL:
        return None if isinstance(value, bool) else "must be true or false, not %s%s" % (
            _describe(value), " (write it unquoted)" if _is_string(value) else "")
    if kind == INT:
        return None if _is_int(value) else "must be %s, not %s" % (kind, _describe(value))
    if kind == STRINGS:
        if not isinstance(value, list):
            return "must be %s, not %s" % (kind, _describe(value))
        wrong = [entry for entry in value if not _is_string(entry) or not entry]
        return "must be %s; %s is not" % (kind, _describe(wrong[0])) if wrong else None
    if kind == SCALARS:
        if not isinstance(value, list):
            return "must be %s, not %s" % (kind, _describe(value))
        wrong = [entry for entry in value if not (_is_string(entry) or _is_int(entry))]
        return "must be %s; %s is not" % (kind, _describe(wrong[0])) if wrong else None
    if kind == PRIORITY:
        if _is_string(value) and value.lower() in PRIORITIES:
            return None
        return "%s is not a priority Falco knows: use one of %s (any case)%s" % (
            _describe(value), ", ".join(PRIORITIES), _did_you_mean(("%s" % (value,)).lower(), PRIORITIES))
    if kind in (EXCEPTIONS, PLUGINS):
        return None if isinstance(value, list) else "must be %s, not %s" % (kind, _describe(value))
    if kind == OVERRIDE:
        return None if isinstance(value, dict) and value else "must be %s such as {condition: append}, not %s" % (
            kind, _describe(value))
    return None


def _exception_problems(exception, where, fields_optional=False, values_required=True, extra_keys=()):
    """Problems of one exception {name, fields, comps, values}; where names it for the messages."""
    if not isinstance(exception, dict):
        return ["%s is %s, not a mapping: write it as {name, fields, comps, values}" % (where, _describe(exception))]
    problems = []
    allowed = EXCEPTION_KEYS + tuple(extra_keys)
    for key in exception:
        if key not in allowed:
            problems.append("%s: unknown key '%s'%s (an exception has %s)" % (
                where, key, _did_you_mean(key, allowed), ", ".join(allowed)))
    for key in ("name",) + tuple(extra_keys):
        if key not in exception:
            problems.append("%s: missing '%s' (%s)" % (where, key, REQUIRED_EXCEPTION_KEYS[key]))
        elif not _is_string(exception[key]) or not exception[key].strip():
            problems.append("%s: %s must be a non-empty string, not %s" % (where, key, _describe(exception[key])))
    fields, comps, values = exception.get("fields"), exception.get("comps"), exception.get("values")
    if "fields" not in exception:
        if not fields_optional:
            problems.append("%s: missing 'fields', the event fields the exception compares (for example "
                            "[proc.name, fd.name])" % where)
        return problems
    if _is_string(fields):
        return problems + _single_field_problems(where, fields, exception, comps, values, values_required)
    if not isinstance(fields, list) or not fields or not all(_is_string(f) and f for f in fields):
        return problems + ["%s: fields must be a field name or a non-empty list of field names, not %s" % (
            where, _describe(fields))]
    if "comps" in exception:
        if not isinstance(comps, list):
            problems.append("%s: with a list of fields, comps must be a list with one operator per field (for "
                            "example %s), not %s" % (where, _example_comps(fields), _describe(comps)))
            comps = None
        elif len(comps) != len(fields):
            problems.append("%s: fields has %d entries but comps has %d: give one comparison operator per field "
                            "(Falco refuses it: \"Fields and comps lists must have equal length\")" % (
                                where, len(fields), len(comps)))
            comps = None
        else:
            for position, comp in enumerate(comps, 1):
                if comp not in COMPARISON_OPERATORS:
                    problems.append("%s: comps entry %d (%s) is not a comparison operator Falco knows: use one of "
                                    "%s" % (where, position, _describe(comp), " ".join(COMPARISON_OPERATORS)))
    else:
        comps = ["="] * len(fields)  # Falco's default
    if "values" not in exception:
        if values_required:
            problems.append("%s: missing 'values', a list of rows with one value per field" % where)
        return problems
    if not isinstance(values, list):
        return problems + ["%s: values must be a list of rows, one value per field in each, not %s" % (
            where, _describe(values))]
    for row_number, row in enumerate(values, 1):
        if not isinstance(row, list):
            problems.append("%s: values row %d is %s; with a list of fields every row is a list with one value per "
                            "field, for example [%s]" % (where, row_number, _describe(row), ", ".join(
                                "VALUE" for _f in fields)))
            continue
        if len(row) != len(fields):
            problems.append("%s: values row %d has %d value(s) for %d field(s): every row of values needs one value "
                            "per field (Falco refuses it: \"Fields and values lists must have equal length\")" % (
                                where, row_number, len(row), len(fields)))
            continue
        for position, value in enumerate(row, 1):
            comp = comps[position - 1] if comps else None
            problems.extend(_value_problems(value, comp, "%s: values row %d, value %d" % (where, row_number, position)))
    return problems


def _single_field_problems(where, field, exception, comps, values, values_required):
    problems = []
    if not field.strip():
        problems.append("%s: fields must not be empty" % where)
    if "comps" in exception and comps not in LIST_OPERATORS:
        problems.append("%s: with a single field (fields: %s) comps must be one of %s, not %s; or make fields a list "
                        "with one operator per field in comps" % (where, field, ", ".join(LIST_OPERATORS),
                                                                  _describe(comps)))
    if "values" not in exception:
        if values_required:
            problems.append("%s: missing 'values', the list of values the field is compared with" % where)
        return problems
    if not isinstance(values, list):
        return problems + ["%s: values must be a list, not %s" % (where, _describe(values))]
    for position, value in enumerate(values, 1):
        if isinstance(value, list):
            problems.append("%s: values entry %d is a list; with a single field (fields: %s) values is a flat list "
                            "of values (Falco: \"Expected values array to contain a list of strings\")" % (
                                where, position, field))
        else:
            problems.extend(_value_problems(value, "in", "%s: values entry %d" % (where, position)))
    return problems


def _value_problems(value, comp, where):
    if isinstance(value, list):
        if comp not in LIST_OPERATORS:
            return ["%s is a list, which only %s compare with; its comps entry is %s" % (
                where, ", ".join(LIST_OPERATORS), _describe(comp))]
        wrong = [entry for entry in value if isinstance(entry, bool) or not (_is_string(entry) or _is_int(entry)
                                                                             or isinstance(entry, float))]
        return ["%s holds %s: list values are strings or numbers" % (where, _describe(wrong[0]))] if wrong else []
    if isinstance(value, bool):
        return ["%s is the boolean %s: quote it if you mean the text (YAML reads yes, no, on, off, true and false "
                "as booleans)" % (where, "true" if value else "false")]
    if value is None or (_is_string(value) and not value):
        return ["%s is empty: Falco needs a value to compare with" % where]
    if not (_is_string(value) or _is_int(value) or isinstance(value, float)):
        return ["%s is %s: values are strings or numbers" % (where, _describe(value))]
    return []


def _example_comps(fields):
    return "[%s]" % ", ".join('"="' for _f in fields)


def _item_label(variable, number, kind, item):
    if kind in ("rule", "macro", "list") and _is_string(item.get(kind)):
        return "%s item %d (%s '%s')" % (variable, number, kind, item[kind])
    return "%s item %d (%s)" % (variable, number, kind)


def _override_problems(label, kind, item, override):
    problems = []
    for key, operation in override.items():
        appendable, replaceable = key in OVERRIDE_APPEND[kind], key in OVERRIDE_REPLACE[kind]
        if not (appendable or replaceable):
            problems.append("%s: override names '%s', which a %s cannot override (it can: %s)%s" % (
                label, key, kind, ", ".join(OVERRIDE_REPLACE[kind]), _did_you_mean(key, OVERRIDE_REPLACE[kind])))
            continue
        if operation not in ("append", "replace"):
            allowed = [op for op, ok in (("append", appendable), ("replace", replaceable)) if ok]
            problems.append("%s: override of '%s' is %s; it must be %s" % (
                label, key, _describe(operation), " or ".join(allowed)))
        elif operation == "append" and not appendable:
            problems.append("%s: '%s' cannot be appended to, use override: {%s: replace}" % (label, key, key))
        if key not in item:
            problems.append("%s: override names '%s' but the item has no '%s': give the %s to %s, or drop '%s' from "
                            "override" % (label, key, key, key, operation if operation in ("append", "replace")
                                          else "use", key))
    for key in OVERRIDE_REPLACE[kind]:
        if key in item and key not in override:
            problems.append("%s: '%s' has no entry under override, so Falco refuses the item (\"no corresponding "
                            "entry under 'override' is defined\"): add override: {%s: %s}" % (
                                label, key, key, "append" if key in OVERRIDE_APPEND[kind] else "replace"))
    return problems


def _plugin_problems(label, requirements):
    problems = []
    for number, requirement in enumerate(requirements, 1):
        where = "%s: plugin requirement %d" % (label, number)
        if not isinstance(requirement, dict):
            problems.append("%s is %s, not a mapping {name, version}" % (where, _describe(requirement)))
            continue
        for key in requirement:
            if key not in PLUGIN_KEYS:
                problems.append("%s: unknown key '%s'%s (a requirement has %s)" % (
                    where, key, _did_you_mean(key, PLUGIN_KEYS), ", ".join(PLUGIN_KEYS)))
        for key in ("name", "version"):
            if not _is_string(requirement.get(key)) or not requirement[key]:
                problems.append("%s: %s must be a non-empty string, not %s" % (where, key, _describe(requirement.get(key))))
        alternatives = requirement.get("alternatives", [])
        if not isinstance(alternatives, list):
            problems.append("%s: alternatives must be a list of {name, version}, not %s" % (where, _describe(alternatives)))
            continue
        for alt_number, alternative in enumerate(alternatives, 1):
            alt_where = "%s, alternative %d" % (where, alt_number)
            if not isinstance(alternative, dict):
                problems.append("%s is %s, not a mapping {name, version}" % (alt_where, _describe(alternative)))
                continue
            for key in alternative:
                if key not in ALTERNATIVE_KEYS:
                    problems.append("%s: unknown key '%s'%s" % (alt_where, key, _did_you_mean(key, ALTERNATIVE_KEYS)))
            for key in ALTERNATIVE_KEYS:
                if not _is_string(alternative.get(key)) or not alternative[key]:
                    problems.append("%s: %s must be a non-empty string, not %s" % (
                        alt_where, key, _describe(alternative.get(key))))
    return problems


def _and_list(keys):
    quoted = ["'%s'" % key for key in keys]
    return quoted[0] if len(quoted) == 1 else "%s and %s" % (", ".join(quoted[:-1]), quoted[-1])


def _rule_problems(label, item, version, misspelled=()):
    """The rule-specific checks: what makes a new rule, an append or an override complete.

    Keys in misspelled were reported as unknown keys with these as the suggestion: not reported missing again.
    """
    problems = []
    appending = item.get("append") is True
    override = item.get("override") if isinstance(item.get("override"), dict) else None
    if appending and "override" in item:
        problems.append("%s: append: true and override cannot be used together: drop append and list the keys under "
                        "override (for example override: {condition: append})" % label)
        return problems
    if override:
        return problems + _override_problems(label, "rule", item, override)
    if "override" in item:
        return problems  # not a mapping, reported as such; what the item lacks depends on what it was meant to be
    if appending:
        ignored = [key for key in item if key not in ("rule", "append", "condition", "exceptions")]
        if ignored:
            fix = ("use override: {%s: replace} instead of append: true" % ignored[0] if version >= KEY_SINCE["override"]
                   else "define the whole rule anew without append")
            problems.append("%s: append: true adds only to condition and exceptions, so Falco would ignore %s: %s" % (
                label, ", ".join("'%s'" % key for key in ignored), fix))
        if "condition" not in item and "exceptions" not in item:
            problems.append("%s: append: true with neither condition nor exceptions adds nothing: give the condition "
                            "or the exceptions to append" % label)
        return problems
    present = [key for key in RULE_REQUIRED if key in item]
    if not present:
        if "enabled" not in item:
            problems.append("%s: a rule needs condition, output, desc and priority; to change an existing rule use %s, "
                            "to switch it on or off give only enabled" % (
                                label, "override (for example override: {condition: append})"
                                if version >= KEY_SINCE["override"] else "append: true"))
        return problems
    missing = [key for key in RULE_REQUIRED if key not in item and key not in misspelled]
    if missing:
        problems.append("%s: missing %s: a new rule needs condition, output, desc and priority; to change an existing "
                        "rule instead, use %s" % (label, _and_list(missing),
                                                  "override (for example override: {%s: append})" % present[0]
                                                  if version >= KEY_SINCE["override"] else "append: true"))
    return problems


def _item_problems(variable, number, item, version):
    if not isinstance(item, dict):
        return ["%s item %d is %s, not a mapping: write each rule, macro or list as a mapping such as "
                "{macro: my_macro, condition: ...}" % (variable, number, _describe(item))]
    kinds = [kind for kind in KINDS if kind in item]
    if not kinds:
        guesses = [_did_you_mean(key, KINDS) for key in item]
        guess = next((g for g in guesses if g), "")
        return ["%s item %d (keys %s) is neither a rule, a macro, a list, required_engine_version nor "
                "required_plugin_versions%s" % (variable, number, ", ".join("'%s'" % key for key in item) or "none",
                                                guess)]
    if len(kinds) > 1:
        return ["%s item %d has both %s: an item is one of rule, macro, list, required_engine_version or "
                "required_plugin_versions; split it into one item each" % (
                    variable, number, " and ".join("'%s'" % kind for kind in kinds))]
    kind = kinds[0]
    label = _item_label(variable, number, kind, item)
    allowed = ITEM_KEYS[kind]
    problems = []
    misspelled = set()
    for key in item:
        if key in allowed:
            since = KEY_SINCE.get(key)
            if since and version < since:
                hint = " (use append: true)" if key == "override" else ""
                problems.append("%s: '%s' needs Falco %s or newer, and falco_version is %s%s" % (
                    label, key, _version_text(since), _version_text(version), hint))
            continue
        owners = [other for other in ("rule", "macro", "list") if other != kind and key in ITEM_KEYS[other]]
        if owners:
            problems.append("%s: '%s' belongs to a %s, not a %s" % (label, key, " or ".join(owners), kind))
        else:
            close = difflib.get_close_matches("%s" % (key,), [k for k in allowed if k not in item], n=1, cutoff=0.6)
            misspelled.update(close)
            problems.append("%s: unknown key '%s'%s (a %s takes %s)" % (
                label, key, _did_you_mean(key, allowed), kind.replace("_", " "), ", ".join(allowed)))
    for key, value_type in allowed.items():
        if key in item:
            problem = _type_problem(item[key], value_type)
            if problem:
                problems.append("%s: %s %s" % (label, key, problem))
    if kind == "macro":
        if _is_string(item["macro"]) and item["macro"] and not MACRO_NAME.match(item["macro"]):
            problems.append("%s: a macro name is letters, digits and _, starting with a letter" % label)
        if "condition" not in item and "condition" not in misspelled:
            problems.append("%s: missing 'condition': a macro is a named condition" % label)
    elif kind == "list":
        if _is_string(item["list"]) and item["list"] and not LIST_NAME.match(item["list"]):
            problems.append("%s: a list name may not hold blanks, quotes, parentheses, = or ," % label)
        if "items" not in item and "items" not in misspelled:
            problems.append("%s: missing 'items': a list needs items (an empty list is [])" % label)
    elif kind == "required_plugin_versions" and isinstance(item[kind], list):
        problems.extend(_plugin_problems(label, item[kind]))
    if kind in ("list", "macro") and isinstance(item.get("override"), dict):
        if item.get("append") is True:
            problems.append("%s: append: true and override cannot be used together: drop append" % label)
        else:
            problems.extend(_override_problems(label, kind, item, item["override"]))
    if kind == "rule":
        problems.extend(_rule_problems(label, item, version, misspelled))
        if isinstance(item.get("exceptions"), list):
            override = item.get("override") if isinstance(item.get("override"), dict) else {}
            appending = item.get("append") is True or "exceptions" in override
            names = set()
            for ex_number, exception in enumerate(item["exceptions"], 1):
                name = exception.get("name") if isinstance(exception, dict) else None
                where = "%s, exception %d%s" % (label, ex_number, " ('%s')" % name if _is_string(name) else "")
                problems.extend(_exception_problems(exception, where, fields_optional=appending,
                                                    values_required=False))
                if _is_string(name) and name in names:
                    problems.append("%s: exception names must be unique within a rule; rename one" % where)
                names.add(name)
    return problems


def rules_problems(items, falco_version=None, variable="falco_local_rules"):
    """Every problem of a list of Falco rules items (rules, macros, lists, requirements), one message each."""
    if items is None or items == "":
        return []
    if not isinstance(items, list):
        return ["%s must be a list of rule, macro and list items, not %s" % (variable, _describe(items))]
    version = parse_version(falco_version)
    problems = []
    for number, item in enumerate(items, 1):
        problems.extend(_item_problems(variable, number, item, version))
    return problems


def exceptions_problems(exceptions, variable="falco_rule_exceptions"):
    """Every problem of a list of rule exceptions {rule, name, fields, comps, values}, one message each."""
    if exceptions is None or exceptions == "":
        return []
    if not isinstance(exceptions, list):
        return ["%s must be a list of {rule, name, fields, comps, values}, not %s" % (variable, _describe(exceptions))]
    problems = []
    for number, exception in enumerate(exceptions, 1):
        if isinstance(exception, dict):
            name, rule = exception.get("name"), exception.get("rule")
            name, rule = (value if _is_string(value) and value.strip() else None for value in (name, rule))
            if name and rule:
                where = "%s item %d (exception '%s' on rule '%s')" % (variable, number, name, rule)
            elif name:
                where = "%s item %d (exception '%s')" % (variable, number, name)
            else:
                where = "%s item %d" % (variable, number)
        else:
            where = "%s item %d" % (variable, number)
        problems.extend(_exception_problems(exception, where, extra_keys=("rule",)))
    return problems
