import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.packages_to_install import FilterModule, packages_to_install

DPKG_LISTING = "rsyslog installed 8.2302.0-1+deb12u1\nlogrotate installed 3.21.0-1\nprometheus config-files 2.42.0+ds-5+b5\n"
RPM_LISTING = "rsyslog installed 8.2310.0-4.el9\npackage logrotate is not installed\n"


def test_nothing_to_install_when_every_package_is_there_at_any_version():
    assert packages_to_install([{"name": "rsyslog"}, {"name": "logrotate", "version": ""}], DPKG_LISTING, "apt") == []


def test_a_missing_package_and_one_that_kept_only_its_configuration_files_are_installed():
    wanted = [{"name": "rsyslog"}, {"name": "rsyslog-gnutls"}, {"name": "prometheus"}]
    assert packages_to_install(wanted, DPKG_LISTING, "apt") == ["rsyslog-gnutls", "prometheus"]


def test_a_pinned_version_is_installed_when_another_one_is_there_and_left_alone_when_it_matches():
    assert packages_to_install([{"name": "logrotate", "version": "3.22.0-1"}], DPKG_LISTING, "apt") == ["logrotate=3.22.0-1"]
    assert packages_to_install([{"name": "logrotate", "version": "3.21.0-1"}], DPKG_LISTING, "apt") == []
    assert packages_to_install([{"name": "rsyslog", "version": "8.2302.*"}], DPKG_LISTING, "apt") == []


def test_dnf_specs_join_name_and_version_with_a_dash_and_rpms_not_installed_line_counts_as_missing():
    wanted = [{"name": "rsyslog", "version": "8.2310.0-5.el9"}, {"name": "logrotate"}]
    assert packages_to_install(wanted, RPM_LISTING, "dnf") == ["rsyslog-8.2310.0-5.el9", "logrotate"]


def test_an_empty_listing_means_everything_is_missing():
    assert packages_to_install([{"name": "rsyslog"}], "", "apt") == ["rsyslog"]
    assert packages_to_install([{"name": "rsyslog"}], None, "apt") == ["rsyslog"]


@pytest.mark.parametrize("wanted,manager", [([{"name": "rsyslog"}], "yum"), (["rsyslog"], "apt"), ([{}], "apt")])
def test_bad_input_is_refused(wanted, manager):
    with pytest.raises(AnsibleFilterError):
        packages_to_install(wanted, "", manager)


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="dpkg-query not found (not a Debian machine)")
def test_this_machines_real_dpkg_query_output_is_read():
    """The listing format is the one the role's task asks dpkg-query for, on this machine's own packages."""
    listing = subprocess.run(["dpkg-query", "--show", "--showformat=${Package} ${db:Status-Status} ${Version}\n",
                              "dpkg", "no-such-package-fleetwatch"], capture_output=True, text=True, check=False).stdout
    assert packages_to_install([{"name": "dpkg"}, {"name": "no-such-package-fleetwatch"}], listing, "apt") \
        == ["no-such-package-fleetwatch"]


def test_the_filter_is_registered():
    assert FilterModule().filters()["packages_to_install"] is packages_to_install
