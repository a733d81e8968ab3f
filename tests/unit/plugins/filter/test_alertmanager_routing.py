import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.alertmanager_routing import (
    FilterModule, alertmanager_routing, null_receivers, routes, with_template_texts)

# The shape of the role's __alertmanager_template_texts (roles/alertmanager/vars/main.yml), with short test values.
TEXTS = {"slack_configs": {"title": "T-title", "text": "T-text"},
         "email_configs": {"text": "T-etext", "html": "T-html", "headers": {"Subject": "T-subject"}}}
HOOK = {"name": "oncall", "webhook_configs": [{"url": "https://hooks.example/a"}]}


def test_routes_are_extra_then_host_with_continue_then_severity_each_in_the_maps_order():
    extra = [{"receiver": "oncall", "matchers": ['alertname="Watchdog"']}]
    assert routes(extra, {"db-1": "mail", "web-2": "chat"}, {"critical": "oncall", "warning": "chat"}) == [
        {"receiver": "oncall", "matchers": ['alertname="Watchdog"']},
        {"receiver": "mail", "matchers": ['host="db-1"'], "continue": True},
        {"receiver": "chat", "matchers": ['host="web-2"'], "continue": True},
        {"receiver": "oncall", "matchers": ['severity="critical"']},
        {"receiver": "chat", "matchers": ['severity="warning"']},
    ]
    assert routes([], {}, {}) == []


def test_extra_routes_are_kept_verbatim_and_not_changed():
    extra = [{"receiver": "oncall", "matchers": ['env="prod"'], "continue": True,
              "routes": [{"receiver": "mail", "matchers": ['team="db"']}]}]
    result = routes(extra, {"db-1": "mail"}, {})
    assert result[0] is extra[0] and len(extra) == 1


@pytest.mark.parametrize("default, severity, host, expected", [
    ("null", {}, {}, [{"name": "null"}]),                       # the role's default: drop what no route matches
    ("oncall", {"info": "null"}, {}, [{"name": "null"}]),
    ("oncall", {}, {"lab-1": "null"}, [{"name": "null"}]),
    ("oncall", {"critical": "oncall"}, {"db-1": "oncall"}, []),  # not used: not added
])
def test_the_null_receiver_is_added_only_when_used(default, severity, host, expected):
    assert null_receivers([HOOK], default, host, severity) == expected


def test_a_null_receiver_the_user_defines_is_not_added_twice():
    own = {"name": "null", "webhook_configs": [{"url": "https://sink.example/"}]}
    assert null_receivers([HOOK, own], "null", {}, {"info": "null"}) == []
    result = alertmanager_routing([HOOK, own], "null", severity_receivers={"info": "null"})
    assert result["receivers"] == [HOOK, own]


def test_texts_are_filled_only_where_the_receiver_sets_none_and_its_own_values_win():
    receiver = {"name": "people",
                "slack_configs": [{"api_url": "https://slack.example/x", "text": "own text"},
                                  {"api_url": "https://slack.example/y"}],
                "email_configs": [{"to": "a@example.com", "headers": {"Reply-To": "b@example.com"}},
                                  {"to": "c@example.com", "html": "own html", "headers": {"Subject": "own subject"}}],
                "webhook_configs": [{"url": "https://hooks.example/a"}]}
    filled = with_template_texts(receiver, TEXTS)
    assert filled["slack_configs"] == [
        {"title": "T-title", "text": "own text", "api_url": "https://slack.example/x"},
        {"title": "T-title", "text": "T-text", "api_url": "https://slack.example/y"},
    ]
    assert filled["email_configs"] == [
        {"text": "T-etext", "html": "T-html", "headers": {"Subject": "T-subject", "Reply-To": "b@example.com"},
         "to": "a@example.com"},
        {"text": "T-etext", "html": "own html", "headers": {"Subject": "own subject"}, "to": "c@example.com"},
    ]
    assert filled["webhook_configs"] == receiver["webhook_configs"]  # no texts for webhooks
    assert list(filled) == list(receiver)  # the receiver's keys keep their order
    # The input is not changed.
    assert receiver["slack_configs"][1] == {"api_url": "https://slack.example/y"}
    assert TEXTS["email_configs"]["headers"] == {"Subject": "T-subject"}


def test_filled_fields_come_first_in_each_entry_as_the_file_has_always_shown_them():
    filled = with_template_texts({"name": "p", "slack_configs": [{"channel": "#c", "title": "mine"}]}, TEXTS)
    assert list(filled["slack_configs"][0]) == ["title", "text", "channel"]
    assert filled["slack_configs"][0]["title"] == "mine"


def test_without_texts_the_receivers_are_verbatim():
    receivers = [{"name": "chat", "slack_configs": [{"api_url": "https://slack.example/x"}]}]
    result = alertmanager_routing(receivers, "chat", template_texts={})
    assert result == {"routes": [], "receivers": receivers}


def test_the_filter_puts_routes_and_receivers_together():
    mail = {"name": "mail", "email_configs": [{"to": "a@example.com"}]}
    result = FilterModule().filters()["alertmanager_routing"](
        [HOOK, mail], "null", severity_receivers={"critical": "oncall"}, host_receivers={"db-1": "mail"},
        extra_routes=[], template_texts=TEXTS)
    assert result["routes"] == [{"receiver": "mail", "matchers": ['host="db-1"'], "continue": True},
                                {"receiver": "oncall", "matchers": ['severity="critical"']}]
    assert [r["name"] for r in result["receivers"]] == ["oncall", "mail", "null"]
    assert result["receivers"][1]["email_configs"][0]["headers"] == {"Subject": "T-subject"}


@pytest.mark.parametrize("receivers, kwargs, named", [
    ({"name": "x"}, {}, "alertmanager_receivers"),
    ([HOOK], {"extra_routes": {"receiver": "x"}}, "alertmanager_extra_routes"),
    ([HOOK], {"severity_receivers": ["oncall"]}, "alertmanager_severity_receivers"),
    ([HOOK], {"host_receivers": "db-1"}, "alertmanager_host_receivers"),
    ([{"name": "chat", "slack_configs": {"api_url": "x"}}], {"template_texts": TEXTS}, "slack_configs of receiver 'chat'"),
])
def test_bad_shapes_are_refused_naming_the_variable(receivers, kwargs, named):
    with pytest.raises(AnsibleFilterError, match=named):
        alertmanager_routing(receivers, "oncall", **kwargs)
