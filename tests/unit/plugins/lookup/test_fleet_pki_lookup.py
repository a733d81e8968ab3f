import os

import pytest
from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.fleetwatch.falco_stack.plugins.lookup.fleet_pki import LookupModule, pki_path


def lookup(terms, variables, **kwargs):
    module = LookupModule(loader=DataLoader(), templar=Templar(loader=DataLoader()))
    return module.run(terms, variables=variables, **kwargs)


def test_the_layout_is_ca_at_the_top_and_one_pair_per_host():
    assert pki_path("/p", "ca", "h1") == "/p/ca.crt"
    assert pki_path("/p", "ca_key", "h1") == "/p/ca.key"
    assert pki_path("/p", "cert", "h1") == "/p/hosts/h1.crt"
    assert pki_path("/p", "key", "h1") == "/p/hosts/h1.key"
    assert pki_path("~/x", "dir", "h1") == os.path.expanduser("~/x")


@pytest.mark.parametrize("host", ["", "../etc/passwd", "a/b", ".hidden"])
def test_a_host_name_that_would_escape_the_directory_is_refused(host):
    with pytest.raises(AnsibleLookupError):
        pki_path("/p", "key", host)


def test_contents_and_paths_for_the_current_host(tmp_path):
    (tmp_path / "hosts").mkdir()
    (tmp_path / "ca.crt").write_text("CA PEM\n")
    (tmp_path / "hosts" / "web-1.crt").write_text("CERT PEM\n")
    variables = {"inventory_hostname": "web-1", "fleetwatch_pki_dir": str(tmp_path)}
    assert lookup(["ca", "cert", "key_path"], variables) == ["CA PEM\n", "CERT PEM\n", str(tmp_path / "hosts" / "web-1.key")]
    assert lookup(["cert_path"], variables, host="other") == [str(tmp_path / "hosts" / "other.crt")]


def test_a_missing_file_says_to_run_the_fleet_pki_role(tmp_path):
    with pytest.raises(AnsibleLookupError, match="run the fleet_pki role"):
        lookup(["key"], {"inventory_hostname": "web-1", "fleetwatch_pki_dir": str(tmp_path)})


def test_credentials_come_from_the_fleet_variables_with_prometheus_as_the_default_user():
    variables = {"fleetwatch_scrape_password": "pw-1"}
    assert lookup(["users", "basic_auth"], variables) == [{"prometheus": "pw-1"}, {"username": "prometheus", "password": "pw-1"}]
    assert lookup(["users"], dict(variables, fleetwatch_scrape_username="scraper")) == [{"scraper": "pw-1"}]
    # No default password: an unset one comes back empty and the roles' preflight refuses it.
    assert lookup(["basic_auth"], {}) == [{"username": "prometheus", "password": ""}]


def test_an_unknown_term_or_option_is_an_error():
    with pytest.raises(AnsibleLookupError, match="unknown term"):
        lookup(["private"], {"inventory_hostname": "h"})
    with pytest.raises(AnsibleLookupError, match="unknown option"):
        lookup(["ca_path"], {}, hots="h")
