"""Values per OS family: one map per role, `__<role>_platforms` in vars/main.yml (docs/contributing.md).

The first tests read the roles' files: no role keeps a vars/<os_family>.yml, and every family of a map has the same
keys (a family missing one would fail only on its hosts). The last ones run the roles' own expressions on this
machine (the Debian family, as its preflight learns it) and read what the tasks get.
"""

import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
from localplay import render_role_vars  # noqa: E402  (tests/unit is not on sys.path when only this folder runs)

ROLES = sorted(path.name for path in (REPO / "roles").iterdir() if (path / "vars" / "main.yml").is_file())
FAMILIES = ("Debian", "RedHat", "Suse", "Archlinux", "Alpine", "Gentoo")


class VarsLoader(yaml.SafeLoader):
    """Reads vars files with Ansible's !unsafe tag (alertmanager's notification texts) as plain strings."""


VarsLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def platforms(role):
    text = (REPO / "roles" / role / "vars" / "main.yml").read_text()
    return (yaml.load(text, Loader=VarsLoader) or {}).get("__%s_platforms" % role)  # noqa: S506 (a SafeLoader)


def test_no_role_keeps_a_vars_file_per_family():
    found = [str(path.relative_to(REPO)) for role in ROLES for family in FAMILIES
             for path in [REPO / "roles" / role / "vars" / ("%s.yml" % family)] if path.exists()]
    assert found == []


@pytest.mark.parametrize("role", [role for role in ROLES if platforms(role)])
def test_every_family_of_a_map_has_the_same_keys(role):
    keys = {family: sorted(values) for family, values in platforms(role).items()}
    assert set(keys) <= set(FAMILIES), keys
    assert len({tuple(k) for k in keys.values()}) == 1, keys


def test_prometheus_and_alertmanager_read_the_debian_entry_here(tmp_path):
    got = render_role_vars(tmp_path, "alertmanager", {"amtool": "__alertmanager_amtool_cmd",
                                                      "owner": "__alertmanager_owner"},
                           {"alertmanager_mode": "package"})
    assert got == {"amtool": "/usr/bin/amtool check-config %s", "owner": "prometheus"}
    got = render_role_vars(tmp_path, "prometheus", {"service": "__prometheus_platform.service",
                                                    "dropins": "__prometheus_dropin_files"},
                           {"prometheus_mode": "package"})
    assert got == {"service": "prometheus",
                   "dropins": ["/etc/systemd/system/prometheus.service.d/fleetwatch.conf"]}


@pytest.mark.parametrize("method, driver, install_needed, expected", [
    ("repo", "kmod", True, ["python3-apt", "gpg", "python3-debian", "dkms", "linux-headers-KERNEL"]),
    ("package", "modern_ebpf", True, ["python3-apt"]),
    ("package", "modern_ebpf", False, []),
])
def test_falco_asks_for_the_debian_family_packages_here(tmp_path, method, driver, install_needed, expected):
    got = render_role_vars(tmp_path, "falco", {"packages": "__falco_host_packages", "kernel": "ansible_facts.kernel",
                                               "query": "__falco_platform.package_query"},
                           {"falco_install_method": method, "falco_driver": driver,
                            "__falco_install_needed": install_needed})
    assert got["packages"] == [name.replace("KERNEL", got["kernel"]) for name in expected]
    assert got["query"][0] == "dpkg-query"
