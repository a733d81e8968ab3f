import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.falco_load_order import FilterModule, falco_load_order

LIVE = "/etc/falco/config.d/"
STAGE = "/var/lib/fleetwatch/falco/staging/config.d/"


def test_drop_ins_of_both_directories_are_ordered_by_file_name_not_by_directory():
    paths = [LIVE + "zz-user.yaml", LIVE + "falco.container_plugin.yaml",
             STAGE + "fleetwatch-outputs.yaml", STAGE + "fleetwatch-metrics.yaml", STAGE + "a-first.yaml"]
    assert falco_load_order(paths) == [STAGE + "a-first.yaml", LIVE + "falco.container_plugin.yaml",
                                       STAGE + "fleetwatch-metrics.yaml", STAGE + "fleetwatch-outputs.yaml",
                                       LIVE + "zz-user.yaml"]


def test_a_shorter_name_comes_first_then_the_path_decides_between_equal_names():
    assert falco_load_order([LIVE + "ab.yaml", STAGE + "a.yaml"]) == [STAGE + "a.yaml", LIVE + "ab.yaml"]
    assert falco_load_order([STAGE + "x.yaml", LIVE + "x.yaml"]) == [LIVE + "x.yaml", STAGE + "x.yaml"]
    assert falco_load_order([]) == []


def test_names_compare_byte_by_byte_as_falco_orders_its_config_d():
    # Falco 0.44.1 with config.d holding a.yaml, B.yaml and C.yaml lists them as loaded in the order B, C, a
    # (--dry-run, "Falco initialized with configuration files"): upper case sorts first.
    assert falco_load_order([LIVE + "a.yaml", STAGE + "C.yaml", LIVE + "B.yaml"]) == [
        LIVE + "B.yaml", STAGE + "C.yaml", LIVE + "a.yaml"]


def test_a_single_path_is_refused():
    with pytest.raises(AnsibleFilterError, match="must be a list of paths"):
        falco_load_order(LIVE + "x.yaml")


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"falco_load_order": falco_load_order}
