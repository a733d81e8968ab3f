"""Task file _common/packages, run for real on this machine (Debian): an installed package costs no package manager
call and no list refresh; a missing one is installed after a refresh (here in check mode, so nothing changes); a
host without python3-apt (a minimal cloud image) gets it too, and check mode there shows the install without calling
the apt module, which cannot run in check mode without it."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from localplay import ansible_playbook  # noqa: E402

MISSING = "sl"  # a small package of Debian's main archive that no set-up of ours installs

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None or shutil.which("dpkg-query") is None,
                                reason="needs ansible-playbook (activate the venv) and a Debian machine (dpkg-query)")


def install(tmp_path, packages, *args, extra_vars=None):
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack._common", "tasks_from": "packages"},
         "vars": {"__common_packages": packages}},
        {"ansible.builtin.debug": {"var": "__common_packages_result"}}]}]
    return ansible_playbook(tmp_path, play, extra_vars or {}, *args)


def task_output(output, name):
    """The console lines of the task whose name starts with ``name``."""
    return output.split("TASK [fleetwatch.falco_stack._common : " + name, 1)[1].split("TASK [", 1)[0]


def test_installed_packages_cost_no_refresh_and_no_install(tmp_path):
    version = subprocess.run(["dpkg-query", "--show", "--showformat=${Version}", "dpkg"], capture_output=True,
                             text=True, check=True).stdout
    rc, output, recap = install(tmp_path, [{"name": "dpkg", "version": version}, {"name": "coreutils", "version": ""}])
    assert rc == 0, output[-3000:]
    assert recap["changed"] == 0, output[-3000:]
    assert "TASK [fleetwatch.falco_stack._common : Read the installed versions of python3-apt, dpkg, coreutils]" in output
    assert "skipping: [localhost]" in task_output(output, "Refresh the package lists and install python3-apt")
    assert "skipping: [localhost]" in task_output(output, "Refresh the package lists and install]")


@pytest.mark.skipif(subprocess.run(["dpkg-query", "--show", "--showformat=${db:Status-Status}", MISSING],
                                   capture_output=True, text=True, check=False).stdout == "installed",
                    reason="%s is installed on this machine" % MISSING)
@pytest.mark.skipif(subprocess.run(["apt-cache", "show", MISSING], capture_output=True, check=False).returncode != 0,
                    reason="%s is not in this machine's package lists (apt-get update first)" % MISSING)
def test_a_missing_package_is_installed_with_the_lists_refreshed_first(tmp_path):
    rc, output, recap = install(tmp_path, [{"name": "coreutils", "version": ""}, {"name": MISSING, "version": ""}],
                                "--check")
    assert rc == 0, output[-3000:]
    assert "TASK [fleetwatch.falco_stack._common : Refresh the package lists and install %s]" % MISSING in output
    assert recap["changed"] == 1, output[-3000:]


def test_check_mode_on_a_host_without_python3_apt_shows_the_install_and_calls_no_package_manager(tmp_path):
    # The package query as a minimal cloud image answers it: none of the packages, python3-apt among them, installed.
    bare_host = {"__common_packages_query": {"apt": ["true"], "dnf": ["true"]}}
    rc, output, recap = install(tmp_path, [{"name": MISSING, "version": ""}], "--check", extra_vars=bare_host)
    assert rc == 0, output[-3000:]
    assert recap["changed"] == 1, output[-3000:]
    assert "A run would refresh the package lists and install python3-apt, %s." % MISSING in output
    assert "skipping: [localhost]" in task_output(output, "Refresh the package lists and install python3-apt")
    assert "skipping: [localhost]" in task_output(output, "Refresh the package lists and install %s]" % MISSING)
    assert re.search(r'"__common_packages_result": \{\s*"changed": true\s*\}', output), output[-3000:]
