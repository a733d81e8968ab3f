"""The files module run for real by ansible-playbook on this machine, against a temporary directory."""

import grp
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from localplay import ansible_playbook  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                                reason="ansible-playbook not on PATH (activate the venv: . scripts/lib.sh; activate_venv)")

GROUP = grp.getgrgid(os.getegid()).gr_name


def write(tmp_path, files, *args):
    play = [{"hosts": "localhost", "gather_facts": False,
             "tasks": [{"fleetwatch.falco_stack.files": {"files": files}}]}]
    return ansible_playbook(tmp_path, play, {}, *args)


@pytest.fixture
def target(tmp_path):
    directory = tmp_path / "etc"
    directory.mkdir()
    return directory


def spec(directory, name, content, mode="0640", **extra):
    return dict({"path": str(directory / name), "content": content, "owner": "root", "group": GROUP, "mode": mode},
                **extra)


def leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".fleetwatch-")]


def test_files_are_written_with_their_mode_then_left_alone(tmp_path, target):
    files = [spec(target, "a.yml", "a: 1\n"), spec(target, "b.yml", "b: 2\n", mode="0644")]
    rc, output, recap = write(tmp_path, files)
    assert rc == 0 and recap["changed"] == 1, output
    assert (target / "a.yml").read_text() == "a: 1\n" and (target / "b.yml").read_text() == "b: 2\n"
    assert (target / "a.yml").stat().st_mode & 0o777 == 0o640
    assert (target / "b.yml").stat().st_mode & 0o777 == 0o644
    rc, output, recap = write(tmp_path, files)
    assert rc == 0 and recap["changed"] == 0, output


def test_a_mode_change_alone_is_a_change(tmp_path, target):
    (target / "a.yml").write_text("a: 1\n")
    os.chmod(target / "a.yml", 0o600)
    rc, output, recap = write(tmp_path, [spec(target, "a.yml", "a: 1\n")])
    assert rc == 0 and recap["changed"] == 1, output
    assert (target / "a.yml").stat().st_mode & 0o777 == 0o640


def test_check_mode_reports_and_shows_the_change_but_writes_nothing(tmp_path, target):
    (target / "a.yml").write_text("a: 1\n")
    os.chmod(target / "a.yml", 0o640)
    files = [spec(target, "a.yml", "a: 2\n"), spec(target, "new.yml", "fresh: true\n")]
    rc, output, recap = write(tmp_path, files, "--check", "--diff")
    assert rc == 0 and recap["changed"] == 1, output
    assert "-a: 1" in output and "+a: 2" in output and "+fresh: true" in output
    assert (target / "a.yml").read_text() == "a: 1\n"
    assert not (target / "new.yml").exists()


def test_a_refused_file_leaves_every_file_as_it_was(tmp_path, target):
    (target / "a.yml").write_text("a: 1\n")
    files = [spec(target, "a.yml", "a: 2 valid\n", validate="grep -q valid %s"),
             spec(target, "b.yml", "b: refused\n", validate="grep -q valid %s")]
    rc, output, recap = write(tmp_path, files)
    assert rc != 0 and "failed to validate" in output, output
    assert (target / "a.yml").read_text() == "a: 1\n"
    assert not (target / "b.yml").exists()
    assert leftovers(target) == []
    files[1]["content"] = "b: valid\n"
    rc, output, recap = write(tmp_path, files)
    assert rc == 0 and recap["changed"] == 1, output
    assert (target / "a.yml").read_text() == "a: 2 valid\n" and (target / "b.yml").read_text() == "b: valid\n"
    assert leftovers(target) == []


def test_a_missing_directory_is_an_error(tmp_path, target):
    rc, output, _recap = write(tmp_path, [spec(target / "absent", "a.yml", "a: 1\n")])
    assert rc != 0 and "does not exist" in output
