import base64

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.falcosidekick_outputs import (
    FilterModule, alertmanager_defaults, alertmanager_hostport, falcosidekick_outputs)

SLACK = {"webhookurl": "https://hooks.slack.example/services/T/B/X", "minimumpriority": "critical"}


@pytest.mark.parametrize("listen, tls, expected", [
    ("0.0.0.0:9093", False, "http://127.0.0.1:9093"),        # the alertmanager role's default: the loopback
    (":9193", False, "http://127.0.0.1:9193"),
    ("[::]:9093", True, "https://[::1]:9093"),
    ("10.1.2.3:9193", False, "http://10.1.2.3:9193"),
    ("am.example:9094", True, "https://am.example:9094"),
    ("[2001:db8::5]:9093", False, "http://[2001:db8::5]:9093"),
])
def test_alertmanager_is_reached_from_this_host_at_its_listen_address(listen, tls, expected):
    assert alertmanager_hostport(listen, tls) == expected


def test_defaults_name_the_alerts_and_use_api_v2_and_add_tls_and_credentials_only_when_set():
    assert alertmanager_defaults("0.0.0.0:9093", "", {}) == {
        "hostport": "http://127.0.0.1:9093", "endpoint": "/api/v2/alerts", "extralabels": "alertname:FalcoEvent"}
    with_both = alertmanager_defaults("0.0.0.0:9093", "PEM", {"username": "fleet", "password": "pa:ss"})
    assert with_both["hostport"] == "https://127.0.0.1:9093" and with_both["checkcert"] is True
    header = with_both["customHeaders"]["Authorization"]
    assert header.startswith("Basic ") and base64.b64decode(header[6:]) == b"fleet:pa:ss"


def test_the_users_alertmanager_keys_win_over_the_defaults_and_the_output_keeps_its_place():
    outputs = {"slack": SLACK,
               "alertmanager": {"minimumpriority": "error", "hostport": "https://am.example:9093",
                                "customHeaders": {"X-Team": "secops"}}}
    result = falcosidekick_outputs(outputs, "10.0.0.1:9093", "", {"username": "u", "password": "p"})
    assert list(result) == ["slack", "alertmanager"]
    assert result["alertmanager"] == {"hostport": "https://am.example:9093", "endpoint": "/api/v2/alerts",
                                      "extralabels": "alertname:FalcoEvent", "customHeaders": {"X-Team": "secops"},
                                      "minimumpriority": "error"}
    assert result["slack"] is SLACK
    assert outputs["alertmanager"] == {"minimumpriority": "error", "hostport": "https://am.example:9093",
                                       "customHeaders": {"X-Team": "secops"}}, "the input is not changed"


@pytest.mark.parametrize("own", [None, {}])
def test_an_alertmanager_output_without_keys_is_the_collections_alertmanager(own):
    assert falcosidekick_outputs({"alertmanager": own}) == {"alertmanager": {
        "hostport": "http://127.0.0.1:9093", "endpoint": "/api/v2/alerts", "extralabels": "alertname:FalcoEvent"}}


def test_without_an_alertmanager_output_none_is_added_even_with_credentials():
    assert falcosidekick_outputs({"slack": SLACK}, "0.0.0.0:9093", "PEM", {"username": "u", "password": "p"}) == {
        "slack": SLACK}
    assert falcosidekick_outputs({}) == {}


@pytest.mark.parametrize("address, port, url", [
    ("0.0.0.0", 2802, "http://127.0.0.1:2802"),
    ("", "2900", "http://127.0.0.1:2900"),
    ("::", 2802, "http://[::1]:2802"),
    ("192.0.2.7", 80, "http://192.0.2.7:80"),
])
def test_the_web_ui_is_added_only_when_it_runs(address, port, url):
    assert falcosidekick_outputs({"slack": SLACK}, ui_enabled=True, ui_listen_address=address,
                                 ui_listen_port=port) == {"slack": SLACK, "webui": {"url": url}}
    assert "webui" not in falcosidekick_outputs({"slack": SLACK}, ui_enabled=False, ui_listen_address=address)


@pytest.mark.parametrize("outputs, basic_auth, needle", [
    (["slack"], {}, "falcosidekick_outputs must be a dict"),
    ({"alertmanager": "http://am:9093"}, {}, "falcosidekick_outputs.alertmanager must be a dict"),
    ({"alertmanager": {}}, "user:pass", "falcosidekick_alertmanager_basic_auth must be a dict"),
])
def test_wrong_shapes_are_refused_naming_the_variable(outputs, basic_auth, needle):
    with pytest.raises(AnsibleFilterError, match=needle):
        falcosidekick_outputs(outputs, alertmanager_basic_auth=basic_auth)


def test_the_filter_is_registered():
    assert FilterModule().filters()["falcosidekick_outputs"] is falcosidekick_outputs
