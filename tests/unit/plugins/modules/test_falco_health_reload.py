"""The falco_health module after a change Falco reloads by itself (changed_files), against a stand-in systemctl and
journalctl: Falco's reload line after the change counts, an older one does not, a refusal fails, silence restarts."""

import json
import os
import sys
import textwrap
import time
from pathlib import Path

from ansible_collections.fleetwatch.falco_stack.plugins.modules import falco_health

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from module_runner import run_module_main  # noqa: E402

UNIT = "falco-modern-bpf.service"
RELOAD = "Sat Dec  5 22:50:48 2026: SIGHUP received, restarting..."
REFUSED = '{"output": "Falco internal: hot restart failure: LOAD_ERR_VALIDATE ...", "priority": "Critical"}'

# systemctl show/restart and journalctl -u UNIT --since @N -o json, over one JSON state file. A journal entry whose
# time is still in the future is not shown yet: Falco logs its reload a moment after the change.
FAKE = textwrap.dedent('''\
    #!{python}
    import json, os, sys, time
    path = os.environ["FAKE_UNIT_STATE"]
    with open(path) as handle:
        state = json.load(handle)
    name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
    if name == "systemctl" and args[0] == "restart":
        state.update(pid=state["pid"] + 1, started=time.monotonic(), restarts=state["restarts"] + 1)
    elif name == "systemctl":
        print("LoadState=loaded\\nActiveState=active\\nSubState=running\\nNRestarts=0\\nMainPID=%d\\n"
              "ExecMainStartTimestampMonotonic=%d" % (state["pid"], state["started"] * 1e6))
    else:
        since = int(args[args.index("--since") + 1].lstrip("@"))
        for logged, message in state["journal"]:
            if since <= logged <= time.time():
                print(json.dumps({{"MESSAGE": message, "__REALTIME_TIMESTAMP": str(int(logged * 1e6))}}))
    with open(path, "w") as handle:
        json.dump(state, handle)
    ''')


def stand_in(tmp_path, monkeypatch, journal):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("systemctl", "journalctl"):
        program = bin_dir / name
        program.write_text(FAKE.format(python=sys.executable))
        program.chmod(0o755)
    state = tmp_path / "unit.json"
    state.write_text(json.dumps({"pid": 664, "started": time.monotonic() - 3600, "restarts": 0, "journal": journal}))
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_UNIT_STATE", str(state))
    return state


def changed_file(tmp_path):
    """A rules file the run just replaced (its modification time is now)."""
    path = tmp_path / "fleetwatch-500-local.yaml"
    path.write_text("- list: x\n  items: []\n")
    return path


def run(capsys, path, **args):
    return run_module_main(falco_health.main, dict(dict(unit=UNIT, driver="nodriver", settle=1, timeout=3,
                                                        changed_files=[str(path)]), **args), capsys)


def test_falcos_own_reload_after_the_change_is_awaited_and_nothing_is_restarted(tmp_path, monkeypatch, capsys):
    path = changed_file(tmp_path)
    state = stand_in(tmp_path, monkeypatch, [[time.time() + 1.5, RELOAD]])
    started = time.monotonic()
    result = run(capsys, path)
    assert (result["changed"], result["reload"]) == (False, "reloaded"), result
    # It waited for the line (logged 1.5 s after the change), then watched the process for settle seconds.
    assert time.monotonic() - started >= 2.5
    assert json.loads(state.read_text())["restarts"] == 0


def test_a_reload_logged_before_the_change_does_not_count_and_silence_restarts_the_unit(
        tmp_path, monkeypatch, capsys):
    path = changed_file(tmp_path)
    os.utime(path, (time.time(), time.time()))
    state = stand_in(tmp_path, monkeypatch, [[time.time() - 0.5, RELOAD]])
    result = run(capsys, path)
    assert (result["changed"], result["reload"]) == (True, "restarted"), result
    assert "did not reload its changed files by itself within 3 s" in json.dumps(result["warnings"])
    after = json.loads(state.read_text())
    assert after["restarts"] == 1 and result["state"]["MainPID"] == "665"


def test_falco_refusing_the_changed_files_fails_with_its_message_and_is_not_restarted(tmp_path, monkeypatch, capsys):
    path = changed_file(tmp_path)
    state = stand_in(tmp_path, monkeypatch, [[time.time() + 0.5, REFUSED]])
    result = run(capsys, path)
    assert result["failed"] is True
    assert "refused them; it keeps running on the files it had loaded" in result["msg"]
    assert "LOAD_ERR_VALIDATE" in result["msg"]
    assert json.loads(state.read_text())["restarts"] == 0


def test_a_removed_file_counts_from_its_directorys_change(tmp_path, monkeypatch, capsys):
    gone = tmp_path / "fleetwatch-600-exceptions.yaml"
    stand_in(tmp_path, monkeypatch, [[time.time() + 0.5, RELOAD]])
    os.utime(tmp_path, (time.time(), time.time()))
    result = run(capsys, gone)
    assert (result["changed"], result["reload"]) == (False, "reloaded"), result


def test_without_changed_files_nothing_is_awaited(tmp_path, monkeypatch, capsys):
    state = stand_in(tmp_path, monkeypatch, [])
    result = run_module_main(falco_health.main, dict(unit=UNIT, driver="nodriver", settle=1, timeout=3), capsys)
    assert (result["changed"], result["reload"]) == (False, "none"), result
    assert json.loads(state.read_text())["restarts"] == 0


def test_in_check_mode_changed_files_are_ignored_and_nothing_is_restarted(tmp_path, monkeypatch, capsys):
    path = changed_file(tmp_path)
    state = stand_in(tmp_path, monkeypatch, [])
    result = run(capsys, path, _ansible_check_mode=True)
    assert (result["changed"], result["reload"]) == (False, "none"), result
    assert json.loads(state.read_text())["restarts"] == 0
