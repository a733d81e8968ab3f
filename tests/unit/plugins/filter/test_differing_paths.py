import hashlib

import pytest

from ansible_collections.fleetwatch.falco_stack.plugins.filter.differing_paths import FilterModule, differing_paths

CONTENT = "tls_server_config:\n  cert_file: /etc/node_exporter/tls.crt\n"


def reported_file(content=CONTENT, mode="640", user="root", group="prometheus", gid="998", kind="regular file"):
    return {"type": kind, "mode": mode, "user": user, "group": group, "gid": gid,
            "sha1": hashlib.sha1(content.encode()).hexdigest()}


WANTED_FILE = {"path": "/etc/node_exporter/web-config.yml", "content": CONTENT, "mode": "640", "group": "prometheus"}
WANTED_DIR = {"path": "/etc/node_exporter", "present": True, "mode": "750", "group": "65534"}


def test_a_file_that_matches_in_every_respect_is_left_alone():
    assert differing_paths([WANTED_FILE], {WANTED_FILE["path"]: reported_file()}) == []


@pytest.mark.parametrize("reported", [
    None,
    reported_file(content="tls_server_config: {}\n"),
    reported_file(mode="644"),
    reported_file(user="nobody"),
    reported_file(group="root", gid="0"),
    reported_file(kind="directory"),
])
def test_a_file_differs_when_missing_or_any_attribute_differs(reported):
    state = {} if reported is None else {WANTED_FILE["path"]: reported}
    assert differing_paths([WANTED_FILE], state) == [WANTED_FILE]


def test_a_group_given_by_number_matches_the_reported_gid():
    wanted = dict(WANTED_FILE, group="65534")
    assert differing_paths([wanted], {wanted["path"]: reported_file(group="nogroup", gid="65534")}) == []


def test_a_directory_is_compared_without_content():
    reported = {"type": "directory", "mode": "750", "user": "root", "group": "nogroup", "gid": "65534"}
    assert differing_paths([WANTED_DIR], {WANTED_DIR["path"]: reported}) == []
    assert differing_paths([WANTED_DIR], {WANTED_DIR["path"]: dict(reported, mode="755")}) == [WANTED_DIR]
    assert differing_paths([WANTED_DIR], {WANTED_DIR["path"]: dict(reported, type="regular file")}) == [WANTED_DIR]


@pytest.mark.parametrize("present", [False, "False", "false"])
def test_an_unwanted_path_differs_only_while_it_exists(present):
    unwanted = dict(WANTED_DIR, present=present)
    assert differing_paths([unwanted], {}) == []
    assert differing_paths([unwanted], {unwanted["path"]: {"type": "directory"}}) == [unwanted]


def test_order_is_kept_and_only_differing_items_returned():
    other = dict(WANTED_FILE, path="/etc/node_exporter/tls.crt")
    state = {WANTED_FILE["path"]: reported_file()}
    assert differing_paths([other, WANTED_FILE, WANTED_DIR], state) == [other, WANTED_DIR]


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters()["differing_paths"] is differing_paths


def test_an_owner_given_by_number_matches_the_reported_uid():
    reported = {"type": "directory", "mode": "750", "user": "nobody", "uid": "65534", "group": "nogroup", "gid": "65534"}
    wanted = dict(WANTED_DIR, owner=65534)
    assert differing_paths([wanted], {wanted["path"]: reported}) == []
    assert differing_paths([wanted], {wanted["path"]: dict(reported, user="prometheus", uid="998")}) == [wanted]
    # A name still has to match the name: a uid is no wildcard for it.
    named = dict(WANTED_DIR, owner="prometheus")
    assert differing_paths([named], {named["path"]: reported}) == [named]
