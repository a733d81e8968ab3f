"""The falco role's checks of falco_local_rules and falco_rule_exceptions (module_utils/falco_rules_check.py and
the filters falco_rules_problems and falco_exceptions_problems), called directly.

The rule schema Falco 0.44.1 prints (``falco --rule-schema``, read from ../shared/upstream/falco when present) is the
reference for the keys, types and priorities the checks accept; the falcosecurity/rules 5.1.0 files from the same
place must pass without a problem.
"""

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.fleetwatch.falco_stack.plugins.filter.falco_exceptions_problems import (
    FilterModule as ExceptionsFilters, falco_exceptions_problems)
from ansible_collections.fleetwatch.falco_stack.plugins.filter.falco_rules_problems import (
    FilterModule as RulesFilters, falco_rules_problems)
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils import falco_rules_check as check
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_rules_check import (
    exceptions_problems, parse_version, rules_problems)

REPO_ROOT = Path(__file__).resolve().parents[4]
UPSTREAM = REPO_ROOT.parent / "shared" / "upstream" / "falco"
SCHEMA_PATH = UPSTREAM / "falco-0.44.1_rule_schema.json"
SCHEMA_REASON = "Falco 0.44.1 rule schema not found at %s (needs ../shared next to the repo)" % SCHEMA_PATH
RULES_FILES = sorted(UPSTREAM.glob("falcosecurity-rules_falco-rules-*.yaml"))

RULE = {"rule": "Shell in backup container", "desc": "A shell ran in a backup container",
        "condition": "spawned_process and proc.name = bash", "output": "Shell (user=%user.name)", "priority": "Notice"}
EXCEPTION = {"rule": "Read sensitive file untrusted", "name": "backup_agent", "fields": ["proc.name", "fd.name"],
             "comps": ["=", "="], "values": [["backup-agent", "/etc/shadow"]]}


def only(problems):
    assert len(problems) == 1, problems
    return problems[0]


def without(mapping, key):
    return dict((k, v) for k, v in mapping.items() if k != key)


# ---- rules items -------------------------------------------------------------------------------------------------

def test_a_complete_rule_macro_and_list_pass():
    assert rules_problems([{"list": "backup_binaries", "items": ["restic", 7]},
                           {"macro": "backup_process", "condition": "proc.name in (backup_binaries)"},
                           dict(RULE, tags=["shell"], enabled=False, source="syscall", warn_evttypes=True,
                                **{"skip-if-unknown-filter": True}),
                           {"required_engine_version": "0.26.0"}, {"required_engine_version": 26},
                           {"required_plugin_versions": [{"name": "container", "version": "0.4.0",
                                                          "alternatives": [{"name": "k8s", "version": "0.1.0"}]}]}],
                          "0.44.1") == []


def test_nothing_to_check_is_no_problem():
    assert rules_problems([], "0.44.1") == [] and rules_problems(None) == []


def test_unknown_key_names_the_variable_the_item_and_the_closest_key():
    item = without(RULE, "priority")
    item["prio"] = "Warning"
    message = only(rules_problems([RULE, item], "0.44.1"))
    assert message.startswith("falco_local_rules item 2 (rule 'Shell in backup container'): unknown key 'prio', "
                              "did you mean 'priority'? (a rule takes rule, desc, condition, output, priority")


def test_a_key_of_another_kind_says_whose_it_is():
    assert only(rules_problems([{"macro": "m", "condition": "x", "items": ["a"]}])) == (
        "falco_local_rules item 1 (macro 'm'): 'items' belongs to a list, not a macro")


@pytest.mark.parametrize("missing", ["condition", "output", "desc", "priority"])
def test_a_new_rule_needs_its_four_keys(missing):
    message = only(rules_problems([without(RULE, missing)], "0.44.1"))
    assert message == ("falco_local_rules item 1 (rule 'Shell in backup container'): missing '%s': a new rule needs "
                       "condition, output, desc and priority; to change an existing rule instead, use override (for "
                       "example override: {%s: append})" % (missing, "output" if missing == "condition" else "condition"))


def test_several_missing_keys_are_one_message():
    assert "missing 'desc' and 'priority':" in only(rules_problems([{"rule": "R", "condition": "c", "output": "o"}]))


def test_a_rule_with_only_enabled_switches_an_existing_one():
    assert rules_problems([{"rule": "Clear Log Activities", "enabled": False}], "0.31.1") == []
    message = only(rules_problems([{"rule": "Clear Log Activities", "tags": ["x"]}], "0.44.1"))
    assert "a rule needs condition, output, desc and priority; to change an existing rule use override" in message


@pytest.mark.parametrize("priority", ["emergency", "ALERT", "Critical", "error", "Warning", "NOTICE",
                                      "informational", "Info", "debug"])
def test_priorities_falco_knows_in_any_case(priority):
    assert rules_problems([dict(RULE, priority=priority)]) == []


@pytest.mark.parametrize("priority,hint", [("Warn", ", did you mean 'warning'?"), ("high", ""), (3, "")])
def test_priorities_falco_does_not_know(priority, hint):
    message = only(rules_problems([dict(RULE, priority=priority)]))
    assert "priority %s is not a priority Falco knows: use one of emergency, alert, critical, error, warning, " \
           "notice, informational, info, debug (any case)%s" % (
               "'%s'" % priority if isinstance(priority, str) else "the number 3", hint) in message


@pytest.mark.parametrize("key,value,problem", [
    ("tags", "shell", "tags must be a list of strings, not 'shell'"),
    ("tags", ["shell", 3], "tags must be a list of strings; the number 3 is not"),
    ("enabled", "false", "enabled must be true or false, not 'false' (write it unquoted)"),
    ("warn_evttypes", 1, "warn_evttypes must be true or false, not the number 1"),
    ("capture_duration", "10", "capture_duration must be a whole number, not '10'"),
    ("capture_duration", True, "capture_duration must be a whole number, not the boolean true"),
    ("desc", "", "desc must be a non-empty string, not an empty string"),
    ("condition", ["a"], "condition must be a non-empty string, not a list"),
    ("exceptions", {"name": "x"}, "exceptions must be a list of exceptions, not a mapping"),
    ("override", "append", "override must be a mapping of keys to append or replace such as {condition: append}"),
])
def test_wrong_types(key, value, problem):
    item = dict(RULE, **{key: value})
    if key == "override":
        item = {"rule": "R", "condition": "c", "override": value}
    assert problem in only(rules_problems([item], "0.44.1"))


def test_list_items_are_strings_or_numbers():
    assert only(rules_problems([{"list": "l", "items": ["a", ["b"]]}])) == (
        "falco_local_rules item 1 (list 'l'): items must be a list of strings or numbers; a list is not")
    assert "missing 'items'" in only(rules_problems([{"list": "l"}]))


def test_names_falco_refuses():
    assert only(rules_problems([{"macro": "backup process", "condition": "c"}])) == (
        "falco_local_rules item 1 (macro 'backup process'): a macro name is letters, digits and _, starting with a letter")
    assert "a list name may not hold blanks" in only(rules_problems([{"list": "a,b", "items": []}]))
    assert rules_problems([{"list": "allowed-k8s.users", "items": []}]) == []


def test_an_item_of_no_kind_or_of_two_kinds():
    assert only(rules_problems([{"rlue": "x", "condition": "c"}])) == (
        "falco_local_rules item 1 (keys 'rlue', 'condition') is neither a rule, a macro, a list, "
        "required_engine_version nor required_plugin_versions, did you mean 'rule'?")
    assert only(rules_problems([{"rule": "a", "macro": "b", "condition": "c"}])) == (
        "falco_local_rules item 1 has both 'macro' and 'rule': an item is one of rule, macro, list, "
        "required_engine_version or required_plugin_versions; split it into one item each")


@pytest.mark.parametrize("item", ["a string", None, ["a"]])
def test_an_item_that_is_no_mapping(item):
    assert "falco_local_rules item 1 is " in only(rules_problems([item]))


def test_the_variable_must_be_a_list():
    assert only(rules_problems({"rule": "x"})) == (
        "falco_local_rules must be a list of rule, macro and list items, not a mapping")


def test_required_versions():
    assert "must be an engine version" in only(rules_problems([{"required_engine_version": "latest"}]))
    problems = rules_problems([{"required_plugin_versions": [{"name": "container"},
                                                             {"name": "k8s", "version": "1", "alternative": []}]}])
    assert problems == [
        "falco_local_rules item 1 (required_plugin_versions): plugin requirement 1: version must be a non-empty "
        "string, not nothing (null)",
        "falco_local_rules item 1 (required_plugin_versions): plugin requirement 2: unknown key 'alternative', did you "
        "mean 'alternatives'? (a requirement has name, version, alternatives)"]


# ---- overrides and appends, by generation ------------------------------------------------------------------------

def test_override_of_an_existing_rule_passes_from_0_37():
    item = {"rule": "Read sensitive file untrusted", "condition": "and not proc.name = backup-agent",
            "exceptions": [{"name": "backup", "fields": ["proc.name"], "values": [["backup-agent"]]}],
            "priority": "NOTICE", "override": {"condition": "append", "exceptions": "append", "priority": "replace"}}
    assert rules_problems([item], "0.38.1") == []
    assert rules_problems([{"macro": "m", "condition": "or x", "override": {"condition": "append"}},
                           {"list": "l", "items": ["x"], "override": {"items": "replace"}}], "0.44.1") == []


def test_override_before_0_37_is_refused_with_the_legacy_way():
    assert only(rules_problems([{"rule": "R", "condition": "and x", "override": {"condition": "append"}}],
                               "0.31.1")) == (
        "falco_local_rules item 1 (rule 'R'): 'override' needs Falco 0.37.0 or newer, and falco_version is 0.31.1 "
        "(use append: true)")


def test_keys_newer_than_the_release_are_refused():
    message = only(rules_problems([dict(RULE, capture=True)], "0.41.0"))
    assert message.endswith("'capture' needs Falco 0.42.0 or newer, and falco_version is 0.41.0")
    assert rules_problems([dict(RULE, capture=True, capture_duration=5000)], "0.42.0") == []


def test_append_is_the_legacy_generations_way_and_still_read_later():
    appended = [{"rule": "Write below binary dir", "append": True, "condition": "and not proc.name = x"},
                {"macro": "m", "append": True, "condition": "or x"}, {"list": "l", "append": True, "items": ["x"]},
                {"rule": "R", "append": True, "exceptions": [{"name": "e", "values": [["a"]]}]}]
    assert rules_problems(appended, "0.31.1") == []
    assert rules_problems(appended, "0.44.1") == []


def test_append_ignores_other_keys_so_they_are_refused():
    assert only(rules_problems([{"rule": "R", "append": True, "condition": "and x", "output": "o"}], "0.44.1")) == (
        "falco_local_rules item 1 (rule 'R'): append: true adds only to condition and exceptions, so Falco would "
        "ignore 'output': use override: {output: replace} instead of append: true")
    assert "define the whole rule anew" in only(
        rules_problems([{"rule": "R", "append": True, "condition": "and x", "priority": "debug"}], "0.31.1"))
    assert "adds nothing" in only(rules_problems([{"rule": "R", "append": True}]))


def test_append_and_override_together():
    assert "append: true and override cannot be used together" in only(
        rules_problems([{"rule": "R", "append": True, "condition": "c", "override": {"condition": "append"}}]))


@pytest.mark.parametrize("item,problem", [
    ({"rule": "R", "condition": "c", "output": "o", "override": {"condition": "append"}},
     "'output' has no entry under override, so Falco refuses the item (\"no corresponding entry under 'override' is "
     "defined\"): add override: {output: append}"),
    ({"rule": "R", "condition": "c", "override": {"condition": "append", "output": "replace"}},
     "override names 'output' but the item has no 'output': give the output to replace, or drop 'output' from override"),
    ({"rule": "R", "priority": "debug", "override": {"priority": "append"}},
     "'priority' cannot be appended to, use override: {priority: replace}"),
    ({"rule": "R", "condition": "c", "override": {"condition": "add"}},
     "override of 'condition' is 'add'; it must be append or replace"),
    ({"rule": "R", "source": "k8s_audit", "override": {"source": "replace"}},
     "override names 'source', which a rule cannot override"),
    ({"macro": "m", "condition": "c", "override": {"items": "append"}},
     "override names 'items', which a macro cannot override (it can: condition)"),
])
def test_overrides_falco_refuses(item, problem):
    problems = rules_problems([item], "0.44.1")
    assert [p for p in problems if problem in p], problems


# ---- exceptions (falco_rule_exceptions and a rule's exceptions) --------------------------------------------------

def test_exceptions_in_the_triage_tools_shape_pass():
    assert exceptions_problems([EXCEPTION, dict(EXCEPTION, name="single", fields="proc.name", comps="in",
                                                values=["a", "b"]),
                                dict(EXCEPTION, name="list_value", fields=["proc.name", "fd.name"],
                                     comps=["in", "startswith"], values=[[["dpkg", "apt"], "/usr/"]]),
                                without(dict(EXCEPTION, name="default_comps"), "comps"),
                                dict(EXCEPTION, name="port", fields=["fd.sport"], comps=[">="], values=[[1024]])]) == []


@pytest.mark.parametrize("change,problem", [
    ({"comps": ["="]}, "fields has 2 entries but comps has 1: give one comparison operator per field (Falco refuses "
                       "it: \"Fields and comps lists must have equal length\")"),
    ({"values": [["backup-agent"]]}, "values row 1 has 1 value(s) for 2 field(s): every row of values needs one "
                                     "value per field"),
    ({"values": ["backup-agent"]}, "values row 1 is 'backup-agent'; with a list of fields every row is a list with "
                                   "one value per field, for example [VALUE, VALUE]"),
    ({"comps": ["=", "equals"]}, "comps entry 2 ('equals') is not a comparison operator Falco knows: use one of = == "
                                 "!= < <= > >= contains icontains bcontains glob iglob startswith bstartswith "
                                 "endswith regex in intersects pmatch"),
    ({"comps": "="}, "with a list of fields, comps must be a list with one operator per field (for example "
                     "[\"=\", \"=\"]), not '='"),
    ({"values": [[False, "/etc/shadow"]]}, "values row 1, value 1 is the boolean false: quote it if you mean the text"),
    ({"values": [["", "/etc/shadow"]]}, "values row 1, value 1 is empty"),
    ({"values": [[["a", "b"], "/etc/shadow"]]}, "values row 1, value 1 is a list, which only in, intersects, pmatch "
                                                "compare with; its comps entry is '='"),
    ({"values": "backup-agent"}, "values must be a list of rows, one value per field in each, not 'backup-agent'"),
    ({"fields": []}, "fields must be a field name or a non-empty list of field names, not a list"),
    ({"fields": "proc.name", "comps": "=", "values": ["a"]},
     "with a single field (fields: proc.name) comps must be one of in, intersects, pmatch, not '='"),
    ({"fields": "proc.name", "comps": "in", "values": [["a"]]},
     "values entry 1 is a list; with a single field (fields: proc.name) values is a flat list of values"),
    ({"name": ""}, "name must be a non-empty string, not an empty string"),
])
def test_exception_problems(change, problem):
    where = "falco_rule_exceptions item 1 (exception '%s' on rule 'Read sensitive file untrusted'): " % (
        change.get("name", "backup_agent"))
    if change.get("name") == "":
        where = "falco_rule_exceptions item 1: "
    assert only(exceptions_problems([dict(EXCEPTION, **change)])).startswith(where + problem)


@pytest.mark.parametrize("missing,problem", [
    ("rule", "falco_rule_exceptions item 1 (exception 'backup_agent'): missing 'rule' (the name of the rule the "
             "exception is added to)"),
    ("name", "falco_rule_exceptions item 1: missing 'name' (a name for the exception, unique within its rule)"),
    ("fields", "missing 'fields', the event fields the exception compares (for example [proc.name, fd.name])"),
    ("values", "missing 'values', a list of rows with one value per field"),
])
def test_exception_without_a_required_key(missing, problem):
    assert problem in only(exceptions_problems([without(EXCEPTION, missing)]))


def test_an_unknown_exception_key_gets_the_closest_one():
    item = without(EXCEPTION, "fields")
    item["field"] = ["proc.name", "fd.name"]
    problems = exceptions_problems([item])
    assert problems[0].endswith("unknown key 'field', did you mean 'fields'? (an exception has name, fields, comps, "
                                "values, rule)")


def test_every_problem_of_every_exception_at_once():
    problems = exceptions_problems([EXCEPTION, dict(EXCEPTION, comps=["="]), "x", dict(EXCEPTION, values=[[1]])])
    assert [p.split(":")[0] for p in problems] == [
        "falco_rule_exceptions item 2 (exception 'backup_agent' on rule 'Read sensitive file untrusted')",
        "falco_rule_exceptions item 3 is 'x', not a mapping",
        "falco_rule_exceptions item 4 (exception 'backup_agent' on rule 'Read sensitive file untrusted')"]


def test_exceptions_inside_a_rule():
    item = dict(RULE, exceptions=[{"name": "a", "fields": ["proc.name"], "comps": ["="], "values": [["x"]]},
                                  {"name": "a", "fields": ["proc.name"], "comps": ["=", "="]}])
    assert rules_problems([item]) == [
        "falco_local_rules item 1 (rule 'Shell in backup container'), exception 2 ('a'): fields has 1 entries but "
        "comps has 2: give one comparison operator per field (Falco refuses it: \"Fields and comps lists must have "
        "equal length\")",
        "falco_local_rules item 1 (rule 'Shell in backup container'), exception 2 ('a'): exception names must be "
        "unique within a rule; rename one"]


def test_exceptions_variable_must_be_a_list():
    assert only(exceptions_problems({"rule": "x"})) == (
        "falco_rule_exceptions must be a list of {rule, name, fields, comps, values}, not a mapping")


# ---- the filters -------------------------------------------------------------------------------------------------

def test_the_filters_are_registered_and_name_the_variable_they_are_given():
    assert RulesFilters().filters()["falco_rules_problems"] is falco_rules_problems
    assert ExceptionsFilters().filters()["falco_exceptions_problems"] is falco_exceptions_problems
    assert falco_rules_problems([{"rlue": "x"}], falco_version="0.44.1", variable="my_rules")[0].startswith("my_rules item 1")
    assert falco_exceptions_problems([{}], variable="my_exceptions")[0].startswith("my_exceptions item 1")


def test_versions_are_read_like_falco_version():
    assert parse_version("0.44.1") == (0, 44, 1) and parse_version("0.38") == (0, 38, 0)
    assert parse_version(None) == check.NEWEST and parse_version("latest") == check.NEWEST


# ---- against Falco's own rule schema and rules -------------------------------------------------------------------

@pytest.fixture(scope="module")
def schema():
    if not SCHEMA_PATH.is_file():
        pytest.skip(SCHEMA_REASON)
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def test_item_keys_are_the_schemas(schema):
    accepted = set()
    for keys in check.ITEM_KEYS.values():
        accepted.update(keys)
    assert accepted == set(schema["definitions"]["FalcoRule"]["properties"])
    assert schema["definitions"]["FalcoRule"]["additionalProperties"] is False


def test_key_types_agree_with_the_schema(schema):
    definitions = schema["definitions"]
    expected = {"string": {check.STRING, check.ENGINE_VERSION}, "boolean": {check.BOOL}, "integer": {check.INT}}
    refs = {"#/definitions/Priority": check.PRIORITY, "#/definitions/Override": check.OVERRIDE}
    arrays = {"#/definitions/Item": check.SCALARS, "#/definitions/Exception": check.EXCEPTIONS,
              "#/definitions/RequiredPluginVersion": check.PLUGINS}
    for key, spec in definitions["FalcoRule"]["properties"].items():
        ours = {kinds[key] for kinds in check.ITEM_KEYS.values() if key in kinds}
        assert len(ours) == 1, (key, ours)
        ours = ours.pop()
        if "$ref" in spec:
            assert ours == refs[spec["$ref"]], key
        elif spec["type"] == "array":
            items = spec["items"]
            assert ours == (check.STRINGS if items.get("type") == "string" else arrays[items["$ref"]]), key
        else:
            assert ours in expected[spec["type"]], key
    # The item list's entries: integers or strings, as SCALARS takes them.
    assert [choice["type"] for choice in definitions["Item"]["anyOf"]] == ["integer", "string"]


def test_priorities_are_the_schemas(schema):
    assert set(check.PRIORITIES) == {p.lower() for p in schema["definitions"]["Priority"]["enum"]}


def test_override_keys_and_operations_are_the_schemas(schema):
    overridable = set()
    for kind in ("rule", "macro", "list"):
        overridable.update(check.OVERRIDE_APPEND[kind], check.OVERRIDE_REPLACE[kind])
        assert set(check.OVERRIDE_APPEND[kind]) <= set(check.OVERRIDE_REPLACE[kind])
    assert overridable == set(schema["definitions"]["Override"]["properties"])
    assert set(schema["definitions"]["OverriddenItem"]["enum"]) == {"append", "replace"}


def test_exception_and_plugin_keys_are_the_schemas(schema):
    definitions = schema["definitions"]
    assert set(check.EXCEPTION_KEYS) == set(definitions["Exception"]["properties"])
    assert definitions["Exception"]["required"] == ["name"]
    assert set(check.PLUGIN_KEYS) == set(definitions["RequiredPluginVersion"]["properties"])
    assert set(check.ALTERNATIVE_KEYS) == set(definitions["Alternative"]["properties"])
    assert set(definitions["RequiredPluginVersion"]["required"]) == set(definitions["Alternative"]["required"]) == {
        "name", "version"}


SCHEMA_CASES = [
    [RULE], [dict(RULE, prio="Warning")], [dict(RULE, priority="Warn")], [dict(RULE, tags="shell")],
    [dict(RULE, enabled="no")], [dict(RULE, exceptions=[{"nmae": "x"}])], [dict(RULE, exceptions=[{"fields": ["a"]}])],
    [{"macro": "m", "condition": "c", "override": {"condition": "merge"}}], [{"list": "l", "items": [{"a": 1}]}],
    [{"list": "l", "items": ["a", 1]}], [{"required_plugin_versions": [{"name": "container"}]}],
    [{"rule": "R", "condition": "c", "override": {}}],
]


@pytest.mark.parametrize("items", SCHEMA_CASES)
def test_what_the_schema_refuses_is_refused(schema, items):
    jsonschema = pytest.importorskip("jsonschema")
    # Falco reads priorities in any case; the schema lists them upper-case.
    as_falco_reads = [dict(item, priority=item["priority"].upper()) if isinstance(item.get("priority"), str) else item
                      for item in items]
    schema_says_ok = jsonschema.Draft6Validator(schema).is_valid(as_falco_reads)
    if not schema_says_ok:
        assert rules_problems(items, "0.44.1"), items
    if not rules_problems(items, "0.44.1"):
        assert schema_says_ok, items


@pytest.mark.skipif(not RULES_FILES, reason="falcosecurity/rules files not found in %s" % UPSTREAM)
@pytest.mark.parametrize("path", RULES_FILES, ids=lambda p: p.name)
def test_falcos_own_rules_pass(path, schema):
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert len(items) > 100
    assert rules_problems(items, "0.44.1", variable=path.name) == []
    pytest.importorskip("jsonschema").validate(items, schema)
