"""The host_inspect module run in-process against a temporary tree, with stand-in systemctl, dpkg-query, podman, ufw
and firewall-cmd first on PATH (each behaving as the real one does for the calls the module makes), and once through
ansible-playbook in check mode."""

import grp
import hashlib
import os
import pwd
import shutil
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from ansible.module_utils import basic
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils import host_inspect as utils
from ansible_collections.fleetwatch.falco_stack.plugins.modules import host_inspect

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from module_runner import run_module_main  # noqa: E402
from localplay import results as localplay_results, run_json  # noqa: E402


# systemd 252's is-enabled: prints each unit's state and stops at the first unit it does not know (exit 1);
# is-active prints one line per unit. Unit states come from $FAKE/units ("name file_state active_state" lines).
SYSTEMCTL = r"""#!/bin/sh
echo "$*" >> "$FAKE/calls"
verb=$1; shift
for unit in "$@"; do
  line=$(grep "^$unit " "$FAKE/units")
  if [ "$verb" = is-enabled ]; then
    if [ -z "$line" ]; then echo "Failed to get unit file state for $unit: No such file or directory" >&2; exit 1; fi
    echo "$line" | cut -d' ' -f2
  else
    if [ -n "$line" ]; then echo "$line" | cut -d' ' -f3; else echo inactive; fi
  fi
done
"""
DPKG_QUERY = r"""#!/bin/sh
echo "dpkg-query $*" >> "$FAKE/calls"
shift 3
rc=0
for name in "$@"; do
  line=$(grep "^$name	" "$FAKE/dpkg") && echo "$line" || { echo "dpkg-query: no packages found matching $name" >&2; rc=1; }
done
exit $rc
"""
PODMAN = r"""#!/bin/sh
[ "$1 $2" = "image exists" ] && grep -qx "$3" "$FAKE/images"
"""
UFW = r"""#!/bin/sh
case "$1" in
  status) printf 'Status: active\n\nTo Action From\n' ;;
  show) echo "Added user rules (see 'ufw status' for running firewall):"
        echo "ufw allow 22/tcp"
        echo "ufw deny 9100/tcp comment 'fleetwatch node_exporter'" ;;
esac
"""
FIREWALL_CMD = r"""#!/bin/sh
echo "firewall-cmd $*" >> "$FAKE/calls"
case "$*" in
  --state) echo "not running"; exit 252 ;;
esac
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A bin directory of stand-ins first on PATH; returns the directory their data and call log live in."""
    data = tmp_path / "fake"
    bin_dir = data / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("systemctl", SYSTEMCTL), ("dpkg-query", DPKG_QUERY), ("podman", PODMAN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (data / "units").write_text("falco-kmod.service disabled inactive\nfalco-bpf.service enabled active\n"
                                "falcoctl-artifact-follow.service masked inactive\nfalco-custom.service static inactive\n")
    (data / "dpkg").write_text("falco\tinstalled\t0.41.3\nprometheus-node-exporter\tconfig-files\t1.5.0-1+b6\n")
    (data / "images").write_text("localhost/node-exporter:v1.8.2\n")
    (data / "calls").write_text("")
    monkeypatch.setenv("FAKE", str(data))
    # Only the stand-ins and the shell tools they use: no real ufw, firewall-cmd or rpm of this machine answers.
    tools = data / "tools"
    tools.mkdir()
    for tool in ("sh", "grep", "cut", "printf", "echo", "cat"):
        found = shutil.which(tool)
        if found:
            (tools / tool).symlink_to(found)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, tools))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: shutil.which(name, path=str(bin_dir)))
    return data


def run_module(capsys, **args):
    return run_module_main(host_inspect.main, args, capsys)


def calls(fake):
    return (fake / "calls").read_text().splitlines()


def test_paths_report_type_mode_owner_and_the_content_of_files(tmp_path, fake, capsys):
    tree = tmp_path / "etc"
    tree.mkdir(mode=0o750)
    (tree / "web-config.yml").write_text("tls_server_config: {}\n")
    os.chmod(tree / "web-config.yml", 0o640)
    (tree / "empty").write_text("")
    (tree / "link").symlink_to(tree / "web-config.yml")
    (tree / "dangling").symlink_to(tree / "gone")
    result = run_module(capsys, paths=[str(tree), str(tree / "web-config.yml"), str(tree / "empty"),
                                       str(tree / "link"), str(tree / "dangling"), str(tree / "missing")])
    me, my_group = pwd.getpwuid(os.geteuid()), grp.getgrgid(os.getegid())
    assert result["changed"] is False
    assert set(result["paths"]) == {str(tree), str(tree / "web-config.yml"), str(tree / "empty"), str(tree / "link")}
    assert result["paths"][str(tree / "web-config.yml")] == {
        "type": "regular file", "mode": "640", "user": me.pw_name, "uid": str(me.pw_uid), "group": my_group.gr_name,
        "gid": str(my_group.gr_gid), "sha1": hashlib.sha1(b"tls_server_config: {}\n").hexdigest()}
    assert result["paths"][str(tree)]["type"] == "directory" and result["paths"][str(tree)]["mode"] == "750"
    assert "sha1" not in result["paths"][str(tree)]
    assert result["paths"][str(tree / "empty")]["type"] == "regular empty file"
    # A link is reported as a link (not its target's mode), with the SHA-1 of what it points at.
    link = result["paths"][str(tree / "link")]
    assert link["type"] == "symbolic link" and link["sha1"] == result["paths"][str(tree / "web-config.yml")]["sha1"]


def test_listings_hold_the_files_of_each_directory_hidden_ones_too(tmp_path, fake, capsys):
    rules = tmp_path / "rules"
    (rules / "subdir").mkdir(parents=True)
    for name in ("b.yml", "a.yml", ".hidden.yml"):
        (rules / name).write_text("groups: []\n")
    result = run_module(capsys, list_dirs=[str(rules), str(tmp_path / "absent")])
    assert result["listings"] == {str(rules): [str(rules / n) for n in (".hidden.yml", "a.yml", "b.yml")],
                                  str(tmp_path / "absent"): []}


def test_units_in_one_call_each_even_past_a_unit_systemd_does_not_know(fake, capsys):
    units = ["falco-kmod.service", "falco-bpf.service", "falco-gone.service", "falcoctl-artifact-follow.service",
             "falco-custom.service"]
    result = run_module(capsys, units=units)
    assert result["units"] == {
        "falco-kmod.service": {"unit_file_state": "disabled", "enabled": False, "active_state": "inactive",
                               "active": False},
        "falco-bpf.service": {"unit_file_state": "enabled", "enabled": True, "active_state": "active", "active": True},
        "falco-gone.service": {"unit_file_state": "not-found", "enabled": False, "active_state": "inactive",
                               "active": False},
        "falcoctl-artifact-follow.service": {"unit_file_state": "masked", "enabled": False,
                                             "active_state": "inactive", "active": False},
        "falco-custom.service": {"unit_file_state": "static", "enabled": True, "active_state": "inactive",
                                 "active": False}}
    # is-enabled stopped at the unknown unit and was asked again for the rest; is-active answered all at once.
    assert calls(fake) == ["is-enabled " + " ".join(units), "is-enabled " + " ".join(units[3:]),
                           "is-active " + " ".join(units)]


def test_without_a_running_systemd_a_unit_is_neither_enabled_nor_active(fake, capsys):
    (fake / "bin" / "systemctl").write_text("#!/bin/sh\necho 'System has not been booted with systemd' >&2\nexit 1\n")
    result = run_module(capsys, units=["a.service", "b.service"])
    assert result["units"]["b.service"] == {"unit_file_state": "not-found", "enabled": False,
                                            "active_state": "unknown", "active": False}


def test_packages_report_installed_versions_only(fake, capsys):
    result = run_module(capsys, packages=["falco", "prometheus-node-exporter", "absent-package"])
    # Removed with its configuration kept is not installed.
    assert result["packages"] == {"falco": ["0.41.3"], "prometheus-node-exporter": [], "absent-package": []}
    assert len([c for c in calls(fake) if c.startswith("dpkg-query")]) == 1


def test_rpm_versions_are_reported_with_and_without_the_release():
    def rpm(argv):
        assert argv[:3] == ["rpm", "-q", "--qf"]
        return 1, "node_exporter\t1.8.2\t3.fc41\npackage absent is not installed\n", ""
    assert utils.package_versions(rpm, None, "rpm", ["node_exporter", "absent"]) == {
        "node_exporter": ["1.8.2", "1.8.2-3.fc41"], "absent": []}


def test_executables_sockets_and_images(tmp_path, fake, capsys):
    sock_path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        result = run_module(capsys, executables=["podman", "docker"], sockets=[str(sock_path), str(tmp_path)],
                            podman_images=["localhost/node-exporter:v1.8.2", "localhost/node-exporter:v1.9.0"])
    finally:
        server.close()
    assert result["executables"] == {"podman": str(fake / "bin" / "podman"), "docker": None}
    assert result["sockets"] == {str(sock_path): True, str(tmp_path): False}
    assert result["podman_images"] == {"localhost/node-exporter:v1.8.2": True, "localhost/node-exporter:v1.9.0": False}
    (fake / "bin" / "podman").unlink()
    result = run_module(capsys, podman_images=["localhost/node-exporter:v1.8.2"])
    assert result["podman_images"] == {"localhost/node-exporter:v1.8.2": False}


def test_unloaded_names_the_paths_holding_a_file_newer_than_the_stamp(tmp_path, fake, capsys):
    stamp, config, rules = tmp_path / ".fleetwatch-loaded", tmp_path / "prometheus.yml", tmp_path / "rules"
    rules.mkdir()
    config.write_text("global: {}\n")
    (rules / "a.yml").write_text("groups: []\n")
    watched = {"stamp": str(stamp), "paths": [str(config), str(rules), str(tmp_path / "ca.crt")]}
    assert run_module(capsys, unloaded=watched)["unloaded"] == [str(config), str(rules)]
    assert "unloaded" not in run_module(capsys)
    stamp.write_text("")
    past = stamp.stat().st_mtime - 60
    for path in (config, rules / "a.yml"):
        os.utime(path, (past, past))
    assert run_module(capsys, unloaded=watched)["unloaded"] == []
    # A candidate the files module wrote (and a new subdirectory) is not a file the service reads.
    (rules / ".fleetwatch-candidate.tmp").write_text("groups: [\n")
    (rules / "newdir").mkdir()
    assert run_module(capsys, unloaded=watched)["unloaded"] == []
    (rules / "b.yml").write_text("groups: []\n")
    assert run_module(capsys, unloaded=watched)["unloaded"] == [str(rules)]


def test_names_resolve_to_their_addresses_and_unknown_ones_to_none(fake, capsys):
    result = run_module(capsys, resolve=["localhost", "no-such-host.invalid"])
    assert "127.0.0.1" in result["resolved"]["localhost"] or "::1" in result["resolved"]["localhost"]
    assert result["resolved"]["no-such-host.invalid"] == []


def test_firewall_reports_ufw_rules_and_a_stopped_firewalld(fake, capsys):
    for name, text in (("ufw", UFW), ("firewall-cmd", FIREWALL_CMD)):
        (fake / "bin" / name).write_text(text)
        (fake / "bin" / name).chmod(0o755)
    result = run_module(capsys, firewall={"zone": "public"})
    assert result["firewall"] == {"ufw": "active", "firewalld": "not running", "rich_rules": [],
                                  "ufw_added": ["ufw allow 22/tcp", "ufw deny 9100/tcp comment 'fleetwatch node_exporter'"]}
    # firewalld's rules are read only while it runs.
    assert [c for c in calls(fake) if c.startswith("firewall-cmd")] == ["firewall-cmd --state"]
    (fake / "bin" / "firewall-cmd").write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "firewall-cmd $*" >> "$FAKE/calls"
        [ "$1" = --state ] && echo running && exit 0
        echo 'rule priority="-3211" family="ipv4" source address="10.0.0.5" port port="9100" protocol="tcp" accept'
        """))
    assert run_module(capsys, firewall={"zone": "public"})["firewall"]["rich_rules"] == [
        'rule priority="-3211" family="ipv4" source address="10.0.0.5" port port="9100" protocol="tcp" accept']
    assert calls(fake)[-1] == "firewall-cmd --permanent --zone=public --list-rich-rules"
    (fake / "bin" / "ufw").unlink()
    (fake / "bin" / "firewall-cmd").unlink()
    assert run_module(capsys, firewall={})["firewall"] == {"ufw": "", "ufw_added": [], "firewalld": "",
                                                           "rich_rules": []}


@pytest.mark.parametrize("text, family, ids", [
    ('ID=debian\nVERSION_ID="12"\n', "Debian", ["debian"]),
    ('ID=ubuntu\nID_LIKE=debian\n', "Debian", ["ubuntu", "debian"]),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "RedHat", ["rocky", "rhel", "centos", "fedora"]),
    ('ID=opensuse-leap\nID_LIKE="suse opensuse"\n', "", ["opensuse-leap", "suse", "opensuse"]),
])
def test_os_family_follows_os_release(tmp_path, text, family, ids):
    release = tmp_path / "os-release"
    release.write_text(text)
    assert utils.os_release(str(release)) == ids and utils.os_family(ids) == family
    assert utils.os_release(str(tmp_path / "absent")) == []


@pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                    reason="ansible-playbook not on PATH (activate the venv: . scripts/lib.sh; activate_venv)")
def test_check_mode_reports_the_same_and_nothing_changes(tmp_path):
    tree = tmp_path / "etc"
    tree.mkdir()
    (tree / "a.yml").write_text("a: 1\n")
    args = {"paths": [str(tree / "a.yml")], "list_dirs": [str(tree)]}
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{"fleetwatch.falco_stack.host_inspect": args}]}]
    results = []
    for flags in ([], ["--check", "--diff"]):
        _rc, report, _output = run_json(tmp_path, play, {}, *flags)
        results += localplay_results(report, "fleetwatch.falco_stack.host_inspect")
    assert len(results) == 2, results
    for result in results:
        assert result["changed"] is False and not result.get("failed"), result
        assert result["paths"][str(tree / "a.yml")]["sha1"] == hashlib.sha1(b"a: 1\n").hexdigest()
    assert results[0]["listings"] == results[1]["listings"] == {str(tree): [str(tree / "a.yml")]}
    assert sorted(p.name for p in tree.iterdir()) == ["a.yml"]
