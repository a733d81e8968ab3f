"""TEST FIXTURE: a stand-in Falco host on this machine for playbooks/smoke.yml and the falco_smoke_probe module.

``install(bin_dir, config)`` puts small programs first on PATH: systemctl (one Falco unit active, FALCO_HOSTNAME in
its environment), falco (``--support`` and ``-L`` in Falco 0.44.1's JSON shapes), podman/docker (an engine that
answers or not, local images; ``run`` is recorded, nothing is started), cat, ln and touch (the smoke events' calls on
/etc/shadow and /bin are recorded instead of done; any other call goes to the real program), and journalctl, which
prints the JSON alert Falco would have written for each recorded call, plus a banner line and an alert for another
host's marker. Nothing here is real Falco: the real one is checked in the lab (docs/architecture.md, "Smoke test").

config keys: unit, hostname, alert_hostname (default hostname), rules ({name: enabled}), selection (the
configuration's rules: list), syslog (bool), engine ("podman", "docker" or ""), images, privileged_rule.
"""

import json
import os
import sys
from pathlib import Path

SCRIPT = r'''#!%(python)s
import json, os, sys
CONFIG = json.load(open(%(config)r))
LOG = %(log)r
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]


def record():
    with open(LOG, "a") as handle:
        handle.write(json.dumps([name] + args) + "\n")


def real():
    for directory in ("/usr/bin", "/bin"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            os.execv(path, [path] + args)
    sys.exit(127)


if name == "systemctl":
    unit = CONFIG.get("unit") or ""
    if args[:2] == ["is-active", "--quiet"]:
        sys.exit(0 if unit and args[2] == unit else 3)
    if args[:1] == ["show"] and args[1] == unit:
        if "MainPID" in args:
            print("0")
        elif "Environment" in args:
            print("LANG=C FALCO_HOSTNAME=%%s" %% CONFIG["hostname"])
        sys.exit(0)
    sys.exit(1)

if name == "falco":
    if args == ["--support"]:
        config = {"json_output": "true", "syslog_output": {"enabled": str(CONFIG.get("syslog", True)).lower()},
                  "file_output": {"enabled": "false", "keep_alive": "false", "filename": "./events.txt"},
                  "rules": CONFIG.get("selection", [])}
        print(json.dumps({"version": "0.44.1", "config": json.dumps(config), "cmdline": "falco --support"}))
        sys.exit(0)
    if args[:1] == ["-L"]:
        print(json.dumps({"lists": [], "macros": [], "rules": [
            {"details": {}, "info": {"name": rule, "enabled": enabled, "tags": ["fixture"], "source": "syscall"}}
            for rule, enabled in CONFIG.get("rules", {}).items()]}))
        sys.exit(0)
    sys.exit(1)

if name in ("podman", "docker"):
    if CONFIG.get("engine") != name:
        sys.exit(125)
    images = CONFIG.get("images", [])
    if args[:1] == ["info"]:
        sys.exit(0)
    if args[:1] == ["images"]:
        print("\n".join(images))
        sys.exit(0)
    if args[:2] == ["image", "inspect"]:
        sys.exit(0 if args[2] in images else 125)
    if args[:1] == ["run"]:
        record()
        sys.exit(0)
    sys.exit(125)

if name in ("cat", "ln"):
    if "/etc/shadow" in args:
        record()
        sys.exit(0)
    real()

if name == "touch":
    if any(arg.startswith("/bin/") for arg in args):
        record()
        sys.exit(0)
    real()

if name == "journalctl":
    hostname = CONFIG.get("alert_hostname") or CONFIG["hostname"]
    print("Falco version: 0.44.1 (x86_64)")
    calls = [json.loads(line) for line in open(LOG)] if os.path.exists(LOG) else []
    for call in calls:
        program, rest = call[0], call[1:]
        if program == "cat":
            rules, cmdline = ["Read sensitive file untrusted"], " ".join(call)
        elif program == "ln":
            rules, cmdline = ["Create Symlink Over Sensitive Files"], " ".join(call)
        elif program == "touch":
            rules, cmdline = ["Write below binary dir"], " ".join(call)
        else:
            cmdline = "sh " + " ".join(rest[rest.index("-c"):])
            if "--privileged" in rest:
                rules = [CONFIG.get("privileged_rule", "Launch Privileged Container")]
            elif "--volume" in rest:
                rules = ["Launch Sensitive Mount Container"]
            else:
                rules = ["Terminal shell in container"]
        for rule in rules:
            for who, text in ((hostname, cmdline), (hostname, cmdline.replace("fwsmoke-", "fwsmoke-other-"))):
                print(json.dumps({"hostname": who, "output": "Fixture %%s | command=%%s" %% (rule, text),
                                  "output_fields": {"container.id": "host", "proc.cmdline": text},
                                  "priority": "Warning", "rule": rule, "source": "syscall", "tags": ["fixture"],
                                  "time": "2026-12-01T12:00:00.000000000Z"}))
    sys.exit(0)
sys.exit(2)
'''

PROGRAMS = ("systemctl", "falco", "podman", "docker", "cat", "ln", "touch", "journalctl")


def install(directory, config):
    """Write the stand-in programs and their configuration under directory; returns the bin directory to put first
    on PATH. Recorded calls go to directory/calls.jsonl."""
    directory = Path(directory)
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    config_file = directory / "fake-host.json"
    config_file.write_text(json.dumps(config))
    script = SCRIPT % {"python": sys.executable, "config": str(config_file), "log": str(directory / "calls.jsonl")}
    for name in PROGRAMS:
        path = bin_dir / name
        path.write_text(script)
        path.chmod(0o755)
    return bin_dir


def calls(directory):
    """The recorded calls, each an argv list."""
    log = Path(directory) / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def environment(bin_dir):
    return {"PATH": "%s:%s" % (bin_dir, os.environ["PATH"])}
