"""Helpers for Molecule verify tests: run the scenario's playbooks again the way a user would, and read what they did
from the JSON callback's report (results, failures, the recap in its "stats"), never from printed lines."""

import json
import os
import subprocess
import time
from pathlib import Path


def scenario_dir():
    return Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])


def ansible_playbook(playbook, args, timeout=900, **extra_env):
    """Run a playbook of the scenario against the Molecule inventory, without colours; return the finished process.
    A run still going after timeout seconds is killed and fails the test (subprocess.TimeoutExpired): 900 holds a
    scenario's converge; a run that deploys a whole fleet (the faults scenario's site.yml) passes more."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    cmd = ["ansible-playbook", "-i", inventory, str(scenario_dir() / playbook), *args]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **extra_env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def run_playbook_json(playbook, *args, timeout=900):
    """Run a playbook of the scenario with the JSON callback: return (exit code, the run's report, output). Fails the
    test when the run printed no report (the output's tail says why). Verbose lines (-v) go to stderr, so stdout holds
    the report alone; output is both, for checks that a secret is printed nowhere. timeout as for ansible_playbook."""
    proc = ansible_playbook(playbook, args, timeout=timeout, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                            ANSIBLE_VERBOSE_TO_STDERR="1")
    output = proc.stdout + proc.stderr
    try:
        report = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
    except ValueError:
        raise AssertionError("the run printed no JSON report:\n" + output[-3000:]) from None
    return proc.returncode, report, output


def converge(*args):
    """The scenario's converge.yml again with args: (exit code, the JSON callback's report, the output's last 3000
    characters). Tests read what the run did from the report (the recap in its "stats", results, the refusals'
    messages), never from printed lines or task names; the output only goes into assertion messages, so only its tail:
    the report's last results and its recap (the report's keys are sorted, "stats" last) and then what went to stderr
    (warnings, errors), where a failed run says why, without a whole run's report burying pytest's own. A test that
    must search the whole output (a secret printed nowhere) calls run_playbook_json."""
    rc, report, output = run_playbook_json("converge.yml", *args)
    return rc, report, output[-3000:]


def results(report, host, action=None):
    """Every result a run's report holds for host, in order, each with its task-level keys (action, changed,
    failed, skipped, msg, and the module's own returns); only those of one module with action (its FQCN)."""
    found = []
    for play in report["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get(host)
            if result is not None and (action is None or result.get("action") == action):
                found.append(result)
    return found


def failures(report, host):
    """The messages of what failed on host (each failed item of a loop on its own): where a refusal says what to
    change. Every failure is among them, those a rescue handled and those ignore_errors let pass too: the JSON callback
    (ansible.posix.json on ansible-core 2.19) records such a result like one that stopped the host (failed: true and
    its msg, no key that says rescued or ignored, and the task's block is not in the report); only the recap in the
    report's "stats" tells them apart, as counts per host (failures, rescued, ignored)."""
    messages = []
    for result in results(report, host):
        if not result.get("failed"):
            continue
        items = [item for item in result.get("results", []) if item.get("failed")]
        messages += [str(item.get("msg", "")) for item in items or [result]]
    return messages


def changes(report, host):
    """What a run changed on host, in order: (task name, module, result) for each changed task, or for each changed
    item of a loop."""
    found = []
    for play in report["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get(host)
            if not result or not result.get("changed"):
                continue
            items = [item for item in result.get("results", []) if item.get("changed")]
            found += [(task["task"]["name"], result.get("action"), item) for item in items or [result]]
    return found


def reached_over_ssh(host):
    """How the scenario's own inventory reaches HOST: (user, SSH_CONNECTION) as seen by a command run through it
    without become (sudo would clear SSH_CONNECTION). A host reached through podman shows root and no
    SSH_CONNECTION."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    cmd = ["ansible", "-i", inventory, host, "-e", "ansible_become=false", "-m", "ansible.builtin.shell",
           "-a", 'echo "$(id -un) ${SSH_CONNECTION:-none}"', "-o"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    user, connection = proc.stdout.rsplit("(stdout)", 1)[1].split(None, 1)
    return user, connection.strip()


def assert_reached_over_ssh(host, testinfra_host):
    """The scenario's playbooks reach HOST over SSH as the sudo user ansible with the scenario's key: the connection
    says so, and the host's own sshd logged the key login (read through podman, not through SSH)."""
    user, connection = reached_over_ssh(host)
    assert user == "ansible" and connection != "none", (user, connection)
    log = testinfra_host.run("journalctl -u ssh.service -o cat --no-pager").stdout
    assert "Accepted publickey for ansible from" in log, log[-2000:]


def wait_for(check, timeout=120, interval=2):
    """Call check() until it returns something truthy; return it, or the last value after the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# Run inside a lab host by http_get with python3, which every host has (curl is not on a minimal host, and the lab
# hosts hold only what a minimal cloud image does: docs/testing.md). One JSON argument in, one JSON line out.
HTTP_GET = r"""
import base64, json, socket, ssl, sys, urllib.error, urllib.parse, urllib.request
a = json.loads(sys.argv[1])
url = a["url"] + ("?" + urllib.parse.urlencode(a["params"]) if a["params"] else "")
request = urllib.request.Request(url)
if a["user"] is not None:
    token = base64.b64encode(("%s:%s" % (a["user"], a["password"])).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
context = ssl.create_default_context(cafile=a["cafile"]) if url.startswith("https:") else None
status, body, error = None, b"", None
try:
    with urllib.request.urlopen(request, timeout=a["timeout"], context=context) as reply:
        status, body = reply.status, reply.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
except (urllib.error.URLError, OSError) as e:
    reason = getattr(e, "reason", e)
    error = ("certificate" if isinstance(reason, ssl.SSLCertVerificationError) else
             "tls" if isinstance(reason, ssl.SSLError) else
             "refused" if isinstance(reason, ConnectionRefusedError) else
             "timeout" if isinstance(reason, (socket.timeout, TimeoutError)) else "error: %s" % (reason,))
print(json.dumps({"status": status, "body": body.decode("utf-8", "replace"), "error": error}))
"""


class Reply:
    """What http_get got: status (None when no HTTP answer came), body, error (None, "certificate", "tls", "refused",
    "timeout" or "error: ...")."""

    def __init__(self, status, body, error):
        self.status, self.body, self.error = status, body, error

    def __repr__(self):
        return "Reply(status=%r, error=%r, body=%r)" % (self.status, self.error, self.body[:300])


def http_get(host, url, params=None, user=None, password=None, cafile=None, timeout=20):
    """GET url from inside a lab host (a testinfra host) with the host's python3; params are the query string, user and
    password basic auth, cafile the CA to verify an HTTPS server with (default: the host's trust store)."""
    arguments = {"url": url, "params": params or {}, "user": user, "password": password, "cafile": cafile,
                 "timeout": timeout}
    result = host.run("python3 -c %s %s", HTTP_GET, json.dumps(arguments))
    assert result.rc == 0, result.stdout + result.stderr
    return Reply(**json.loads(result.stdout))


def get_json(host, url, params=None, **kwargs):
    """GET url from inside a lab host; fail the test unless it answers 200; return the decoded JSON."""
    reply = http_get(host, url, params, **kwargs)
    assert reply.status == 200, (url, reply)
    return json.loads(reply.body)


def ready(host, url, **kwargs):
    """Whether url answers 200 from inside a lab host (for wait_for)."""
    return http_get(host, url, timeout=5, **kwargs).status == 200


def query(host, expr, at=None):
    """Instant query on the real Prometheus of a lab host; fails the test on an API or PromQL error."""
    params = dict({"query": expr}, **({"time": at} if at else {}))
    reply = get_json(host, "http://localhost:9090/api/v1/query", params)
    assert reply["status"] == "success", (expr, reply)
    return reply["data"]["result"]
