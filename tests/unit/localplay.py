"""Run a play on localhost against the live collection, as the role tests of tests/unit do."""

import grp
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# The role tests run ansible-playbook from the venv.
NEEDS_ANSIBLE_PLAYBOOK = pytest.mark.skipif(
    shutil.which("ansible-playbook") is None,
    reason="ansible-playbook not on PATH (activate the venv: . scripts/lib.sh; activate_venv)")
RECAP = re.compile(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def group_exists(name):
    """Whether this machine has the group (a distribution package's system group, for files the roles chgrp)."""
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def run_playbook(tmp_path, *args, env=None, timeout=600):
    """Run ansible-playbook with ``args`` against the live collection (linked under tmp_path); returns the process."""
    collections = tmp_path / "collections"
    link = collections / "ansible_collections" / "fleetwatch" / "falco_stack"
    if not link.exists():
        link.parent.mkdir(parents=True)
        link.symlink_to(REPO)
    run_env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="0", **(env or {}))
    return subprocess.run(["ansible-playbook", *args], capture_output=True, text=True, env=run_env, timeout=timeout,
                          check=False)


def ansible_playbook(tmp_path, play, extra_vars, *args, env=None):
    """Run a play on localhost with the live collection; returns (rc, output, {ok, changed, failed})."""
    playbook = tmp_path / ("play-%s.yml" % uuid.uuid4().hex[:8])
    playbook.write_text(yaml.safe_dump(play))
    variables = tmp_path / ("vars-%s.json" % uuid.uuid4().hex[:8])
    variables.write_text(json.dumps(dict({"ansible_python_interpreter": sys.executable}, **extra_vars)))
    proc = run_playbook(tmp_path, "-i", "localhost,", "-c", "local", str(playbook), "-e", "@%s" % variables, *args,
                        env=env)
    output = proc.stdout + proc.stderr
    match = RECAP.search(output)
    recap = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups()))) if match else {}
    return proc.returncode, output, recap


def run_json(tmp_path, play, extra_vars, *args):
    """Run a play on localhost with the JSON callback; returns (rc, report, output). Tests read what the run did
    from the report (results by module, their changed/skipped/msg and returns, the recap in "stats"), not from the
    console, so renaming a task breaks none of them."""
    rc, output, _recap = ansible_playbook(tmp_path, play, extra_vars, *args,
                                          env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    # The report is indented JSON, from a line "{" to a line "}"; with -v and more, lines of the verbose display
    # (some with braces) come before it.
    lines = output.splitlines()
    starts = [i for i, text in enumerate(lines) if text == "{"]
    ends = [i for i, text in enumerate(lines) if text == "}"]
    report = None
    for start in starts:
        try:
            report = json.loads("\n".join(lines[start:ends[-1] + 1]))
            break
        except (ValueError, IndexError):
            continue
    if not isinstance(report, dict) or "plays" not in report:
        raise AssertionError("no JSON report:\n" + output[-3000:])
    return rc, report, output


def results(report, action=None):
    """localhost's results in a run's report, in order, each with its task-level keys (action, changed, skipped,
    failed, msg) and the module's returns; only those of one module with action."""
    return [task["hosts"]["localhost"] for play in report["plays"] for task in play["tasks"]
            if "localhost" in task["hosts"] and action in (None, task["hosts"]["localhost"].get("action"))]


def failures(tmp_path, play, extra_vars, *args):
    """Run a play on localhost with the JSON callback; returns (rc, [{task, action, args, msg}] for each failed task
    or loop item: its name, its module, the arguments the module reported (``invocation``) and its message).

    Tests read the refusals from here rather than from the console, where passing tasks' names show too.
    """
    rc, report, _output = run_json(tmp_path, play, extra_vars, *args)
    failed = []
    for play_report in report["plays"]:
        for task in play_report["tasks"]:
            for result in task["hosts"].values():
                if not result.get("failed") or result.get("ignore_errors"):
                    continue
                items = [item for item in result.get("results", []) if item.get("failed")]
                for source in items or [result]:
                    failed.append({"task": task["task"]["name"], "action": result.get("action"),
                                   "args": (source.get("invocation") or {}).get("module_args", {}),
                                   "msg": source.get("msg", "")})
    return rc, failed


def render_role_vars(tmp_path, role, names, extra_vars, inventory=None, host="localhost", templates=(), facts=None):
    """Load a role's defaults and vars/main.yml as its tasks see them; return {key: value}.

    ``names`` maps each returned key to a variable of the role. Role variables under test go in as extra vars,
    since include_vars outranks the inventory. ``facts`` (name: expression) are set with set_fact next, as the role's
    preflight sets them. Each of ``templates`` (a file in the role's templates/) is rendered with those variables by
    ansible.builtin.template, as the role writes it; its text is returned under its name.
    """
    role_dir = REPO / "roles" / role
    out = tmp_path / "out.json"
    listing = ", ".join("%s: %s" % (json.dumps(key), var) for key, var in names.items())
    # The distribution and platform first, as the roles' preflight learns them (this machine's: the Debian family).
    tasks = [{"ansible.builtin.setup": {"gather_subset": ["!all", "!min", "distribution", "platform"]}}]
    tasks += [{"ansible.builtin.include_vars": {"file": str(role_dir / path)}}
              for path in ("defaults/main.yml", "vars/main.yml") if (role_dir / path).is_file()]
    if role == "prometheus":
        # As its preflight reads them, before the fact the targets come from.
        tasks.append({"ansible.builtin.include_vars": {"file": str(REPO / "roles" / "{{ item }}" / "defaults" / "main.yml"),
                                                       "name": "__prometheus_defaults_of_{{ item }}"},
                      "loop": "{{ __prometheus_target_roles }}"})
    if facts:
        tasks.append({"ansible.builtin.set_fact": dict(facts)})
    for template in templates:
        tasks.append({"ansible.builtin.template": {"src": str(role_dir / "templates" / template), "mode": "0600",
                                                   "dest": str(tmp_path / ("rendered-" + template))}})
    tasks.append({"ansible.builtin.copy": {"dest": str(out), "mode": "0600",
                                           "content": "{{ {%s} | to_json }}" % listing}})
    (tmp_path / "render.yml").write_text(yaml.safe_dump([{"hosts": host, "gather_facts": False, "tasks": tasks}]))
    if inventory is None:
        source = ["-i", "localhost,", "-c", "local"]
    else:
        (tmp_path / "inventory.yml").write_text(inventory)
        source = ["-i", str(tmp_path / "inventory.yml")]
    variables = dict({"ansible_python_interpreter": sys.executable}, **extra_vars)
    proc = subprocess.run(["ansible-playbook", *source, str(tmp_path / "render.yml"),
                           "-e", json.dumps(variables)], capture_output=True, text=True, timeout=300, check=False,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(out.read_text()), **{template: (tmp_path / ("rendered-" + template)).read_text()
                                                for template in templates})


def target_groups(files):
    """The prometheus role's file_sd texts per job (__prometheus_scrape.files), read the way Prometheus reads them."""
    return {job: json.loads(text) for job, text in files.items()}


# What the prometheus role's preflight keeps as a fact (tasks/preflight.yml) for its later tasks and templates.
PROMETHEUS_FACTS = {"__prometheus_scrape": "{{ __prometheus_inventory_targets }}"}


def render_prometheus(tmp_path, names, extra_vars, **kwargs):
    """The prometheus role's ``names`` after its preflight's fact, and its prometheus.yml (templates/prometheus.yml.j2)
    read as YAML under "config" (its text under "config_text")."""
    rendered = render_role_vars(tmp_path, "prometheus", names, extra_vars, templates=["prometheus.yml.j2"],
                                facts=PROMETHEUS_FACTS, **kwargs)
    rendered["config_text"] = rendered.pop("prometheus.yml.j2")
    rendered["config"] = yaml.safe_load(rendered["config_text"])
    return rendered
