"""A refusal reaches every way a run is read: no assert or fail task of a role is no_log.

With no_log Ansible replaces the whole result by "censored": the console still prints the message as an error line,
but the JSON callback (AWX, the tests' reports) gets no message at all, so the user is told that something failed,
not what to change. The refusals' messages name variables, never their values; a secret only takes part in the
condition, which the result shows as written.
"""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
REFUSING = {"ansible.builtin.assert", "ansible.builtin.fail"}


def tasks_of(entries):
    for task in entries or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks_of(task.get(key))


def test_no_refusal_hides_its_message():
    hidden = []
    files = sorted((REPO / "roles").glob("*/tasks/*.yml"))
    assert files
    for path in files:
        for task in tasks_of(yaml.safe_load(path.read_text())):
            if REFUSING & set(task) and task.get("no_log"):
                hidden.append("%s: %s" % (path.relative_to(REPO), task.get("name")))
    assert hidden == []
