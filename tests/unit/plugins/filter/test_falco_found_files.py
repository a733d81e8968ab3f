import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.falco_found_files import FilterModule, falco_found_files

ETC = "/etc/falco"
STAGE = "/var/lib/fleetwatch/falco/staging"
DECLARED = ("config.d/fleetwatch-outputs.yaml", "rules.d/fleetwatch-100-incubating.yaml", "rules.d/fleetwatch-500-local.yaml")


def listings(stage_config=(), stage_rules=(), etc_config=(), etc_rules=()):
    """The inspection's listings, in the order the falco role asks for the directories."""
    return {STAGE + "/config.d": [STAGE + "/config.d/" + n for n in stage_config],
            STAGE + "/rules.d": [STAGE + "/rules.d/" + n for n in stage_rules],
            ETC + "/config.d": [ETC + "/config.d/" + n for n in etc_config],
            ETC + "/rules.d": [ETC + "/rules.d/" + n for n in etc_rules]}


def found(found_listings, declared=DECLARED):
    return falco_found_files(found_listings, declared=list(declared), etc_dir=ETC, stage_dir=STAGE)


def test_a_converged_host_has_nothing_undeclared_and_the_packages_dropins_are_others():
    result = found(listings(stage_config=["fleetwatch-outputs.yaml"],
                            stage_rules=["fleetwatch-100-incubating.yaml", "fleetwatch-500-local.yaml"],
                            etc_config=["falco.container_plugin.yaml", "fleetwatch-outputs.yaml", ".hidden.yaml"],
                            etc_rules=["fleetwatch-100-incubating.yaml", "fleetwatch-500-local.yaml", "mine.yaml"]))
    assert result == {"staged_undeclared": [], "live_undeclared": [],
                      "other_dropins": [ETC + "/config.d/falco.container_plugin.yaml"]}


def test_our_files_no_longer_declared_are_found_where_they_are_and_nothing_of_others():
    result = found(listings(stage_config=["fleetwatch-metrics.yaml", "fleetwatch-outputs.yaml"],
                            stage_rules=["fleetwatch-600-exceptions.yaml", "user.yaml"],
                            etc_config=["fleetwatch-grpc.yaml", "falcoctl.yaml"],
                            etc_rules=["fleetwatch-600-exceptions.yaml", "fleetwatch-100-incubating.yaml",
                                       "not-fleetwatch-1.yaml"]))
    assert result["staged_undeclared"] == [STAGE + "/config.d/fleetwatch-metrics.yaml",
                                           STAGE + "/rules.d/fleetwatch-600-exceptions.yaml"]
    assert result["live_undeclared"] == [ETC + "/config.d/fleetwatch-grpc.yaml",
                                         ETC + "/rules.d/fleetwatch-600-exceptions.yaml"]
    assert result["other_dropins"] == [ETC + "/config.d/falcoctl.yaml"]


def test_a_declared_name_counts_only_at_its_own_place():
    """rules.d/fleetwatch-500-local.yaml is declared; the same name in config.d is not, and goes."""
    result = found(listings(stage_config=["fleetwatch-500-local.yaml"], etc_rules=["fleetwatch-500-local.yaml"]))
    assert result["staged_undeclared"] == [STAGE + "/config.d/fleetwatch-500-local.yaml"]
    assert result["live_undeclared"] == []


def test_nothing_declared_and_missing_listings():
    result = found({ETC + "/rules.d": [ETC + "/rules.d/fleetwatch-700-disabled.yaml"]}, declared=[])
    assert result == {"staged_undeclared": [], "live_undeclared": [ETC + "/rules.d/fleetwatch-700-disabled.yaml"],
                      "other_dropins": []}


def test_wrong_input_is_refused():
    with pytest.raises(AnsibleFilterError, match="must be the inspection's listings"):
        found([ETC + "/config.d/x.yaml"])


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"falco_found_files": falco_found_files}
