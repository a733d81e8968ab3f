import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.filter.falcosidekick_output_problems import (
    FilterModule, falcosidekick_output_problems)

SUPPORTED = {"slack": ["webhookurl", "channel", "minimumpriority"], "webhook": ["address", "method"]}
SWITCHES = {"slack": "webhookurl", "webhook": "address"}


def test_unknown_keys_of_supported_outputs_are_listed_in_the_outputs_order():
    outputs = {"webhook": {"adress": "http://x", "method": "POST"}, "teams": {"url": "u"},
               "slack": {"webhookurl": "https://h", "chanel": "#f", "minimumpriority": "error"}}
    problems = falcosidekick_output_problems(outputs, supported=SUPPORTED, switches=SWITCHES)
    # teams is not a supported output: the role's other check names it, not this list.
    assert problems["unknown_keys"] == ["webhook.adress", "slack.chanel"]
    assert problems["switched_off"] == ["webhook.address"]


@pytest.mark.parametrize("settings", [None, {}, {"webhookurl": ""}, {"webhookurl": None}, {"channel": "#f"}])
def test_an_output_without_its_switch_is_listed_as_off(settings):
    problems = falcosidekick_output_problems({"slack": settings}, supported=SUPPORTED, switches=SWITCHES)
    assert problems == {"unknown_keys": [], "switched_off": ["slack.webhookurl"]}


def test_nothing_to_list_for_switched_on_outputs_with_known_keys_or_for_no_dict():
    outputs = {"slack": {"webhookurl": "https://h", "channel": "#f"}, "webhook": {"address": "http://x"}}
    assert falcosidekick_output_problems(outputs, supported=SUPPORTED, switches=SWITCHES) == \
        {"unknown_keys": [], "switched_off": []}
    assert falcosidekick_output_problems("slack", supported=SUPPORTED, switches=SWITCHES) == \
        {"unknown_keys": [], "switched_off": []}


def test_the_filter_is_registered():
    assert FilterModule().filters()["falcosidekick_output_problems"] is falcosidekick_output_problems
