import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.units_in_use import FilterModule, units_in_use

UNITS = ["falco-kmod.service", "falco-bpf.service", "falco-custom.service", "falco-modern-bpf.service"]


def state(enabled, active):
    return {"enabled": enabled, "active": active, "unit_file_state": "enabled" if enabled else "disabled"}


def test_only_units_enabled_or_running_or_not_reported_are_kept():
    reported = {"falco-kmod.service": state(False, False), "falco-bpf.service": state(True, False),
                "falco-custom.service": state(False, True)}
    assert units_in_use(UNITS, reported) == ["falco-bpf.service", "falco-custom.service", "falco-modern-bpf.service"]


def test_a_converged_host_gets_none_and_no_inspection_gets_all():
    assert units_in_use(UNITS, {unit: state(False, False) for unit in UNITS}) == []
    assert units_in_use(UNITS, None) == UNITS
    assert units_in_use(UNITS) == UNITS


def test_a_report_that_is_not_a_dict_is_refused():
    with pytest.raises(AnsibleFilterError, match="must be the inspection's units"):
        units_in_use(UNITS, ["falco-kmod.service"])


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"units_in_use": units_in_use}
