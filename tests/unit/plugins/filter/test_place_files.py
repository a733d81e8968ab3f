import hashlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwatch.falco_stack.plugins.filter.differing_paths import differing_paths
from ansible_collections.fleetwatch.falco_stack.plugins.filter.place_files import FilterModule, place_files


def test_files_from_the_controller_go_under_the_directory_in_the_dicts_order():
    files = {"config.d/fleetwatch-outputs.yaml": "json_output: true\n", "rules.d/fleetwatch-500-local.yaml": "- list: x\n",
             "falco.yaml": "a: 1\n"}
    placed = place_files(files, "/var/lib/fleetwatch/falco/staging/")
    assert placed == [
        {"path": "/var/lib/fleetwatch/falco/staging/config.d/fleetwatch-outputs.yaml", "content": "json_output: true\n",
         "owner": "root", "group": "root", "mode": "0644"},
        {"path": "/var/lib/fleetwatch/falco/staging/rules.d/fleetwatch-500-local.yaml", "content": "- list: x\n",
         "owner": "root", "group": "root", "mode": "0644"},
        {"path": "/var/lib/fleetwatch/falco/staging/falco.yaml", "content": "a: 1\n",
         "owner": "root", "group": "root", "mode": "0644"}]
    # The key order is part of the result: the falco role hashes the staged list as JSON for its validation stamp.
    assert [list(item) for item in placed] == [["path", "content", "owner", "group", "mode"]] * 3


def test_names_with_src_dir_are_copied_on_the_host_from_the_same_name_there():
    placed = place_files(["rules.d/fleetwatch-101-remote.yaml"], "/etc/falco", src_dir="/var/lib/x/staging")
    assert placed == [{"path": "/etc/falco/rules.d/fleetwatch-101-remote.yaml",
                       "src": "/var/lib/x/staging/rules.d/fleetwatch-101-remote.yaml",
                       "owner": "root", "group": "root", "mode": "0644"}]
    assert place_files([], "/etc/falco", src_dir="/s") == []


def test_owner_group_mode_suffix_and_validate_apply_to_every_file():
    placed = place_files({"node-exporter": "[]\n", "falco": "[]\n"}, "/etc/prometheus/targets", group=65534,
                         mode="0640", suffix=".json", validate="promtool check %s")
    assert [item["path"] for item in placed] == ["/etc/prometheus/targets/node-exporter.json",
                                                 "/etc/prometheus/targets/falco.json"]
    # A numeric group comes out as text, as the inspection reports gid (differing_paths compares text).
    assert {(item["owner"], item["group"], item["mode"], item["validate"]) for item in placed} == {
        ("root", "65534", "0640", "promtool check %s")}
    assert "validate" not in place_files({"a": ""}, "/d")[0]


def test_placed_files_are_what_differing_paths_compares():
    placed = place_files({"a.yaml": "a: 1\n", "b.yaml": "b: 1\n"}, "/etc/x", group=65534)
    same = {"type": "regular file", "mode": "644", "user": "root", "uid": "0", "group": "nogroup", "gid": "65534",
            "sha1": hashlib.sha1(b"a: 1\n").hexdigest()}
    assert differing_paths(placed, {"/etc/x/a.yaml": same, "/etc/x/b.yaml": same}) == [placed[1]]


@pytest.mark.parametrize("files, kwargs, needle", [
    (["a"], {}, "must be a dict of name to content"),
    ({"a": ""}, {"src_dir": "/s"}, "with src_dir the input must be a list of names"),
    ({"/etc/passwd": ""}, {}, "is not a name relative to the directory"),
    ({"rules.d/../../x": ""}, {}, "is not a name relative to the directory"),
    ({"": ""}, {}, "is not a name relative to the directory"),
    ({"a": ""}, {"directory": ""}, "directory must be set"),
])
def test_wrong_input_is_refused(files, kwargs, needle):
    kwargs.setdefault("directory", "/etc/x")
    with pytest.raises(AnsibleFilterError, match=needle):
        place_files(files, **kwargs)


def test_the_filter_is_registered():
    assert FilterModule().filters() == {"place_files": place_files}
