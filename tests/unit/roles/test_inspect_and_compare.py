"""The roles' one-shot inspection (module host_inspect, called as the roles call it from a play) run for real on this
machine against a temporary directory, and its report read by the differing_paths filter the way the roles read it."""

import grp
import hashlib
import json
import os
import pwd
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from localplay import ansible_playbook  # noqa: E402

from ansible_collections.fleetwatch.falco_stack.plugins.filter.differing_paths import differing_paths  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                                reason="ansible-playbook not on PATH (activate the venv: . scripts/lib.sh; activate_venv)")


def inspect(tmp_path, paths, list_dirs, extra=None, unloaded=None):
    out = tmp_path / "inspection.json"
    args = dict({"paths": paths, "list_dirs": list_dirs}, **(extra or {}))
    if unloaded is not None:
        args["unloaded"] = unloaded
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"fleetwatch.falco_stack.host_inspect": args, "register": "inspection"},
        {"ansible.builtin.copy": {"dest": str(out), "mode": "0600", "content": "{{ inspection | to_json }}"}}]}]
    rc, output, recap = ansible_playbook(tmp_path, play, {})
    assert rc == 0, output
    return json.loads(out.read_text()), recap


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "etc" / "prometheus"
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "falco-alerts.yml").write_text("groups: []\n")
    (root / "rules" / "retired.yml").write_text("groups: []\n")
    (root / "rules" / ".hidden.yml").write_text("groups: []\n")
    (root / "rules" / "subdir").mkdir()
    (root / "prometheus.yml").write_text("global: {}\n")
    os.chmod(root / "prometheus.yml", 0o640)
    return root


def test_the_report_lists_state_content_and_files(tmp_path, tree):
    missing = str(tree / "scrape-ca.crt")
    report, recap = inspect(tmp_path, [str(tree), str(tree / "prometheus.yml"), missing], [str(tree / "rules")],
                            {"executables": ["sh", "no-such-command"], "sockets": [str(tree)]})
    assert recap["changed"] == 1  # the test's own copy of the report; the inspection changes nothing
    assert report["executables"] == {"sh": shutil.which("sh"), "no-such-command": None}
    assert report["sockets"] == {str(tree): False}
    assert set(report["paths"]) == {str(tree), str(tree / "prometheus.yml")}
    config = report["paths"][str(tree / "prometheus.yml")]
    me, my_group = pwd.getpwuid(os.geteuid()), grp.getgrgid(os.getegid())
    assert config == {"type": "regular file", "mode": "640", "user": me.pw_name, "uid": str(me.pw_uid),
                      "group": my_group.gr_name, "gid": str(my_group.gr_gid),
                      "sha1": hashlib.sha1(b"global: {}\n").hexdigest()}
    assert report["paths"][str(tree)]["type"] == "directory"
    assert "sha1" not in report["paths"][str(tree)]
    # Regular files only (the subdirectory is left out), hidden ones included.
    assert sorted(report["listings"][str(tree / "rules")]) == sorted(
        str(tree / "rules" / name) for name in ("falco-alerts.yml", "retired.yml", ".hidden.yml"))


def test_the_filter_keeps_only_what_differs_from_the_report(tmp_path, tree):
    me, my_group = pwd.getpwuid(os.geteuid()), grp.getgrgid(os.getegid())
    same = {"path": str(tree / "prometheus.yml"), "content": "global: {}\n", "mode": "640", "owner": me.pw_name,
            "group": my_group.gr_name}
    new_content = dict(same, content="global: {scrape_interval: 5s}\n")
    new_mode = dict(same, mode="644")
    by_uid = dict(same, owner=me.pw_uid, group=my_group.gr_gid)
    missing = dict(same, path=str(tree / "rules" / "extra.yml"))
    report, _recap = inspect(tmp_path, [same["path"], missing["path"]], [])
    assert differing_paths([same, by_uid], report["paths"]) == []
    assert differing_paths([new_content, new_mode, missing], report["paths"]) == [new_content, new_mode, missing]


def test_an_empty_or_missing_directory_lists_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    report, _recap = inspect(tmp_path, [], [str(empty), str(tmp_path / "absent")])
    assert report["listings"] == {str(empty): [], str(tmp_path / "absent"): []}
    assert report["paths"] == {}


def test_unloaded_names_the_paths_holding_a_file_newer_than_the_stamp(tmp_path, tree):
    stamp, config, rules = tree / ".fleetwatch-loaded", tree / "prometheus.yml", tree / "rules"
    watched = {"stamp": str(stamp), "paths": [str(config), str(rules), str(tree / "scrape-ca.crt")]}
    # No stamp yet: every watched path that exists counts as never loaded.
    report, _recap = inspect(tmp_path, [], [], unloaded=watched)
    assert report["unloaded"] == [str(config), str(rules)]
    assert "unloaded" not in inspect(tmp_path, [], [])[0]

    stamp.write_text("")
    past = stamp.stat().st_mtime - 60
    for path in [config, *rules.rglob("*")]:
        os.utime(path, (past, past))
    assert inspect(tmp_path, [], [], unloaded=watched)[0]["unloaded"] == []

    # A rejected candidate written and removed, a new subdirectory: the directory's own time changes, no file it holds.
    (rules / ".fleetwatch-candidate.tmp").write_text("groups: [\n")
    (rules / "newdir").mkdir()
    assert inspect(tmp_path, [], [], unloaded=watched)[0]["unloaded"] == []

    (rules / "extra.yml").write_text("groups: []\n")
    config.write_text("global: {scrape_interval: 5s}\n")
    assert inspect(tmp_path, [], [], unloaded=watched)[0]["unloaded"] == [str(config), str(rules)]
