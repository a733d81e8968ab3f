"""The files module run for real by ansible-playbook on this machine, against a temporary directory."""

import grp
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from localplay import ansible_playbook, results, run_json  # noqa: E402

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


def run(tmp_path, args, *flags):
    """The module's task result (JSON callback) for args, as ansible-playbook on localhost returned it."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{"fleetwatch.falco_stack.files": args}]}]
    _rc, report, _output = run_json(tmp_path, play, {}, *flags)
    result, = results(report, "fleetwatch.falco_stack.files")
    return result


def mode_of(path):
    return path.stat().st_mode & 0o777


def test_directories_are_created_then_fixed_then_left_alone(tmp_path, target):
    wanted = {"directories": [{"path": str(target / "new" / "sub"), "owner": "root", "group": GROUP, "mode": "0750"},
                              {"path": str(target), "mode": "0711"}]}
    result = run(tmp_path, wanted)
    assert result["changed"] and result["directories"] == [str(target / "new" / "sub"), str(target)], result
    assert mode_of(target / "new" / "sub") == 0o750 and mode_of(target) == 0o711
    os.chmod(target / "new" / "sub", 0o755)
    result = run(tmp_path, wanted)
    assert result["changed"] and result["directories"] == [str(target / "new" / "sub")], result
    assert mode_of(target / "new" / "sub") == 0o750
    result = run(tmp_path, wanted)
    assert not result["changed"] and result["directories"] == [], result


def test_a_path_in_the_way_of_a_directory_is_an_error(tmp_path, target):
    (target / "file").write_text("x")
    result = run(tmp_path, {"directories": [{"path": str(target / "file")}]})
    assert result.get("failed") and "is not a directory" in result["msg"], result


def test_check_mode_names_a_new_directory_and_the_file_in_it_and_creates_neither(tmp_path, target):
    wanted = {"directories": [{"path": str(target / "new"), "mode": "0755"}],
              "files": [spec(target / "new", "a.yml", "a: 1\n")]}
    result = run(tmp_path, wanted, "--check", "--diff")
    assert result["changed"] and result["directories"] == [str(target / "new")], result
    assert result["written"] == [str(target / "new" / "a.yml")], result
    assert {"path": str(target / "new"), "state": "directory"} in [d["after"] for d in result["diff"]], result["diff"]
    assert not (target / "new").exists()
    result = run(tmp_path, wanted)
    assert result["changed"] and (target / "new" / "a.yml").read_text() == "a: 1\n", result


def test_absent_paths_are_removed_then_nothing_to_do(tmp_path, target):
    (target / "old.yml").write_text("old\n")
    (target / "old.d").mkdir()
    (target / "old.d" / "inner").write_text("inner\n")
    (target / "keep.yml").write_text("keep\n")
    wanted = {"absent": [str(target / "old.yml"), str(target / "old.d"), str(target / "never-there")]}
    result = run(tmp_path, wanted, "--check", "--diff")
    assert result["changed"] and result["removed"] == [str(target / "old.yml"), str(target / "old.d")], result
    assert (target / "old.yml").exists() and (target / "old.d" / "inner").exists()
    result = run(tmp_path, wanted)
    assert result["changed"] and sorted(p.name for p in target.iterdir()) == ["keep.yml"], result
    result = run(tmp_path, wanted)
    assert not result["changed"] and result["removed"] == [], result


def test_a_refused_file_removes_nothing(tmp_path, target):
    (target / "old.yml").write_text("old\n")
    result = run(tmp_path, {"files": [spec(target, "a.yml", "refused\n", validate="grep -q valid %s")],
                            "absent": [str(target / "old.yml")]})
    assert result.get("failed") and "failed to validate" in result["msg"], result
    assert (target / "old.yml").exists() and not (target / "a.yml").exists()


def test_a_file_from_a_host_source_is_compared_by_checksum_and_copied(tmp_path, target):
    staged = target / "staged.yaml"
    staged.write_text("- rule: staged\n")
    wanted = {"files": [{"path": str(target / "live.yaml"), "src": str(staged), "mode": "0644",
                         "validate": "grep -q rule %s"}]}
    result = run(tmp_path, wanted, "--check", "--diff")
    assert result["changed"] and result["written"] == [str(target / "live.yaml")], result
    assert result["diff"][0]["after"] == "- rule: staged\n", result["diff"]
    assert not (target / "live.yaml").exists()
    result = run(tmp_path, wanted)
    assert result["changed"] and (target / "live.yaml").read_text() == "- rule: staged\n", result
    assert mode_of(target / "live.yaml") == 0o644 and staged.exists()
    result = run(tmp_path, wanted)
    assert not result["changed"] and result["written"] == [], result
    staged.write_text("- rule: changed\n")
    result = run(tmp_path, wanted, "--diff")
    assert result["written"] == [str(target / "live.yaml")], result
    assert result["diff"][0]["before"] == "- rule: staged\n" and result["diff"][0]["after"] == "- rule: changed\n"
    assert (target / "live.yaml").read_text() == "- rule: changed\n"


def test_a_missing_host_source_is_a_change_in_check_mode_and_an_error_otherwise(tmp_path, target):
    wanted = {"files": [{"path": str(target / "live.yaml"), "src": str(target / "not-staged.yaml")}]}
    result = run(tmp_path, wanted, "--check", "--diff")
    assert result["changed"] and result["written"] == [str(target / "live.yaml")], result
    result = run(tmp_path, wanted)
    assert result.get("failed") and "not-staged.yaml" in result["msg"] and "not a file" in result["msg"], result
    assert not (target / "live.yaml").exists()


@pytest.mark.parametrize("source", [{}, {"content": "a\n", "src": "/etc/hostname"}])
def test_a_file_needs_exactly_one_of_content_and_src(tmp_path, target, source):
    result = run(tmp_path, {"files": [dict({"path": str(target / "a.yml")}, **source)]})
    assert result.get("failed") and "content" in result["msg"] and "src" in result["msg"], result


def test_a_large_content_is_named_by_its_size_in_the_diff(tmp_path, target):
    content = "x" * 200000 + "\n"
    result = run(tmp_path, {"files": [spec(target, "big.yml", content)]}, "--check", "--diff")
    assert result["diff"][0]["after"] == "(200001 bytes, larger than 104448: not shown)\n", result["diff"][0]
