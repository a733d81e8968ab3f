from ansible_collections.fleetwatch.falco_stack.plugins.filter.mask_values import FilterModule, mask_values

RECEIVERS = [
    {"name": "oncall", "webhook_configs": [{"url": "https://hooks.example/services/T0123/B0456/s3cr3tT0ken?key=abcd1234"}]},
    {"name": "mail", "email_configs": [{"to": "secops@example.com", "auth_password": "hunter2-long",
                                        "send_resolved": True}]},
]
GLOBAL = {"smtp_smarthost": "mail.example.com:587", "smtp_auth_password": "Pa55word!"}


def test_every_string_value_of_the_sources_is_hidden_and_the_rest_of_the_message_kept():
    message = ('failed to validate: rc:1 error:  FAILED: unsupported auth "hunter2-long" for "secops@example.com"'
               ' via mail.example.com:587 with Pa55word!')
    masked = mask_values(message, [RECEIVERS, GLOBAL])
    for secret in ("hunter2-long", "secops@example.com", "mail.example.com:587", "Pa55word!"):
        assert secret not in masked
    assert masked.startswith("failed to validate: rc:1 error:  FAILED: unsupported auth")
    assert masked.count("********") == 4


def test_parts_of_a_url_are_hidden_when_a_tool_quotes_it_in_part():
    masked = mask_values('bad path "/services/T0123/B0456/s3cr3tT0ken" and query key=abcd1234', [RECEIVERS])
    assert "s3cr3tT0ken" not in masked and "T0123" not in masked and "abcd1234" not in masked
    assert masked.startswith("bad path ")


def test_the_longest_value_is_hidden_whole_before_its_parts():
    url = RECEIVERS[0]["webhook_configs"][0]["url"]
    assert mask_values("parse %s: invalid" % url, [RECEIVERS]) == "parse ********: invalid"


def test_receiver_names_stay_visible_so_the_message_says_which_receiver():
    masked = mask_values('undefined receiver "oncall" used in route; mail', [RECEIVERS])
    assert masked == 'undefined receiver "oncall" used in route; mail'


def test_other_keys_can_be_kept_and_short_strings_are_not_masked():
    assert mask_values("to secops@example.com", [RECEIVERS], keep=["name", "to"]) == "to secops@example.com"
    assert mask_values("a b", [{"x": "a"}, {"y": "b"}]) == "a b"
    assert mask_values("key abc", [{"x": "abc"}], min_length=4) == "key abc"
    assert mask_values("key abc", [{"x": "abc"}], mask="<hidden>") == "key <hidden>"


def test_no_text_gives_an_empty_string_and_non_string_leaves_are_ignored():
    assert mask_values(None, [RECEIVERS]) == ""
    assert mask_values("True 587", [{"a": True, "b": 587}]) == "True 587"


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters()["mask_values"] is mask_values
