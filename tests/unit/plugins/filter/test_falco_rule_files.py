import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.falco_rule_files import (
    FilterModule, exception_items, falco_rule_files, ruleset_names)

OVERRIDE = {"override": {"exceptions": "append"}}  # Falco >= 0.37
APPEND = {"append": True}                          # before
EXCEPTION = {"rule": "Read sensitive file untrusted", "name": "backup_reads_shadow", "fields": ["proc.name", "fd.name"],
             "comps": ["=", "="], "values": [["backup-agent", "/etc/shadow"]]}
LOCAL = [{"list": "trusted_tools", "items": ["backup-agent"]},
         {"rule": "Local rule", "condition": "evt.type = open", "output": "o", "priority": "NOTICE", "desc": "d"}]


def test_rulesets_are_named_by_their_place_in_the_list_so_they_load_in_its_order():
    rulesets = [{"name": "zeta", "src": "/x/z.yaml"}, {"name": "incubating", "src": "https://r.example/i.yaml"},
                {"name": "alpha", "src": "/x/a.yaml"}]
    names = ruleset_names(rulesets)
    assert names == ["fleetwatch-100-zeta.yaml", "fleetwatch-101-incubating.yaml", "fleetwatch-102-alpha.yaml"]
    assert sorted(names) == names, "Falco loads rules.d in name order"
    many = ruleset_names([{"name": "n%d" % i} for i in range(12)])
    assert many[10:] == ["fleetwatch-110-n10.yaml", "fleetwatch-111-n11.yaml"]


@pytest.mark.parametrize("style", [OVERRIDE, APPEND])
def test_one_item_per_exception_the_rule_first_then_the_exception_then_the_style(style):
    second = dict(EXCEPTION, name="backup_two", values=[["backup-two", "/etc/shadow"]])
    items = exception_items([EXCEPTION, second], style)
    assert items == [
        dict({"rule": EXCEPTION["rule"], "exceptions": [{k: v for k, v in EXCEPTION.items() if k != "rule"}]}, **style),
        dict({"rule": EXCEPTION["rule"], "exceptions": [{k: v for k, v in second.items() if k != "rule"}]}, **style)]
    assert [list(item) for item in items] == [["rule", "exceptions"] + list(style)] * 2
    assert list(items[0]["exceptions"][0]) == ["name", "fields", "comps", "values"]


def test_items_share_no_object_so_the_yaml_spells_each_one_out():
    """The same fields list in two exceptions (a YAML anchor in the inventory) and the one style dict in every item
    must not come out as YAML anchors and aliases."""
    fields = ["proc.name", "fd.name"]
    exceptions = [dict(EXCEPTION, fields=fields), dict(EXCEPTION, name="other", fields=fields)]
    items = exception_items(exceptions, OVERRIDE)
    assert items[0]["override"] is not items[1]["override"]
    assert items[0]["exceptions"][0]["fields"] is not items[1]["exceptions"][0]["fields"]
    text = yaml.safe_dump(items)
    assert "&id" not in text and "*id" not in text
    assert exceptions[0]["fields"] is fields, "the input is not changed"


def test_rendered_files_are_local_rules_then_exceptions_each_only_when_given():
    result = falco_rule_files([{"name": "extra", "src": "/x.yaml"}], local_rules=LOCAL, exceptions=[EXCEPTION],
                              exception_style=OVERRIDE)
    assert result["ruleset_names"] == ["fleetwatch-100-extra.yaml"]
    assert [f["name"] for f in result["rendered"]] == ["fleetwatch-500-local.yaml", "fleetwatch-600-exceptions.yaml"]
    assert result["rendered"][0]["data"] == LOCAL
    assert result["rendered"][1]["data"] == exception_items([EXCEPTION], OVERRIDE)
    only_exceptions = falco_rule_files([], exceptions=[EXCEPTION], exception_style=APPEND)
    assert [f["name"] for f in only_exceptions["rendered"]] == ["fleetwatch-600-exceptions.yaml"]
    assert falco_rule_files([], local_rules=[], exceptions=[], exception_style=OVERRIDE) == {
        "ruleset_names": [], "rendered": []}


@pytest.mark.parametrize("kwargs, needle", [
    ({"rulesets": {"name": "x"}}, "falco_rulesets must be a list"),
    ({"rulesets": ["x.yaml"]}, "every falco_rulesets item must be a dict"),
    ({"rulesets": [], "local_rules": {"rule": "x"}}, "falco_local_rules must be a list"),
    ({"rulesets": [], "exceptions": [{"name": "no rule"}]}, "falco_rule_exceptions item 1 must be a dict with rule"),
    ({"rulesets": [], "exception_style": None}, "exception_style must be a dict"),
])
def test_wrong_shapes_are_refused_naming_the_variable(kwargs, needle):
    kwargs.setdefault("exception_style", OVERRIDE)
    with pytest.raises(AnsibleFilterError, match=needle):
        falco_rule_files(**kwargs)


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"falco_rule_files": falco_rule_files}
