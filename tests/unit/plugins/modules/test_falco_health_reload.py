"""The falco_health module after a change Falco reloads by itself (changed_files), against a stand-in systemctl and
journalctl: Falco's reload line after the change counts, an older one does not, a refusal fails, silence restarts,
and awaiting a reload needs journalctl. A Falco that does not run fails with the unit's last log lines, or with none
where journalctl is missing or fails."""

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

# systemctl show/restart and journalctl -u UNIT [--since @N] [-n N] -o json|cat, over one JSON state file. A journal
# entry whose time is still in the future is not shown yet: Falco logs its reload a moment after the change.
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
        print("LoadState=loaded\\nActiveState=%s\\nSubState=%s\\nNRestarts=0\\nMainPID=%d\\n"
              "ExecMainStartTimestampMonotonic=%d" % (state.get("active", "active"), state.get("sub", "running"),
                                                      state["pid"], state["started"] * 1e6))
    elif "journal_error" in state:
        sys.exit(state["journal_error"])
    else:
        since = int(args[args.index("--since") + 1].lstrip("@")) if "--since" in args else 0
        shown = [entry for entry in state["journal"] if since <= entry[0] <= time.time()]
        if "-n" in args:
            shown = shown[max(len(shown) - int(args[args.index("-n") + 1]), 0):]
        for logged, message in shown:
            if args[args.index("-o") + 1] == "json":
                print(json.dumps({{"MESSAGE": message, "__REALTIME_TIMESTAMP": str(int(logged * 1e6))}}))
            else:
                print(message)
    with open(path, "w") as handle:
        json.dump(state, handle)
    ''')


def stand_in(tmp_path, monkeypatch, journal, programs=("systemctl", "journalctl"), **unit):
    """The stand-in programs first on PATH (only they, where ``programs`` leaves out journalctl, which is not among
    the sbin directories Ansible also searches); ``unit`` sets active, sub or journal_error in their state."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in programs:
        program = bin_dir / name
        program.write_text(FAKE.format(python=sys.executable))
        program.chmod(0o755)
    state = tmp_path / "unit.json"
    state.write_text(json.dumps(dict({"pid": 664, "started": time.monotonic() - 3600, "restarts": 0,
                                      "journal": journal}, **unit)))
    if "journalctl" in programs:
        monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    else:
        monkeypatch.setenv("PATH", str(bin_dir))
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


def test_a_falco_that_exited_fails_with_the_units_last_log_lines(tmp_path, monkeypatch, capsys):
    log = ["Falco initialized", "Opening 'syscall' source with modern BPF probe", "failed to load BPF object"]
    stand_in(tmp_path, monkeypatch, [[time.time() - 3, line] for line in log], active="failed", sub="failed")
    result = run_module_main(falco_health.main, dict(unit=UNIT, settle=1, timeout=3, log_lines=2), capsys)
    assert result["failed"] is True
    assert result["log"] == log[1:]
    assert "its main process exited (ActiveState=failed" in result["msg"]
    assert "  failed to load BPF object" in result["msg"] and "Falco initialized" not in result["msg"]


def test_without_journalctl_a_falco_that_exited_fails_with_no_log_lines(tmp_path, monkeypatch, capsys):
    stand_in(tmp_path, monkeypatch, [], programs=("systemctl",), active="failed", sub="failed")
    result = run_module_main(falco_health.main, dict(unit=UNIT, settle=1, timeout=3), capsys)
    assert result["failed"] is True and result["log"] == []
    assert "its main process exited (ActiveState=failed" in result["msg"]
    assert "journalctl is missing or could not read the journal" in result["msg"]
    assert "the journal holds no lines" not in result["msg"]


def test_a_journalctl_that_fails_leaves_the_failure_message_without_log_lines(tmp_path, monkeypatch, capsys):
    stand_in(tmp_path, monkeypatch, [], active="failed", sub="failed", journal_error="No journal files were found.")
    result = run_module_main(falco_health.main, dict(unit=UNIT, settle=1, timeout=3), capsys)
    assert result["failed"] is True and result["log"] == []
    assert "its main process exited (ActiveState=failed" in result["msg"]
    assert "journalctl is missing or could not read the journal" in result["msg"]


def test_an_empty_journal_says_so_in_the_failure_message(tmp_path, monkeypatch, capsys):
    stand_in(tmp_path, monkeypatch, [], active="failed", sub="failed")
    result = run_module_main(falco_health.main, dict(unit=UNIT, settle=1, timeout=3), capsys)
    assert result["failed"] is True and result["log"] == []
    assert "the journal holds no lines of this unit" in result["msg"]


def test_awaiting_the_reload_without_journalctl_fails_and_restarts_nothing(tmp_path, monkeypatch, capsys):
    path = changed_file(tmp_path)
    state = stand_in(tmp_path, monkeypatch, [], programs=("systemctl",))
    result = run(capsys, path)
    assert result["failed"] is True and "journalctl" in result["msg"]
    assert json.loads(state.read_text())["restarts"] == 0


def test_a_journalctl_that_fails_while_the_reload_is_awaited_fails_with_its_message(tmp_path, monkeypatch, capsys):
    path = changed_file(tmp_path)
    state = stand_in(tmp_path, monkeypatch, [], journal_error="No journal files were found.")
    result = run(capsys, path)
    assert result["failed"] is True
    assert result["msg"] == "journalctl -u %s failed: No journal files were found." % UNIT
    assert json.loads(state.read_text())["restarts"] == 0
