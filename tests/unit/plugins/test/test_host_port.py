import pytest

# The module, not its TestModule class: pytest would collect a class named Test* imported here.
from ansible_collections.fleetwatch.falco_stack.plugins.test import host_port as plugin


@pytest.mark.parametrize("value", [
    "0.0.0.0:9100",
    "127.0.0.1:1",
    "192.168.1.16:65535",
    ":9093",
    "localhost:9093",
    "monitoring-01.example.com:9090",
    "under_score:2801",
    "[::]:9100",
    "[::1]:9093",
    "[fe80::1]:9376",
    "[::ffff:192.0.2.1]:9100",
    "0.0.0.0:09100",
])
def test_accepts(value):
    assert plugin.host_port(value) is True


@pytest.mark.parametrize("value", [
    "0.0.0.0:0",
    "0.0.0.0:65536",
    "0.0.0.0:99999",
    "0.0.0.0:123456",
    "0.0.0.0:http",
    "0.0.0.0:91a0",
    "0.0.0.0:",
    "0.0.0.0",
    "localhost",
    "",
    "::1:9093",
    "fe80::1:9376",
    "[::1]",
    "[]:9093",
    "[:::]:9093",
    "[192.0.2.1]:9100",
    "[fe80::1%eth0]:9376",
    "0.0.0.0: 9100",
    " 0.0.0.0:9100",
    "0.0.0.0:9100 ",
    "0.0.0.0:9100\n",
    "host name:9100",
    "http://0.0.0.0:9100",
    "0.0.0.0:9100/metrics",
    "0.0.0.0:-1",
    "0.0.0.0:+80",
    "0.0.0.0:\u0669\u0661",
], ids=repr)
def test_refuses(value):
    assert plugin.host_port(value) is False


@pytest.mark.parametrize("value", [9100, None, ["0.0.0.0:9100"], {"0.0.0.0": 9100}, b"0.0.0.0:9100"], ids=repr)
def test_refuses_what_is_not_a_string(value):
    assert plugin.host_port(value) is False


def test_the_test_is_registered_under_its_name():
    assert plugin.TestModule().tests()["host_port"] is plugin.host_port
