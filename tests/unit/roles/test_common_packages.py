"""Task file _common/packages, run for real on this machine (Debian): an installed package costs no package manager
call and no list refresh; a missing one is installed after a refresh (here in check mode, so nothing changes); a
host without python3-apt (a minimal cloud image) gets it too, and check mode there shows the install without calling
the apt module, which cannot run in check mode without it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from localplay import results, run_json  # noqa: E402

MISSING = "sl"  # a small package of Debian's main archive that no set-up of ours installs

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None or shutil.which("dpkg-query") is None,
                                reason="needs ansible-playbook (activate the venv) and a Debian machine (dpkg-query)")


def install(tmp_path, packages, *args, extra_vars=None):
    """Run the task file on localhost; returns (rc, report, output) from the JSON callback (tests/unit/localplay.py)."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack._common", "tasks_from": "packages"},
         "vars": {"__common_packages": packages}},
        {"ansible.builtin.debug": {"var": "__common_packages_result"}}]}]
    return run_json(tmp_path, play, extra_vars or {}, *args)


def ran(report, action):
    """The results of the task file's calls of one module that ran (were not skipped)."""
    return [r for r in results(report, action) if not r.get("skipped")]


def apt_get_and_package_calls(report):
    """The calls that refresh the package lists and install: apt-get for python3-apt, the package module for the rest."""
    return ran(report, "ansible.builtin.shell") + ran(report, "ansible.builtin.package")


def packages_result(report):
    """__common_packages_result as the play's last task shows it."""
    return results(report, "ansible.builtin.debug")[-1]["__common_packages_result"]


def test_installed_packages_cost_no_refresh_and_no_install(tmp_path):
    version = subprocess.run(["dpkg-query", "--show", "--showformat=${Version}", "dpkg"], capture_output=True,
                             text=True, check=True).stdout
    rc, report, output = install(tmp_path, [{"name": "dpkg", "version": version}, {"name": "coreutils", "version": ""}])
    assert rc == 0, output[-3000:]
    assert report["stats"]["localhost"]["changed"] == 0, report["stats"]
    # One query for every package, python3-apt first (the apt module needs it); no refresh, no install.
    query, = ran(report, "ansible.builtin.command")
    assert query["cmd"][-3:] == ["python3-apt", "dpkg", "coreutils"], query["cmd"]
    assert apt_get_and_package_calls(report) == []
    assert packages_result(report) == {"changed": False}


@pytest.mark.skipif(subprocess.run(["dpkg-query", "--show", "--showformat=${db:Status-Status}", MISSING],
                                   capture_output=True, text=True, check=False).stdout == "installed",
                    reason="%s is installed on this machine" % MISSING)
@pytest.mark.skipif(subprocess.run(["apt-cache", "show", MISSING], capture_output=True, check=False).returncode != 0,
                    reason="%s is not in this machine's package lists (apt-get update first)" % MISSING)
def test_a_missing_package_is_installed_with_the_lists_refreshed_first(tmp_path):
    rc, report, output = install(tmp_path, [{"name": "coreutils", "version": ""}, {"name": MISSING, "version": ""}],
                                 "--check")
    assert rc == 0, output[-3000:]
    # The package module alone, for the missing package only, with the lists refreshed first.
    call, = apt_get_and_package_calls(report)
    assert call["action"] == "ansible.builtin.package" and call["changed"], call
    assert call["invocation"]["module_args"]["name"] == [MISSING], call["invocation"]
    assert call["invocation"]["module_args"]["update_cache"] is True, call["invocation"]
    assert report["stats"]["localhost"]["changed"] == 1, report["stats"]
    assert packages_result(report) == {"changed": True}


def test_check_mode_on_a_host_without_python3_apt_shows_the_install_and_calls_no_package_manager(tmp_path):
    # The package query as a minimal cloud image answers it: none of the packages, python3-apt among them, installed.
    bare_host = {"__common_packages_query": {"apt": ["true"], "dnf": ["true"]}}
    rc, report, output = install(tmp_path, [{"name": MISSING, "version": ""}], "--check", extra_vars=bare_host)
    assert rc == 0, output[-3000:]
    assert report["stats"]["localhost"]["changed"] == 1, report["stats"]
    assert apt_get_and_package_calls(report) == []
    shown = [r["msg"] for r in ran(report, "ansible.builtin.debug") if r.get("changed")]
    assert shown == ["A run would refresh the package lists and install python3-apt, %s." % MISSING], shown
    assert packages_result(report) == {"changed": True}
