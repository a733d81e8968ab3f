from ansible_collections.fleetwatch.falco_stack.plugins.filter.suggest_names import FilterModule, suggest_names

KNOWN = ["node_exporter_mode", "node_exporter_web_listen_address", "node_exporter_tls_enabled"]


def test_a_transposition_gets_the_intended_name():
    assert suggest_names(["node_exporter_mdoe"], KNOWN) == "node_exporter_mdoe (did you mean node_exporter_mode?)"


def test_each_unknown_name_gets_its_own_phrase():
    result = suggest_names(["node_exporter_tls_enable", "node_exporter_web_listen_adress"], KNOWN)
    assert result == ("node_exporter_tls_enable (did you mean node_exporter_tls_enabled?); "
                      "node_exporter_web_listen_adress (did you mean node_exporter_web_listen_address?)")


def test_a_name_like_nothing_known_says_so():
    assert suggest_names(["node_exporter_zzz_qqq_xxx_yyy"], ["a"]) == "node_exporter_zzz_qqq_xxx_yyy (no similar name)"


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters()["suggest_names"] is suggest_names
