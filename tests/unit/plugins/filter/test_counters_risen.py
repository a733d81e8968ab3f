import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.counters_risen import FilterModule, counters_risen


def answer(**counts):
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"rule": rule.replace("_", " ")}, "value": [1700000000.0, str(count)]} for rule, count in counts.items()]}}


def test_a_rule_that_rose_or_appeared_is_returned_and_a_steady_one_is_not():
    before = answer(Write_below_binary_dir=3, Launch_Privileged_Container=1)
    after = answer(Write_below_binary_dir=4, Launch_Privileged_Container=1, Launch_Sensitive_Mount_Container=1)
    assert counters_risen(after, before, "rule") == ["Launch Sensitive Mount Container", "Write below binary dir"]


def test_nothing_rose_when_the_answers_are_the_same():
    assert counters_risen(answer(a=2), answer(a=2), "rule") == []


def test_a_counter_that_restarted_and_counted_again_rose_and_one_that_restarted_without_counting_did_not():
    # Falco restarted between the answers: the earlier values belong to the previous process.
    before = answer(Read_sensitive_file_untrusted=12, Terminal_shell_in_container=2)
    after = answer(Read_sensitive_file_untrusted=1, Terminal_shell_in_container=0)
    assert counters_risen(after, before, "rule") == ["Read sensitive file untrusted"]


def test_a_series_gone_from_the_later_answer_did_not_rise():
    assert counters_risen(answer(), answer(a=5), "rule") == []


def test_an_error_answer_is_refused_with_the_answer_shown():
    with pytest.raises(AnsibleFilterError, match="not a successful instant vector"):
        counters_risen({"status": "error", "error": "parse error"}, answer(a=1), "rule")


def test_a_series_without_the_label_is_refused():
    with pytest.raises(AnsibleFilterError, match="unexpected query answer"):
        counters_risen(answer(a=1), answer(a=1), "rule_name")


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters()["counters_risen"] is counters_risen
