"""The falco_smoke_probe module end to end, on a stand-in Falco host (tests/unit/fake_falco_host.py)."""

import sys
from pathlib import Path

from ansible_collections.fleetwatch.falco_stack.plugins.modules import falco_smoke_probe

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from module_runner import run_module_main  # noqa: E402
import fake_falco_host  # noqa: E402


HOST = {"unit": "falco-modern-bpf.service", "hostname": "agent-7.example",
        "rules": {"Read sensitive file untrusted": True, "Write below binary dir": False,
                  "Create Symlink Over Sensitive Files": True},
        "selection": [{"disable": {"rule": "Create Symlink*"}}, {"enable": {"rule": "Write below binary dir"}}],
        "engine": "podman", "images": ["localhost/first:1", "localhost/second:2"]}


def run_module(tmp_path, monkeypatch, capsys, config, **args):
    bin_dir = fake_falco_host.install(tmp_path, config)
    monkeypatch.setenv("PATH", fake_falco_host.environment(bin_dir)["PATH"])
    return run_module_main(falco_smoke_probe.main, args, capsys)


def test_a_running_falco_is_described_with_its_rules_as_selected_and_its_outputs(tmp_path, monkeypatch, capsys):
    result = run_module(tmp_path, monkeypatch, capsys, HOST, _ansible_check_mode=True)
    assert result["changed"] is False
    assert (result["unit"], result["hostname"], result["version"]) == (
        "falco-modern-bpf.service", "agent-7.example", "0.44.1")
    assert result["rules"] == {"Read sensitive file untrusted": True, "Write below binary dir": True,
                               "Create Symlink Over Sensitive Files": False}
    assert result["rules_source"] == "falco -L"
    assert result["outputs"] == {"json": True, "journal": True, "file": ""}
    assert (result["engine"], result["image"], result["image_problem"]) == ("podman", "localhost/first:1", "")
    assert fake_falco_host.calls(tmp_path) == [], "nothing was started"


def test_a_chosen_image_is_used_when_present_and_named_when_absent(tmp_path, monkeypatch, capsys):
    present = run_module(tmp_path, monkeypatch, capsys, HOST, image="localhost/second:2")
    assert present["image"] == "localhost/second:2"
    absent = run_module(tmp_path, monkeypatch, capsys, HOST, image="busybox:1")
    assert (absent["engine"], absent["image"]) == ("podman", "")
    assert absent["image_problem"] == "image busybox:1 is not on the host (nothing is pulled)"


def test_docker_is_tried_after_podman_and_no_engine_leaves_it_empty(tmp_path, monkeypatch, capsys):
    docker = run_module(tmp_path, monkeypatch, capsys, dict(HOST, engine="docker", images=[]))
    assert (docker["engine"], docker["image"], docker["image_problem"]) == (
        "docker", "", "no local image (set fleetwatch_smoke_image)")
    none = run_module(tmp_path, monkeypatch, capsys, dict(HOST, engine=""))
    assert (none["engine"], none["image"]) == ("", "")


def test_without_an_active_unit_nothing_else_is_asked(tmp_path, monkeypatch, capsys):
    result = run_module(tmp_path, monkeypatch, capsys, dict(HOST, unit=""))
    assert (result["unit"], result["rules"], result["engine"]) == ("", {}, "")
    assert result["outputs"] == {"json": False, "journal": False, "file": ""}
