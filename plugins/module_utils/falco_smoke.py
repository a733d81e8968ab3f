# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of playbooks/smoke.yml, in one place with unit tests.

* ``enabled_rules`` reads what a Falco loads (``falco -L`` in JSON) and applies its configuration's ``rules:``
  selection, which ``-L`` does not show; the falco_smoke_probe module calls it on the host.
* ``smoke_plan`` decides, from that probe, which events a host can produce (the tutorial's where their rules are
  loaded, stand-ins from the stable rules where they are not) and gives each event a marker unique to the host and
  the run, carried in the command line or file name of what it does.
* ``alerts_seen`` finds, in the host's own Falco JSON alerts, the ones for each event: the event's rule, the
  event's marker, and the hostname this host's Falco writes.
* ``smoke_report`` joins that with the Prometheus counters that rose into one verdict per event and per host.

Why markers: Falco's modern eBPF probe sees the system calls of the whole machine, so where several Falco hosts share
a kernel (containers, the lab) each raises the alert for the others' events too, and a per-host counter rises
wherever anything happens. Only an alert of this host's Falco carrying this host's marker proves this host's Falco
saw this host's event.
"""

from __future__ import annotations

__metaclass__ = type

import fnmatch
import hashlib
import json
import re
import shlex

# Events, in the order they run. suite: "tutorial" (the tutorial's three detections, whose rules moved to the
# incubating and sandbox rulesets after Falco 0.31) or "stable" (rules of the stable ruleset every package ships,
# run where the tutorial's rules are not all loaded). rules: the rules that count as detecting the event, in order
# of preference. container: needs a container engine and a local image. command: a shell command with {marker},
# {engine} and {image}; each cleans up after itself (files removed, containers started with --rm).
# A privileged container counts with "Launch Excessively Capable Container" too: Falco reports the first rule that
# matches an event, and when the container plugin has not yet read the container's metadata (container.privileged
# unknown), the same start matches that rule on the process's capabilities instead (docs/architecture.md).
_CONTAINER = ("{engine} run --rm --pull never --network none --user 0 %s --entrypoint /bin/sh {image} -c : {marker}")
EVENTS = (
    {"id": "write_below_bin", "suffix": "bin", "suite": "tutorial", "container": False,
     "title": "a file written below /bin",
     "rules": ["Write below binary dir"],
     "command": "touch /bin/{marker} && rm -f /bin/{marker}"},
    {"id": "privileged_container", "suffix": "priv", "suite": "tutorial", "container": True,
     "title": "a privileged container",
     "rules": ["Launch Privileged Container", "Launch Excessively Capable Container"],
     "command": _CONTAINER % "--privileged"},
    {"id": "sensitive_mount_container", "suffix": "mount", "suite": "tutorial", "container": True,
     "title": "a container with the host's /etc mounted",
     "rules": ["Launch Sensitive Mount Container"],
     "command": _CONTAINER % "--volume /etc:/fleetwatch-smoke-etc:ro"},
    {"id": "read_shadow", "suffix": "shadow", "suite": "stable", "container": False,
     "title": "/etc/shadow read by cat",
     "rules": ["Read sensitive file untrusted"],
     "command": 'd=$(mktemp -d) && : > "$d/{marker}" && cat /etc/shadow "$d/{marker}" > /dev/null; rc=$?; '
                'rm -rf "$d"; exit $rc'},
    {"id": "symlink_shadow", "suffix": "link", "suite": "stable", "container": False,
     "title": "a symbolic link to /etc/shadow",
     "rules": ["Create Symlink Over Sensitive Files"],
     "command": 'd=$(mktemp -d) && ln -s /etc/shadow "$d/{marker}"; rc=$?; rm -rf "$d"; exit $rc'},
    {"id": "shell_in_container", "suffix": "shell", "suite": "stable", "container": True,
     "title": "a shell with a terminal in a container",
     "rules": ["Terminal shell in container"],
     "command": (_CONTAINER % "--tty") + " < /dev/null"},
)

NOT_RUN = "not tested"
RUN = "run"
PASSED = "passed"
FAILED = "failed"

_MARKER_CHARS = re.compile(r"[^A-Za-z0-9.-]+")
_MARKER_END = r"(?![A-Za-z0-9._-])"


class SmokeError(Exception):
    """Input the smoke test cannot work with; the message says what was wrong."""


# ---------------------------------------------------------------------------------------------------- host side

def rules_from_listing(text):
    """Rule name to {enabled, tags} from ``falco -L`` with json_output: one JSON document with a ``rules`` list."""
    try:
        listing = json.loads(text)
        rules = {}
        for rule in listing["rules"]:
            info = rule["info"]
            rules[info["name"]] = {"enabled": bool(info.get("enabled", True)), "tags": list(info.get("tags") or [])}
        return rules
    except (ValueError, KeyError, TypeError) as exc:
        raise SmokeError("falco -L did not print its rules as JSON (%s: %s)" % (type(exc).__name__, exc))


def rules_from_files(texts):
    """Rule name to {enabled, tags} from rules files' text, for a Falco too old to list its rules in JSON: every
    ``- rule: NAME`` item counts as loaded and enabled."""
    rules = {}
    for text in texts:
        for match in re.finditer(r"^-\s+rule:\s*(.+?)\s*$", text, re.M):
            name = match.group(1).strip("'\"")
            rules.setdefault(name, {"enabled": True, "tags": []})
    return rules


def apply_selection(rules, selection):
    """Apply a Falco configuration's ``rules:`` list ({disable|enable: {rule: GLOB} or {tag: TAG}}, in order) to
    rules as ``rules_from_listing`` returns them; returns a new dict."""
    result = dict((name, dict(value)) for name, value in rules.items())
    for item in selection or []:
        if not isinstance(item, dict):
            continue
        for action in ("disable", "enable"):
            spec = item.get(action)
            if not isinstance(spec, dict):
                continue
            for name, rule in result.items():
                if ("rule" in spec and fnmatch.fnmatchcase(name, str(spec["rule"]))) or \
                        ("tag" in spec and str(spec["tag"]) in rule["tags"]):
                    rule["enabled"] = action == "enable"
    return result


def _truthy(value):
    return str(value).strip().lower() in ("true", "yes", "1", "on")


def outputs_from_support(text):
    """What ``falco --support`` says about the alerts: JSON or not, syslog (the journal) and file output, and the
    configuration's rules selection. Its ``config`` is the merged configuration as a JSON string, values as strings."""
    try:
        support = json.loads(text)
        config = support["config"]
        if isinstance(config, str):
            config = json.loads(config)
    except (ValueError, KeyError, TypeError) as exc:
        raise SmokeError("falco --support did not print its configuration as JSON (%s: %s)" % (type(exc).__name__, exc))
    file_output = config.get("file_output") or {}
    filename = ""
    if _truthy(file_output.get("enabled", False)):
        filename = str(file_output.get("filename") or "")
        # Falco runs from / under systemd: a relative file name is below /.
        if filename and not filename.startswith("/"):
            filename = "/" + filename.lstrip("./")
    return {
        "json": _truthy(config.get("json_output", False)),
        "journal": _truthy((config.get("syslog_output") or {}).get("enabled", False)),
        "file": filename,
        "selection": config.get("rules") or [],
        "version": str(support.get("version") or ""),
    }


def hostname_from_environ(data):
    """FALCO_HOSTNAME from /proc/PID/environ content (NUL-separated), or None."""
    for entry in data.split("\0"):
        key, sep, value = entry.partition("=")
        if sep and key == "FALCO_HOSTNAME" and value:
            return value
    return None


def hostname_from_unit_environment(value):
    """FALCO_HOSTNAME from systemctl show's Environment value (space-separated, possibly quoted), or None."""
    try:
        words = shlex.split(value or "")
    except ValueError:
        words = (value or "").split()
    return hostname_from_environ("\0".join(words))


# ---------------------------------------------------------------------------------------------------- controller

def host_marker(run_id, host):
    """A marker unique to this run and host, safe in a file name and a command line. The host's name is kept for
    people (cut and cleaned); a hash of it keeps two hosts whose cleaned names collide apart."""
    run = _MARKER_CHARS.sub("", str(run_id))
    if not run:
        raise SmokeError("falco_smoke_plan needs a run_id of letters or digits, got %r" % (run_id,))
    name = _MARKER_CHARS.sub("_", str(host)).strip("_.-")[:24] or "host"
    digest = hashlib.sha1(str(host).encode("utf-8")).hexdigest()[:6]
    return "fwsmoke-%s-%s-%s" % (run, name, digest)


def _rule_state(rules, names):
    """'enabled' with the enabled ones, or why none is: 'rule not loaded' / 'rule disabled'."""
    enabled = [name for name in names if rules.get(name)]
    if enabled:
        return "enabled", enabled
    if any(name in rules for name in names):
        return "rule disabled", []
    return "rule not loaded", []


def alerts_command(journal, filename, since, marker):
    """A shell command printing the host's alert lines that carry the marker, from the journal (syslog output) from
    ``since`` (seconds since the epoch) on and from Falco's output file; empty when there is neither."""
    parts = []
    if journal:
        parts.append("journalctl -t falco -o cat --no-pager --since @%d | grep -F -- %s"
                     % (int(since), shlex.quote(marker)))
    if filename:
        parts.append("grep -hF -- %s %s" % (shlex.quote(marker), shlex.quote(filename)))
    return "{ %s; } 2>/dev/null; true" % "; ".join(parts) if parts else ""


def smoke_plan(probe, run_id, host, image=None):
    """What smoke.yml does on one host, from what the falco_smoke_probe module found there.

    Returns {host, hostname, marker, problem, suite, alerts: {journal, file}, engine, image, events: [...]}; each
    event carries id, title, suite, rules (the ones that count, enabled on this host), marker, command, and status
    ('run' or 'not tested' with a reason). ``problem`` is set when nothing can be tested (no Falco, alerts that
    cannot be read on the host); the host then fails.
    """
    if not isinstance(probe, dict):
        raise SmokeError("falco_smoke_plan expects the result of the falco_smoke_probe module, got %r" % (probe,))
    marker = host_marker(run_id, host)
    rules = probe.get("rules") or {}
    outputs = probe.get("outputs") or {}
    engine = probe.get("engine") or ""
    image = image or probe.get("image") or ""
    problem = ""
    if not probe.get("unit"):
        problem = ("No Falco unit is active on %s, so nothing there can detect the smoke events: this host is NOT "
                   "smoke-tested. Deploy Falco with playbooks/falco.yml, or leave the host out with --limit." % host)
    elif not outputs.get("json"):
        problem = ("Falco on %s does not write JSON alerts (json_output), so its own alerts cannot be checked: this "
                   "host is NOT smoke-tested. The falco role turns json_output on." % host)
    elif not outputs.get("journal") and not outputs.get("file"):
        problem = ("Falco on %s writes its alerts neither to syslog (the journal) nor to a file, so its own alerts "
                   "cannot be read on the host: this host is NOT smoke-tested. Set falco_syslog_output: true or "
                   "falco_file_output_path." % host)
    if not engine:
        container_reason = "no container engine"
    elif not image:
        container_reason = probe.get("image_problem") or "no local image (set fleetwatch_smoke_image)"
    else:
        container_reason = ""

    events = []
    tutorial_complete = True
    for event in EVENTS:
        state, enabled = _rule_state(rules, event["rules"])
        if event["suite"] == "tutorial" and state != "enabled":
            tutorial_complete = False
        events.append((event, state, enabled))

    planned = []
    for event, state, enabled in events:
        if event["suite"] == "stable" and tutorial_complete:
            continue
        entry = {"id": event["id"], "title": event["title"], "suite": event["suite"],
                 "rules": enabled or list(event["rules"]), "marker": "%s-%s" % (marker, event["suffix"]),
                 "command": "", "status": RUN, "reason": ""}
        if problem:
            entry.update(status=NOT_RUN, reason="see the host's problem")
        elif state != "enabled":
            entry.update(status=NOT_RUN, reason="%s: %s" % (state, " / ".join(event["rules"])))
        elif event["container"] and container_reason:
            entry.update(status=NOT_RUN, reason=container_reason)
        else:
            entry["command"] = event["command"].format(marker=shlex.quote(entry["marker"]),
                                                       engine=shlex.quote(engine), image=shlex.quote(image))
        planned.append(entry)
    if not problem and not any(entry["status"] == RUN for entry in planned):
        problem = ("None of the smoke events can run on %s (%s): this host is NOT smoke-tested. Load the rules they "
                   "need (falco_rulesets for the tutorial's, the stable falco_rules.yaml for the others) or give the "
                   "host a container engine and image." % (
                       host, "; ".join("%s: %s" % (e["title"], e["reason"]) for e in planned)))
    return {
        "host": host,
        "hostname": probe.get("hostname") or "",
        "marker": marker,
        "problem": problem,
        "suite": "tutorial" if tutorial_complete else "tutorial and stable",
        "alerts": {"journal": bool(outputs.get("journal")), "file": outputs.get("file") or "",
                   # From a little before the probe: the events run after it, on the same clock.
                   "command": alerts_command(outputs.get("journal"), outputs.get("file"),
                                             int(probe.get("time") or 0) - 5, marker)},
        "engine": engine,
        "image": image,
        "events": planned,
    }


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _carries(alert, pattern):
    texts = [alert.get("output") or ""]
    texts.extend(_strings(alert.get("output_fields") or {}))
    return any(pattern.search(text) for text in texts)


def alerts_seen(lines, plan):
    """The host's own alerts for each event that ran: {seen: {event id: [rules]}, missing: [event ids],
    foreign: {event id: [hostnames]}}. An alert counts for an event when its rule is one of the event's, the event's
    marker is in its output or output fields, and its hostname is this host's Falco's; ``foreign`` names hostnames
    of alerts that matched all but the last (a FALCO_HOSTNAME that is not what the host says)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    ran = [event for event in plan.get("events", []) if event.get("status") == RUN]
    patterns = dict((event["id"], re.compile(re.escape(event["marker"]) + _MARKER_END)) for event in ran)
    seen = dict((event["id"], set()) for event in ran)
    foreign = dict((event["id"], set()) for event in ran)
    for line in lines or []:
        line = line.strip() if isinstance(line, str) else ""
        if not line.startswith("{"):
            continue
        try:
            alert = json.loads(line)
        except ValueError:
            continue
        if not isinstance(alert, dict):
            continue
        for event in ran:
            if alert.get("rule") in event["rules"] and _carries(alert, patterns[event["id"]]):
                if alert.get("hostname") == plan.get("hostname"):
                    seen[event["id"]].add(alert["rule"])
                else:
                    foreign[event["id"]].add(str(alert.get("hostname")))
    return {
        "seen": dict((key, sorted(value)) for key, value in seen.items()),
        "missing": [event["id"] for event in ran if not seen[event["id"]]],
        "foreign": dict((key, sorted(value)) for key, value in foreign.items() if value),
    }


def _counter_rule(event, seen_rules, risen):
    """The rule whose counter proves the event: the one the host's own alert named, else any of the event's."""
    wanted = seen_rules or event["rules"]
    for rule in wanted:
        if rule in risen:
            return rule
    return None


def _caused(caused):
    """Event id to (rc, stderr tail) from the results of the loop that ran the commands."""
    result = {}
    for item in caused or []:
        if not isinstance(item, dict) or not isinstance(item.get("item"), dict):
            continue
        stderr = (item.get("stderr") or item.get("msg") or "").strip().splitlines()
        result[item["item"].get("id")] = (item.get("rc", 0 if not item.get("failed") else 1), " ".join(stderr[-2:]))
    return result


def smoke_report(plan, alerts, risen, caused=None, deadline=None):
    """The verdict for one host: {host, passed, waiting_for_counters, events: [...], msg}.

    ``alerts`` is what alerts_seen returned, ``risen`` the rules whose counter for this host rose in Prometheus
    (counters_risen), ``caused`` the results of the task that ran the events' commands. An event passes only when
    both hold for the same rule: the host's own alert with the marker, and the host's counter. A host passes when no
    event failed and at least one passed; events not run are listed as not tested, never passed.
    """
    risen = set(risen or [])
    seen = (alerts or {}).get("seen") or {}
    foreign = (alerts or {}).get("foreign") or {}
    commands = _caused(caused)
    events = []
    waiting = []
    for event in plan.get("events", []):
        row = {"id": event["id"], "title": event["title"], "status": NOT_RUN, "rule": None,
               "alert": False, "counter": False, "reason": event.get("reason", "")}
        if event["status"] == RUN:
            rc, stderr = commands.get(event["id"], (0, ""))
            seen_rules = seen.get(event["id"]) or []
            counter_rule = _counter_rule(event, seen_rules, risen)
            row["alert"] = bool(seen_rules)
            row["counter"] = counter_rule is not None
            row["rule"] = counter_rule or (seen_rules[0] if seen_rules else None)
            if counter_rule is None:
                waiting.append(event["id"])
            problems = []
            if rc:
                problems.append("its command failed (rc %s: %s)" % (rc, stderr or "no message"))
            if not seen_rules:
                text = "no alert of %s's Falco with hostname %s and marker %s for %s" % (
                    plan["host"], plan.get("hostname"), event["marker"], " / ".join(event["rules"]))
                if foreign.get(event["id"]):
                    text += " (alerts with the marker came with hostname %s)" % ", ".join(foreign[event["id"]])
                problems.append(text)
            if counter_rule is None:
                problems.append("Prometheus did not show %s's counter rise for %s" % (
                    plan["host"], " / ".join(seen_rules or event["rules"])))
            row["status"] = FAILED if problems else PASSED
            row["reason"] = "; ".join(problems)
        events.append(row)
    passed = not plan.get("problem") and any(row["status"] == PASSED for row in events) and \
        not any(row["status"] == FAILED for row in events)
    return {"host": plan["host"], "passed": passed, "waiting_for_counters": waiting, "events": events,
            "msg": _message(plan, events, passed, deadline)}


def _message(plan, events, passed, deadline):
    """One line for people (the summary puts the host's name before it)."""
    if plan.get("problem"):
        return "FAILED. %s" % plan["problem"]
    ok = ["%s (%s)" % (row["title"], row["rule"]) for row in events if row["status"] == PASSED]
    bad = ["%s: %s" % (row["title"], row["reason"]) for row in events if row["status"] == FAILED]
    skipped = ["%s (%s)" % (row["title"], row["reason"]) for row in events if row["status"] == NOT_RUN]
    parts = ["passed." if passed else "FAILED."]
    if ok:
        parts.append("Seen in its own alert and its Prometheus counter: %s." % ", ".join(ok))
    if bad:
        within = " within %s s" % deadline if deadline is not None else ""
        parts.append("Not confirmed%s: %s." % (within, "; ".join(bad)))
    parts.append("Not tested: %s." % (", ".join(skipped) if skipped else "none"))
    return " ".join(parts)
