"""The smoke filters: thin wrappers of module_utils/falco_smoke.py (tested there) that refuse wrong input."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter import (
    falco_smoke_alerts,
    falco_smoke_plan,
    falco_smoke_report,
)

PROBE = {"unit": "falco-modern-bpf.service", "hostname": "web-1", "rules": {"Write below binary dir": True},
         "outputs": {"json": True, "journal": True, "file": ""}, "engine": "", "image": "", "time": 1796000000}


def test_each_filter_is_registered_under_its_own_name():
    assert set(falco_smoke_plan.FilterModule().filters()) == {"falco_smoke_plan"}
    assert set(falco_smoke_alerts.FilterModule().filters()) == {"falco_smoke_alerts"}
    assert set(falco_smoke_report.FilterModule().filters()) == {"falco_smoke_report"}


def test_plan_alerts_and_report_chain():
    plan = falco_smoke_plan.falco_smoke_plan(PROBE, run_id="r1", host="web-1", image="")
    marker = plan["events"][0]["marker"]
    alerts = falco_smoke_alerts.falco_smoke_alerts(
        ['{"rule": "Write below binary dir", "hostname": "web-1", "output_fields": {"fd.name": "/bin/%s"}}' % marker],
        plan)
    report = falco_smoke_report.falco_smoke_report(plan, alerts, ["Write below binary dir"])
    assert report["passed"] and report["events"][0]["status"] == "passed"


def test_wrong_input_is_refused_with_the_filters_name():
    with pytest.raises(AnsibleFilterError, match="falco_smoke_plan: .*run_id"):
        falco_smoke_plan.falco_smoke_plan(PROBE, run_id="", host="web-1")
    with pytest.raises(AnsibleFilterError, match="falco_smoke_alerts: plan must be"):
        falco_smoke_alerts.falco_smoke_alerts([], {"unit": "x"})
    with pytest.raises(AnsibleFilterError, match="falco_smoke_alerts: expects alert lines"):
        falco_smoke_alerts.falco_smoke_alerts(42, {"events": []})
    with pytest.raises(AnsibleFilterError, match="falco_smoke_report: risen must be"):
        falco_smoke_report.falco_smoke_report({"events": []}, {}, "Write below binary dir")
