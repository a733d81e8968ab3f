import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.unknown_role_vars import FilterModule, unknown_role_vars


def make_roles(tmp_path, *names):
    for name in names:
        (tmp_path / name / "meta").mkdir(parents=True)
        (tmp_path / name / "meta" / "argument_specs.yml").write_text("---\nargument_specs: {}\n")
    return tmp_path


def test_a_typo_is_unknown_and_declared_names_are_not(tmp_path):
    roles = make_roles(tmp_path, "falco")
    assert unknown_role_vars(["falco_version", "falco_dirver"], ["falco_version", "falco_driver"],
                             str(roles / "falco")) == ["falco_dirver"]


def test_a_sibling_roles_variables_are_left_to_it(tmp_path):
    roles = make_roles(tmp_path, "falco", "falco_exporter", "falcosidekick")
    names = ["falco_exporter_listen_address", "falco_exporter_tls_enabled", "falco_exporterx", "falco_grpc_enabeld"]
    unknown = unknown_role_vars(names, ["falco_grpc_enabled"], str(roles / "falco"))
    assert unknown == ["falco_exporterx", "falco_grpc_enabeld"]


def test_the_sibling_checks_its_own_prefix_and_a_longer_role_name_does_not_shadow_a_shorter_role(tmp_path):
    roles = make_roles(tmp_path, "falco", "falco_exporter")
    assert unknown_role_vars(["falco_exporter_listn_address"], ["falco_exporter_listen_address"],
                             str(roles / "falco_exporter") + "/") == ["falco_exporter_listn_address"]


def test_a_directory_without_argument_specs_is_no_role(tmp_path):
    roles = make_roles(tmp_path, "falco")
    (roles / "falco_notes").mkdir()
    assert unknown_role_vars(["falco_notes_x"], [], str(roles / "falco")) == ["falco_notes_x"]


def test_names_without_the_prefix_are_not_the_roles(tmp_path):
    roles = make_roles(tmp_path, "falco")
    assert unknown_role_vars(["falcosidekick_listen_port", "fleetwatch_tls_enabled"], [], str(roles / "falco")) == []


def test_the_collections_own_roles(tmp_path):
    from pathlib import Path
    roles = Path(__file__).resolve().parents[4] / "roles"
    assert unknown_role_vars(["falco_exporter_listen_address", "falco_dirver"], [], str(roles / "falco")) == ["falco_dirver"]


def test_a_role_path_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(AnsibleFilterError, match="cannot list the roles next to"):
        unknown_role_vars(["x_y"], [], str(tmp_path / "missing" / "x"))


def test_the_filter_is_registered():
    assert FilterModule().filters()["unknown_role_vars"] is unknown_role_vars
