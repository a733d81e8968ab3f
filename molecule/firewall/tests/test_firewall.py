"""The agent roles' host firewall: node_exporter reachable from the monitoring host only, with ufw and firewalld."""

import json
import re
import sys
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import converge, failures, http_get, run_playbook_json  # noqa: E402

MON = testinfra.get_host("podman://fw-mon")
UFW = testinfra.get_host("podman://fw-ufw")
FWD = testinfra.get_host("podman://fw-fwd")
AGENTS = {"fw-ufw": UFW, "fw-fwd": FWD}


def status(client, url):
    """HTTP status of a request from a container ("000" when refused or timed out)."""
    return "%03d" % (http_get(client, url, timeout=4).status or 0)


def address(host):
    return host.check_output("hostname -I").split()[0]


def ufw_rules():
    return UFW.check_output("ufw show added").splitlines()


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_monitoring_host_scrapes_node_exporter(agent):
    assert status(MON, f"http://{agent}:9100/metrics") == "200"
    assert "\nnode_uname_info{" in http_get(MON, f"http://{agent}:9100/metrics", timeout=4).body


@pytest.mark.parametrize("client,agent", [("fw-fwd", "fw-ufw"), ("fw-ufw", "fw-fwd")])
def test_other_hosts_are_refused(client, agent):
    # The exporter listens on every address (its own host reaches it), yet a host outside monitoring does not.
    assert status(AGENTS[agent], "http://127.0.0.1:9100/metrics") == "200"
    assert status(AGENTS[client], f"http://{agent}:9100/metrics") == "000"


def test_ufw_keeps_the_users_rules_and_policy():
    before = UFW.check_output("cat /root/ufw-before.txt").splitlines()
    after = ufw_rules() + [line for line in UFW.check_output("ufw status verbose").splitlines()
                           if line.startswith("Default:")]
    ours = [line for line in after if line.endswith("comment 'fleetwatch node_exporter'")]
    assert [line for line in after if line not in ours] == before
    mon = address(MON)
    assert ours == [f"ufw allow from {mon} to any port 9100 proto tcp comment 'fleetwatch node_exporter'",
                    "ufw deny 9100/tcp comment 'fleetwatch node_exporter'"]
    # The user's own port stays open to everyone, the outsider included.
    assert status(FWD, "http://fw-ufw:8080/") == "200"


def test_firewalld_was_started_with_ssh_allowed_and_our_rules():
    assert FWD.service("firewalld").is_running
    assert FWD.service("firewalld").is_enabled
    zone = FWD.check_output("firewall-cmd --list-all")
    assert re.search(r"^\s+services: .*\bssh\b", zone, re.M)
    assert re.search(r"^\s+ports: .*\b22/tcp\b", zone, re.M)
    permanent = FWD.check_output("firewall-cmd --permanent --list-rich-rules").splitlines()
    assert permanent == [
        f'rule priority="-3211" family="ipv4" source address="{address(MON)}" port port="9100" protocol="tcp" accept',
        'rule priority="-3201" port port="9100" protocol="tcp" reject',
    ]
    assert sorted(FWD.check_output("firewall-cmd --list-rich-rules").splitlines()) == sorted(permanent)


def test_check_mode_reports_no_change():
    code, report, output = converge("--check", "--diff")
    assert code == 0, output
    assert {host: counts["changed"] for host, counts in report["stats"].items()} == {"fw-ufw": 0, "fw-fwd": 0}, report["stats"]


@pytest.mark.parametrize("extra,expected", [
    ({"fleetwatch_firewall_monitoring_groups": ["prometheus_servers"]},
     "the group(s) prometheus_servers named by fleetwatch_firewall_monitoring_groups have no hosts"),
    ({"fleetwatch_firewall_sources": ["fw-mon"]}, "fleetwatch_firewall_sources must list IP addresses"),
    ({"fleetwatch_firewall_enabeld": True}, "fleetwatch_firewall_enabled"),
])
def test_preflight_refuses_bad_settings_without_changes(extra, expected):
    code, report, output = converge("--limit", "fw-ufw", "-e", json.dumps(extra))
    assert code != 0
    assert [m for m in failures(report, "fw-ufw") if expected in m], (failures(report, "fw-ufw"), output)
    assert report["stats"]["fw-ufw"]["changed"] == 0 and report["stats"]["fw-ufw"]["failures"] == 1, report["stats"]


def test_preflight_refuses_a_monitoring_host_it_cannot_resolve(tmp_path):
    inventory = tmp_path / "ghost.yml"
    inventory.write_text("monitoring:\n  hosts:\n    fw-ghost: {ansible_connection: local}\n")
    code, report, output = converge("--limit", "fw-ufw", "-i", str(inventory))
    assert code != 0
    refused = [m for m in failures(report, "fw-ufw") if "fw-ufw cannot resolve fw-ghost" in m and "fleetwatch_firewall_sources" in m]
    assert refused, (failures(report, "fw-ufw"), output)
    assert report["stats"]["fw-ufw"]["changed"] == 0, report["stats"]


def test_a_new_monitoring_address_replaces_the_old_rules():
    mon, fwd = address(MON), address(FWD)
    code, _report, output = converge("--limit", "fw-ufw", "-e", json.dumps({"fleetwatch_firewall_sources": [fwd]}))
    assert code == 0, output
    assert status(FWD, "http://fw-ufw:9100/metrics") == "200"
    assert status(MON, "http://fw-ufw:9100/metrics") == "000"
    assert not [line for line in ufw_rules() if mon in line]
    # Back to the inventory's monitoring host.
    code, _report, output = converge("--limit", "fw-ufw")
    assert code == 0, output
    assert status(MON, "http://fw-ufw:9100/metrics") == "200"
    assert status(FWD, "http://fw-ufw:9100/metrics") == "000"
    assert not [line for line in ufw_rules() if fwd in line]


def fleetwatch_rich_rules(runtime=False):
    listed = FWD.check_output("firewall-cmd %s --list-rich-rules" % ("" if runtime else "--permanent")).splitlines()
    return sorted(rule for rule in listed if re.match(r'rule priority="-32[01][1-3]"', rule))


def test_a_changed_port_moves_the_rules_and_leaves_none_on_the_old_port():
    # A rule of the user's on the same port (firewalld) must survive; ufw's own rules are checked by the test above.
    users_rule = 'rule family="ipv4" source address="192.0.2.9" port port="9100" protocol="tcp" accept'
    FWD.check_output("firewall-cmd --permanent --add-rich-rule '%s'" % users_rule)
    mon = address(MON)
    try:
        code, _report, output = converge("-e", json.dumps({"node_exporter_web_listen_address": "0.0.0.0:9111"}))
        assert code == 0, output
        for agent, outsider in (("fw-ufw", FWD), ("fw-fwd", UFW)):
            assert status(MON, f"http://{agent}:9111/metrics") == "200"
            assert status(outsider, f"http://{agent}:9111/metrics") == "000"
        assert [line for line in ufw_rules() if line.endswith("comment 'fleetwatch node_exporter'")] == [
            f"ufw allow from {mon} to any port 9111 proto tcp comment 'fleetwatch node_exporter'",
            "ufw deny 9111/tcp comment 'fleetwatch node_exporter'"]
        wanted = sorted([
            f'rule priority="-3211" family="ipv4" source address="{mon}" port port="9111" protocol="tcp" accept',
            'rule priority="-3201" port port="9111" protocol="tcp" reject'])
        assert fleetwatch_rich_rules() == wanted
        assert fleetwatch_rich_rules(runtime=True) == wanted
        assert users_rule in FWD.check_output("firewall-cmd --permanent --list-rich-rules").splitlines()
    finally:
        # Not converge(): the user's rule goes whatever the run printed.
        code, _report, output = run_playbook_json("converge.yml")
        FWD.run("firewall-cmd --permanent --remove-rich-rule '%s'" % users_rule)
    assert code == 0, output[-3000:]
    assert status(MON, "http://fw-fwd:9100/metrics") == "200" and status(UFW, "http://fw-fwd:9100/metrics") == "000"
    assert [rule for rule in fleetwatch_rich_rules() if "9111" in rule] == []
    assert [line for line in ufw_rules() if "9111" in line] == []
