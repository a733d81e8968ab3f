import bcrypt
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.web_config import FilterModule, bcrypt_salt, web_config


def test_users_become_bcrypt_hashes_that_check_against_the_password():
    config = web_config({"prometheus": "s3cret-pw"}, salt_seed="mon-1")
    digest = config["basic_auth_users"]["prometheus"]
    assert digest.startswith("$2b$12$") and "s3cret-pw" not in digest
    assert bcrypt.checkpw(b"s3cret-pw", digest.encode())
    assert not bcrypt.checkpw(b"s3cret-pW", digest.encode())
    assert "tls_server_config" not in config


def test_the_same_host_renders_the_same_hash_and_another_host_another():
    first = web_config({"u": "pw"}, salt_seed="mon-1")
    assert web_config({"u": "pw"}, salt_seed="mon-1") == first
    assert web_config({"u": "pw"}, salt_seed="mon-2") != first


def test_the_salt_is_the_one_node_exporter_used_before_so_upgrades_change_nothing():
    # roles/node_exporter rendered (inventory_hostname | hash('sha256'))[:21] ~ 'e' before the filter existed.
    assert bcrypt_salt("ne-package") == "97f959bd57401358f8d10e"
    digest = web_config({"u": "pw"}, salt_seed="ne-package")["basic_auth_users"]["u"]
    assert digest[7:29] == "97f959bd57401358f8d10e"


def test_the_hash_is_the_one_earlier_releases_rendered_so_a_converged_host_sees_no_change():
    # Rendered by the filter when it hashed through ansible's password_hash (passlib 1.7.4, bcrypt 3.2.2).
    config = web_config({"prometheus": "s3cret-pw", "u": "pw"}, salt_seed="ne-package")
    assert config["basic_auth_users"] == {
        "prometheus": "$2b$12$97f959bd57401358f8d10ek/vtQZRP3vl4cfK9JRjoK4oitj6BnAu",
        "u": "$2b$12$97f959bd57401358f8d10ez7XKrjCAE/8aGziMgUioqHPHPWt75l2",
    }


def test_a_password_longer_than_bcrypt_reads_is_refused_with_the_user_named():
    assert web_config({"u": "p" * 72}, salt_seed="h")["basic_auth_users"]["u"].startswith("$2b$12$")
    with pytest.raises(AnsibleFilterError, match=r"'long'.*73 bytes.*at most 72"):
        web_config({"long": "p" * 73}, salt_seed="h")


def test_tls_adds_the_server_files_and_nothing_without_users():
    assert web_config({}, salt_seed="h", tls=True, cert_file="/etc/x/web.crt", key_file="/etc/x/web.key") == {
        "tls_server_config": {"cert_file": "/etc/x/web.crt", "key_file": "/etc/x/web.key"}}
    assert web_config({}, salt_seed="h") == {}


@pytest.mark.parametrize("users, kwargs", [
    ({"u": ""}, {}),
    ({"u": None}, {}),
    (["u"], {}),
    ({}, {"tls": True, "cert_file": "/c"}),
])
def test_bad_input_is_an_error_not_a_silent_open_endpoint(users, kwargs):
    with pytest.raises(AnsibleFilterError):
        web_config(users, salt_seed="h", **kwargs)


def test_the_filter_is_registered():
    assert FilterModule().filters()["web_config"] is web_config
