# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the Falco alert triage against jq and a plain Python loop.

Generates journald-style dumps (``journalctl -o cat``: banners plus one JSON alert per line) of N alerts in two
shapes, and times, on the same file:
  jq      per-rule counts with jq (two pipelines; the faster one is the reference),
  plain   per-rule counts with a stdlib ``json.loads`` loop,
  ours-1  the full triage (rule counts, fingerprints, summary, suggestions) through
          plugins/module_utils/falco_events.py (and the files it imports) in one process, run in a child process so
          its peak memory can be read,
  command tools/falco-triage DUMP --json as a new user runs it, with its default of two processes (--workers N
          changes that): the goal's run, against jq's faster pipeline by wall clock, with one core busy.
Every tool's per-rule totals are checked against the generator's, so a fast wrong answer cannot win.
Memory is checked as the process's own peak RSS plus each worker's peak private memory (an upper bound of what
the run held at any one time; the tree's sampled PSS peak is printed too).

Shapes (--shapes):
  generated  alerts built from the recorded Falco 0.44.1 alerts' output_fields with many actors, hosts, images and
             files, key order of the original bench (output first, hostname last, one alert in ten without it);
  recorded   the recorded Falco 0.44.1 alerts of ../shared/upstream/recorded themselves, written as Falco writes
             them (its key order and separators, every output field), with host, time, container id and, for one
             alert in fifty, the command line changed; skipped, with the reason, when ../shared is absent.

--busy-core keeps one core busy with a CPU burner while the tools run, as on a machine that does other work.

With --instructions N it also counts, with valgrind's callgrind, the instructions per alert that jq and our
triage (one process) execute on each shape: the count on 2N alerts less the count on N alerts, divided by N, so
that start-up and first-use costs cancel out for every program. Unlike seconds, that ratio does not move with other
load on the machine.

Usage: python3 bench/triage_bench.py [--events 1000000] [--shapes generated,recorded] [--workers 2] [--busy-core]
       [--repeat 3] [--instructions 20000]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULE_UTILS = REPO_ROOT / "plugins" / "module_utils"
RECORDED_DIR = REPO_ROOT.parent / "shared" / "upstream" / "recorded"

JQ_PIPELINES = {
    # One jq process; the counting happens inside jq.
    "jq-reduce": ["jq", "-n", "-R", "-c", 'reduce (inputs | fromjson? | objects | .rule // empty) as $r ({}; .[$r] += 1)'],
    # jq only extracts the rule; sort and uniq count.
    "jq-sort-uniq": "jq -R -r 'fromjson? | objects | .rule // empty' {path} | LC_ALL=C sort | LC_ALL=C uniq -c",
}

# The jq programs above as one process each, for counting instructions (sort and uniq left out: they see one short
# line per alert and cost next to nothing).
JQ_PROCESSES = {
    "jq-reduce": JQ_PIPELINES["jq-reduce"],
    "jq-extract": ["jq", "-R", "-r", 'fromjson? | objects | .rule // empty'],
}

PLAIN_LOOP = r"""
import json, sys
counts = {}
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "rule" in event:
            counts[event["rule"]] = counts.get(event["rule"], 0) + 1
print(json.dumps(counts))
"""

# Both snippets below start with this one: the running program's own peak RSS.
OWN_PEAK = r"""
import resource


def own_peak_kb():
    # VmHWM covers this program only. ru_maxrss would also carry the RSS of whatever spawned it: Linux keeps the
    # high-water mark of the memory image replaced by exec.
    try:
        with open("/proc/self/status") as status:
            for text in status:
                if text.startswith("VmHWM:"):
                    return int(text.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

OURS = OWN_PEAK + r"""
import importlib, importlib.machinery, importlib.util, json, sys, time


# The module_utils directory as a package (its files import each other relatively), as tools/falco-triage loads it.
spec = importlib.machinery.ModuleSpec("falco_events_bench", None, is_package=True)
spec.submodule_search_locations = [sys.argv[1]]
sys.modules[spec.name] = importlib.util.module_from_spec(spec)
falco_events = importlib.import_module("falco_events_bench.falco_events")
started = time.perf_counter()
triage = falco_events.triage_file(sys.argv[2], workers=int(sys.argv[3]), default_host="unknown")
summary = triage.summary(top=20)
suggestions = falco_events.suggest_exceptions(triage.fingerprint_records())
elapsed = time.perf_counter() - started
per_rule = triage.counts_by_rule()
print(json.dumps({
    "elapsed": elapsed,
    "parser": falco_events.JSON_PARSER,
    "per_rule": per_rule,
    "alerts": summary["alerts"],
    "skipped_lines": summary["skipped_lines"],
    "fingerprints": summary["fingerprints"]["distinct"],
    "approximate": summary["approximate"],
    "suggested": len(suggestions["exceptions"]),
    "rss_self_kb": own_peak_kb(),
    "rss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}))
"""

# tools/falco-triage as a new user runs it (argv: the tool, then its arguments). Its own output goes to stdout as
# usual; at exit, the process's peak RSS and its largest worker's go to stderr as the last line, for the bench.
COMMAND = OWN_PEAK + r"""
import atexit, json, runpy, sys


def report_memory():
    sys.stderr.write("\n" + json.dumps({
        "rss_self_kb": own_peak_kb(),
        "rss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }) + "\n")


atexit.register(report_memory)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
TOOL = REPO_ROOT / "tools" / "falco-triage"

BANNERS = [
    "Falco version 0.44.1 (x86_64)",
    "Falco initialized with configuration files:",
    "   /etc/falco/falco.yaml | schema validation: ok",
    "Loading rules from:",
    "   /etc/falco/falco_rules.yaml | schema validation: ok",
    "Hostname value has been overridden via environment variable to: web-01",
    "The chosen syscall buffer dimension is: 8388608 bytes (8 MBs)",
    "Starting health webserver with threadiness 2, listening on 0.0.0.0:8765",
    "Loaded event sources: syscall",
    "Enabled event sources: syscall",
    "Opening 'syscall' source with modern BPF probe.",
]

# Noisy rules of the stable set and the tutorial's, with the priority they carry.
RULES = [
    ("Read sensitive file untrusted", "Warning", "Sensitive file opened for reading by non-trusted program"),
    ("Write below binary dir", "Error", "File below a known binary directory opened for writing"),
    ("Launch Excessively Capable Container", "Informational", "Excessively capable container started"),
    ("Launch Sensitive Mount Container", "Informational", "Container with sensitive mount started"),
    ("Change thread namespace", "Notice", "Namespace change (setns) by unexpected program"),
    ("Write below etc", "Error", "File below /etc opened for writing"),
    ("Run shell untrusted", "Notice", "Shell spawned by untrusted binary"),
    ("Terminal shell in container", "Notice", "A shell was spawned in a container with an attached terminal"),
    ("Clear Log Activities", "Warning", "Log files were tampered"),
    ("Drop and execute new binary in container", "Critical", "Executing binary not part of base image"),
]
RULE_WEIGHTS = [30, 3, 2, 2, 25, 12, 10, 6, 8, 2]

ACTORS = [
    ("cat", "/usr/bin/cat", "bash", "cat /etc/shadow"),
    ("touch", "/usr/bin/touch", "bash", "touch /bin/should_not_be_here"),
    ("runc", "/usr/bin/runc", "containerd-shim", "runc init"),
    ("conmon", "/usr/bin/conmon", "podman", "conmon --api-version 1"),
    ("sh", "/usr/bin/dash", "node_exporter", "sh -c /usr/bin/check_disk"),
    ("python3", "/usr/bin/python3.11", "cron", "python3 /opt/backup/rotate.py"),
    ("dpkg", "/usr/bin/dpkg", "apt-get", "dpkg --configure -a"),
    ("sshd", "/usr/sbin/sshd", "systemd", "sshd: root@pts/0"),
    ("bash", "/usr/bin/bash", "sshd", "bash"),
    ("truncate", "/usr/bin/truncate", "logrotate", "truncate -s 0 /var/log/app.log"),
    ("java", "/usr/lib/jvm/bin/java", "tini", "java -jar /app/service.jar"),
    ("nginx", "/usr/sbin/nginx", "nginx", "nginx: worker process"),
]
ACTOR_WEIGHTS = [10, 2, 20, 12, 8, 6, 3, 5, 9, 4, 6, 5]
IMAGES = [(None, None), (None, None), ("docker.io/library/nginx", "1.27"), ("quay.io/prometheus/node-exporter", "v1.8.2"),
          ("registry.example/app/service", "2024.11.3"), ("docker.io/library/fedora", "latest")]
FILES = ["/etc/shadow", "/etc/passwd", "/bin/should_not_be_here", "/etc/resolv.conf", "/var/log/app.log",
         "/etc/ld.so.cache", "/etc/hosts"]
USERS = [("root", 0, -1), ("root", 0, 1000), ("www-data", 33, -1), ("prometheus", 65534, -1)]


def load_templates():
    """Recorded alerts: the real key set and output_fields shape that generated alerts copy."""
    templates = []
    for path in sorted(RECORDED_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                templates.append(json.loads(line))
    if templates:
        return templates, "recorded Falco 0.44.1 alerts from %s" % RECORDED_DIR
    # Without ../shared: the 0.44 key set, written out by hand.
    return [{
        "hostname": "host", "output": "", "priority": "Warning", "rule": "", "source": "syscall",
        "tags": ["filesystem"], "time": "",
        "output_fields": {"container.id": "", "container.image.repository": None, "container.image.tag": None,
                          "container.name": None, "evt.time": 0, "evt.type": "openat", "fd.name": "",
                          "k8s.ns.name": None, "k8s.pod.name": None, "proc.aname[2]": "bash", "proc.cmdline": "",
                          "proc.exepath": "", "proc.name": "", "proc.pname": "", "proc.tty": 0,
                          "user.loginuid": -1, "user.name": "root", "user.uid": 0},
    }], "built-in 0.44 shape (../shared/upstream/recorded not found)"


@contextlib.contextmanager
def journal_dumps(path, small_path, small_events, broken_line):
    """Both dumps of one shape: the big one, and its first small_events alerts as the small one. Around the alerts
    they hold what a journal keeps: Falco's start banners, and at every restart (each 20,000 alerts) the banners
    again and a line the crash cut (broken_line). Yields write(line, index), which writes the alert of that index
    with the restart's lines before it where one falls."""
    with open(path, "w", encoding="utf-8") as big, open(small_path, "w", encoding="utf-8") as small:
        def put(line, index):
            big.write(line)
            if index < small_events:
                small.write(line)

        def write(line, index):
            if index % 20000 == 0 and index:
                for banner in BANNERS[:4]:
                    put(banner + "\n", index)
                put(broken_line, index)
            put(line, index)

        for banner in BANNERS:
            put(banner + "\n", 0)
        yield write


def generate(path, small_path, events, small_events, seed=5):
    """Write the dump; return the expected per-rule counts of both files."""
    rng = random.Random(seed)
    templates, origin = load_templates()
    hosts = ["web-%02d" % n for n in range(1, 9)] + ["db-01", "db-02", "build-01", "pi-garage"]
    start_ns = 1795783699_000000000
    step_ns = 7 * 86400 * 10**9 // max(events, 1)  # a week of alerts
    expected = collections.Counter()
    expected_small = collections.Counter()
    dumps = json.dumps
    broken = '{"output":"12:00:00.000000000: Warning truncated by a crash\n'
    with journal_dumps(path, small_path, small_events, broken) as write:
        for index in range(events):
            if index % 100000 == 0:
                # Drawn in chunks, so that the generator's own memory does not grow with N.
                rule_choices = rng.choices(range(len(RULES)), weights=RULE_WEIGHTS, k=100000)
                actor_choices = rng.choices(range(len(ACTORS)), weights=ACTOR_WEIGHTS, k=100000)
            template = templates[index % len(templates)]
            rule_index, actor_index = rule_choices[index % 100000], actor_choices[index % 100000]
            rule, priority, text = RULES[rule_index]
            name, exepath, parent, cmdline = ACTORS[actor_index]
            if rng.random() < 0.02:
                # Some actors never repeat: scripts in random temporary paths.
                cmdline = "%s /tmp/tmp.%08x/run.sh" % (name, rng.getrandbits(32))
            repository, tag = IMAGES[(index * 7 + actor_index) % len(IMAGES)]
            user, uid, loginuid = USERS[(actor_index + rule_index) % len(USERS)]
            file_name = FILES[(actor_index * 3 + rule_index) % len(FILES)]
            event_ns = start_ns + index * step_ns + rng.randrange(step_ns or 1)
            seconds, nanos = divmod(event_ns, 10**9)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            clock = time.strftime("%H:%M:%S", time.gmtime(seconds))
            container_id = "host" if repository is None else "%012x" % rng.getrandbits(48)
            fields = dict(template.get("output_fields") or {})
            fields.update({
                "container.id": container_id,
                "container.image.repository": repository,
                "container.image.tag": tag,
                "container.name": None if repository is None else "svc_%d" % rng.randrange(1000),
                "evt.time": event_ns,
                "fd.name": file_name,
                "proc.cmdline": cmdline,
                "proc.exepath": exepath,
                "proc.name": name,
                "proc.pname": parent,
                "user.loginuid": loginuid,
                "user.name": user,
                "user.uid": uid,
            })
            output = (
                "%s.%09d: %s %s | file=%s evt_type=%s user=%s user_uid=%d user_loginuid=%d process=%s "
                "proc_exepath=%s parent=%s command=%s terminal=0 container_id=%s container_name=%s "
                "container_image_repository=%s container_image_tag=%s k8s_pod_name=<NA> k8s_ns_name=<NA>"
                % (clock, nanos, priority, text, file_name, fields.get("evt.type", "openat"), user, uid, loginuid,
                   name, exepath, parent, cmdline, container_id, fields["container.name"] or "<NA>",
                   repository or "<NA>", tag or "<NA>")
            )
            event = {
                "output": output,
                "output_fields": fields,
                "priority": priority,
                "rule": rule,
                "source": template.get("source", "syscall"),
                "tags": template.get("tags", []),
                "time": "%s.%09dZ" % (stamp, nanos),
            }
            if index % 10 != 0:
                # One host in ten still runs a Falco without the hostname field (< 0.32).
                event["hostname"] = hosts[(index // 7 + actor_index) % len(hosts)]
            write(dumps(event, separators=(",", ":")) + "\n", index)
            expected[rule] += 1
            if index < small_events:
                expected_small[rule] += 1
    return expected, expected_small, origin


# How often each recorded alert is written in the recorded shape: the sensitive-file read is the noisy one.
RECORDED_WEIGHTS = {
    "Read sensitive file untrusted": 12,
    "Write below binary dir": 2,
    "Launch Excessively Capable Container": 3,
    "Launch Sensitive Mount Container": 3,
}


def load_recorded():
    """The recorded Falco 0.44.1 alerts as parsed objects, or (None, reason) when ../shared is not there."""
    alerts = []
    for path in sorted(RECORDED_DIR.glob("*alerts.jsonl")) + sorted(RECORDED_DIR.glob("*events.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                alerts.append(json.loads(line))
    if not alerts:
        return None, "no recorded alerts in %s (../shared/upstream/recorded is absent)" % RECORDED_DIR
    return alerts, "recorded Falco 0.44.1 alerts from %s" % RECORDED_DIR


def falco_line(alert):
    """An alert as Falco 0.44 writes it: keys sorted, no spaces (the recorded lines are exactly this)."""
    return json.dumps(alert, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def generate_recorded(path, small_path, events, small_events, alerts, seed=7):
    """Write a dump of the recorded alerts themselves; return the expected per-rule counts of both files.

    Each alert keeps every key and output field Falco wrote; what changes is what changes between real alerts:
    the host, the time (also in output and evt.time), the container id, and for one alert in fifty the command
    line (a one-off script, so the fingerprint table fills up as on a real fleet).
    """
    rng = random.Random(seed)
    weights = [RECORDED_WEIGHTS.get(alert["rule"], 1) for alert in alerts]
    hosts = ["web-%02d" % n for n in range(1, 9)] + ["db-01", "db-02", "build-01", "pi-garage"]
    start_ns = 1795783699_000000000
    step_ns = 7 * 86400 * 10**9 // max(events, 1)
    expected = collections.Counter()
    expected_small = collections.Counter()
    broken = '{"hostname":"web-01","output":"12:00:00.000000000: Warning truncated by a crash\n'
    with journal_dumps(path, small_path, small_events, broken) as write:
        for index in range(events):
            if index % 100000 == 0:
                choices = rng.choices(range(len(alerts)), weights=weights, k=100000)
            recorded = alerts[choices[index % 100000]]
            alert = dict(recorded)
            fields = dict(recorded["output_fields"])
            event_ns = start_ns + index * step_ns + rng.randrange(step_ns or 1)
            seconds, nanos = divmod(event_ns, 10**9)
            clock = "%s.%09d" % (time.strftime("%H:%M:%S", time.gmtime(seconds)), nanos)
            output = clock + recorded["output"][len(clock):]
            old_id = fields.get("container.id")
            if old_id and rng.random() < 0.3:
                fields["container.id"] = "%012x" % rng.getrandbits(48)
                output = output.replace("container_id=%s" % old_id, "container_id=%s" % fields["container.id"])
            if rng.random() < 0.02:
                cmdline = "%s /tmp/tmp.%08x/run.sh" % (fields.get("proc.name", "sh"), rng.getrandbits(32))
                output = output.replace("command=%s " % fields["proc.cmdline"], "command=%s " % cmdline)
                fields["proc.cmdline"] = cmdline
            fields["evt.time"] = event_ns
            alert["hostname"] = hosts[(index // 7 + choices[index % 100000]) % len(hosts)]
            alert["output"] = output
            alert["output_fields"] = fields
            alert["time"] = "%s.%09dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)), nanos)
            write(falco_line(alert), index)
            expected[alert["rule"]] += 1
            if index < small_events:
                expected_small[alert["rule"]] += 1
    return expected, expected_small


class BusyCore:
    """A CPU burner on one core while the tools run, as on a machine where other work holds a core."""

    def __init__(self, enabled):
        self.process = None
        if enabled:
            self.process = subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"])

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


REPEAT = 1


def run_timed(command, shell=False):
    """Best wall seconds and best CPU seconds (the command and all it started) of REPEAT runs, and the output."""
    best_wall = best_cpu = float("inf")
    for _attempt in range(REPEAT):
        cpu_before = children_cpu_seconds()
        started = time.perf_counter()
        result = subprocess.run(command, shell=shell, check=True, stdout=subprocess.PIPE, text=True)
        best_wall = min(best_wall, time.perf_counter() - started)
        best_cpu = min(best_cpu, children_cpu_seconds() - cpu_before)
    return best_wall, best_cpu, result.stdout


def parse_uniq(text):
    counts = {}
    for line in text.splitlines():
        count, _space, rule = line.strip().partition(" ")
        counts[rule] = int(count)
    return counts


def check(label, got, expected):
    if dict(got) != dict(expected):
        raise SystemExit("%s counted differently from the generator: %r != %r" % (label, dict(got), dict(expected)))


def tree_memory_kb(root_pid):
    """(PSS of a process and its descendants, {descendant pid: its private memory}), in kB.

    PSS counts a shared page once, split among the processes that map it. A descendant's private memory
    (Private_Clean + Private_Dirty) is what no other process maps: the pages a worker still shares after fork are
    mapped by the process that forked it too, and counted in that one's RSS.
    """
    pss = 0
    private = {}
    pending = [root_pid]
    seen = set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open("/proc/%d/smaps_rollup" % pid, encoding="ascii") as handle:
                for text in handle:
                    name, _colon, value = text.partition(":")
                    if name == "Pss":
                        pss += int(value.split()[0])
                    elif name in ("Private_Clean", "Private_Dirty") and pid != root_pid:
                        private[pid] = private.get(pid, 0) + int(value.split()[0])
            for task in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, task), encoding="ascii") as handle:
                    pending.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return pss, private


def run_ours(path, workers):
    """Best times of REPEAT runs of our triage (one process, through the module_utils) with the highest memory seen."""
    return best_of([run_ours_once(path, workers) for _attempt in range(REPEAT)])


def run_command(path, workers):
    """Best times of REPEAT runs of tools/falco-triage as a new user runs it, with the highest memory seen."""
    return best_of([run_command_once(path, workers) for _attempt in range(REPEAT)])


def best_of(reports):
    best = dict(reports[0])
    for key in ("wall", "cpu"):
        best[key] = min(report[key] for report in reports)
    for key in ("rss_self_kb", "rss_children_kb", "private_children_kb", "memory_bound_mb", "pss_peak_mb"):
        best[key] = max(report[key] for report in reports)
    return best


def run_ours_once(path, workers):
    output, _errors, measured = run_sampled([sys.executable, "-c", OURS, str(MODULE_UTILS), str(path), str(workers)])
    report = json.loads(output)
    report.update(measured)
    add_memory_bound(report)
    return report


def run_command_once(path, workers):
    command = [sys.executable, "-c", COMMAND, str(TOOL), str(path), "--json", "--workers", str(workers)]
    output, errors, measured = run_sampled(command)
    summary = json.loads(output)
    report = json.loads(errors.strip().splitlines()[-1])
    report.update(measured)
    add_memory_bound(report)
    per_rule = collections.Counter()
    for row in summary["rule_totals"]["top"]:
        per_rule[row["rule"]] += row["count"]
    if sum(per_rule.values()) != summary["alerts"]:
        raise SystemExit("tools/falco-triage --json listed fewer rules than the input has: raise its --top")
    report["per_rule"] = dict(per_rule)
    return report


def run_sampled(command):
    """Run a command, sampling its process tree's memory every 20 ms: (stdout, stderr, wall, CPU and memory)."""
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    peak_pss_kb = 0
    peak_private_kb = {}
    # Files, not pipes: a pipe nobody reads while the loop below samples could fill up and stall the command.
    with tempfile.TemporaryFile("w+") as output, tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=output, stderr=errors, text=True)
        while process.poll() is None:
            pss, private = tree_memory_kb(process.pid)
            peak_pss_kb = max(peak_pss_kb, pss)
            for pid, kb in private.items():
                peak_private_kb[pid] = max(peak_private_kb.get(pid, 0), kb)
            time.sleep(0.02)
        wall = time.perf_counter() - started
        cpu = children_cpu_seconds() - cpu_before
        output.seek(0)
        errors.seek(0)
        out, err = output.read(), errors.read()
    if process.returncode:
        raise SystemExit("our triage failed with exit code %d: %s" % (process.returncode, err[-2000:]))
    return out, err, {"wall": wall, "cpu": cpu, "pss_peak_mb": peak_pss_kb / 1024.0,
                      "private_children_kb": sum(peak_private_kb.values())}


def add_memory_bound(report):
    """The memory goal's figure: the process's own peak RSS plus each worker's peak private memory.

    An upper bound of the pages the run held at any one time: a worker's other pages are shared with the process
    that forked it and are in that one's RSS. Adding the workers' whole RSS instead would count every page shared
    after fork once more per worker (the interpreter and the modules: about 15 MB each).
    """
    report["memory_bound_mb"] = (report["rss_self_kb"] + report["private_children_kb"]) / 1024.0


def callgrind_instructions(command):
    """Instructions the command executes (callgrind's total): the same however busy the machine is."""
    # A fixed hash seed: with Python's random one, the same run's count moves by about 1 % from dict layouts.
    environment = dict(os.environ, PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=%s/out" % scratch] + command,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True,
                                env=environment)
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def write_sample(shape, path, alerts):
    """A dump of ``alerts`` alerts of the shape (banners and broken lines included, as in the timed runs)."""
    unused = path.with_suffix(".unused")
    if shape == "recorded":
        recorded, _origin = load_recorded()
        generate_recorded(path, unused, alerts, 0, recorded)
    else:
        generate(path, unused, alerts, 0)
    unused.unlink()


def instructions_per_alert(workdir, alerts, shape):
    """Instructions per further alert of each jq program and of our triage in one process, on one shape.

    Each program runs on N and on 2N alerts; the difference over N is what one more alert costs. Start-up
    (interpreter, imports, jq compiling its program) and first-use costs (the summary's imports, its first table
    rows) are in both runs and cancel out, for jq and for the triage alike. A run on an empty input, subtracted
    instead, leaves the first-use costs in the count, spread over N alerts only: at N = 20,000 they added about
    7,800 instructions per alert to the triage on the generated shape, which a million-alert dump spreads 50 times
    thinner.
    """
    single, double = workdir / ("instructions-%s-1.txt" % shape), workdir / ("instructions-%s-2.txt" % shape)
    write_sample(shape, single, alerts)
    write_sample(shape, double, 2 * alerts)
    commands = dict(JQ_PROCESSES)
    commands["ours-1"] = [sys.executable, "-c", OURS, str(MODULE_UTILS)]
    per_alert = {}
    try:
        for label, command in commands.items():
            extra = ["1"] if label == "ours-1" else []
            more = callgrind_instructions(command + [str(double)] + extra)
            less = callgrind_instructions(command + [str(single)] + extra)
            per_alert[label] = (more - less) / float(alerts)
    finally:
        single.unlink()
        double.unlink()
    return per_alert


def print_instructions(workdir, alerts, shapes):
    for shape in shapes:
        if shape == "recorded":
            recorded, origin = load_recorded()
            if recorded is None:
                print("[recorded] instructions not counted: %s" % origin)
                continue
        per_alert = instructions_per_alert(workdir, alerts, shape)
        cheapest_jq = min(per_alert[label] for label in JQ_PROCESSES)
        print("instructions per alert (callgrind, %d more alerts, %s shape): %s; jq/ours-1=%.2fx" % (
            alerts, shape, ", ".join("%s %.0f" % item for item in per_alert.items()), cheapest_jq / per_alert["ours-1"]))


def time_jq(big, expected, events, rates, cpu_rates):
    if not shutil.which("jq"):
        print("jq not found: skipping it")
        return
    version = subprocess.run(["jq", "--version"], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    for label, command in JQ_PIPELINES.items():
        if isinstance(command, list):
            seconds, cpu, out = run_timed(command + [str(big)])
            counts = json.loads(out)
        else:
            seconds, cpu, out = run_timed(command.format(path=str(big)), shell=True)
            counts = parse_uniq(out)
        check(label, counts, expected)
        rates[label] = events / seconds
        cpu_rates[label] = events / cpu
        print("%-14s %9.0f alerts/s  %9.0f alerts/CPU-s  (%.1f s, %s)" % (
            label, rates[label], cpu_rates[label], seconds, version))


def goal_verdict(ratio, peak_mb):
    """The goal's verdict: without a jq run (--skip-jq) there is no speed to compare, and the verdict says so."""
    if peak_mb >= 100:
        return "NOT met (memory)"
    if ratio is None:
        return "memory met, speed not compared (jq not run)"
    return "met" if ratio >= 4 else "NOT met"


def measure_shape(shape, big, small, expected, expected_small, args):
    """Time every tool on one input shape; return the summary line's values."""
    events = sum(expected.values())
    rates = {}
    cpu_rates = {}
    # Other work on the machine slows every tool down, not equally: say how busy it was.
    print("[%s] load average before timing: %.2f %.2f %.2f on %d cores; best of %d run(s) per tool%s" % (
        (shape,) + os.getloadavg() + (os.cpu_count() or 1, REPEAT, "; one core kept busy" if args.busy_core else "")))
    if not args.skip_jq:
        time_jq(big, expected, events, rates, cpu_rates)
    if not args.skip_plain:
        seconds, cpu, out = run_timed([sys.executable, "-c", PLAIN_LOOP, str(big)])
        check("plain", json.loads(out), expected)
        rates["plain"] = events / seconds
        cpu_rates["plain"] = events / cpu
        print("%-14s %9.0f alerts/s  %9.0f alerts/CPU-s  (%.1f s, stdlib json loop)" % (
            "plain", rates["plain"], cpu_rates["plain"], seconds))

    single = run_ours(big, 1)
    check("ours-1", single["per_rule"], expected)
    rates["ours-1"] = events / single["wall"]
    cpu_rates["ours-1"] = events / single["cpu"]
    tail = " (approximate tail)" if single["approximate"] else ""
    print("%-14s %9.0f alerts/s  %9.0f alerts/CPU-s  (%.1f s, 1 process, %s, %d fingerprints%s, %d suggested "
          "exceptions, peak RSS %.1f MB)" % (
              "ours-1", rates["ours-1"], cpu_rates["ours-1"], single["wall"], single["parser"],
              single["fingerprints"], tail, single["suggested"], single["rss_self_kb"] / 1024.0))

    # The goal's run: the command a new user types, with its default of processes unless --workers says otherwise.
    command = run_command(big, args.workers)
    check("command", command["per_rule"], expected)
    rates["command"] = events / command["wall"]
    cpu_rates["command"] = events / command["cpu"]
    print("%-14s %9.0f alerts/s  %9.0f alerts/CPU-s  (%.1f s, tools/falco-triage --json --workers %d)" % (
        "command", rates["command"], cpu_rates["command"], command["wall"], args.workers))
    small_run = run_command(small, args.workers)
    check("command-small", small_run["per_rule"], expected_small)
    for label, report, count in (("small", small_run, args.small_events), ("large", command, args.events)):
        print("memory %-7s %8d alerts: process %.1f MB, largest worker %.1f MB RSS, workers' private %.1f MB, "
              "bound %.1f MB, sampled PSS peak %.1f MB" % (
                  label, count, report["rss_self_kb"] / 1024.0, report["rss_children_kb"] / 1024.0,
                  report["private_children_kb"] / 1024.0, report["memory_bound_mb"], report["pss_peak_mb"]))
    peak = max(single["memory_bound_mb"], command["memory_bound_mb"], small_run["memory_bound_mb"])
    print("[%s] load average after timing: %.2f %.2f %.2f" % ((shape,) + os.getloadavg()))

    jq_labels = [label for label in rates if label.startswith("jq")]
    best_jq = max(jq_labels, key=lambda label: rates[label]) if jq_labels else None
    # Per CPU-second, against jq's pipeline that needed the least CPU: what one core each would give.
    cheapest_jq = max(jq_labels, key=lambda label: cpu_rates[label]) if jq_labels else None

    def ratio(label, table, reference):
        return table[label] / table[reference] if reference else float("nan")

    print("SUMMARY shape=%s events=%d jq=%s:%.0f/s command=%.0f/s command/jq=%.2fx ours-1/jq=%.2fx "
          "per-CPU-second command/%s=%.2fx ours-1/%s=%.2fx peak_mb=%.1f busy_core=%s "
          "goal(>=4x jq's alerts/s as a new user runs it, <100 MB)=%s" % (
              shape, events, best_jq, rates.get(best_jq, float("nan")), rates["command"],
              ratio("command", rates, best_jq), ratio("ours-1", rates, best_jq), cheapest_jq,
              ratio("command", cpu_rates, cheapest_jq), cheapest_jq, ratio("ours-1", cpu_rates, cheapest_jq), peak,
              "yes" if args.busy_core else "no",
              goal_verdict(ratio("command", rates, best_jq) if best_jq else None, peak)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000000, help="alerts in the large input (default 1000000)")
    parser.add_argument("--small-events", type=int, default=250000,
                        help="alerts in the small input used to show memory does not grow (default 250000)")
    parser.add_argument("--shapes", default="generated,recorded",
                        help="input shapes, comma-separated: generated, recorded (default both)")
    parser.add_argument("--workers", type=int, default=2,
                        help="--workers of the tools/falco-triage run (default 2, the command's own default)")
    parser.add_argument("--busy-core", action="store_true",
                        help="keep one core busy with a CPU burner while the tools run")
    parser.add_argument("--tmpdir", help="where to write the inputs (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the generated inputs")
    parser.add_argument("--skip-jq", action="store_true", help="do not time jq")
    parser.add_argument("--skip-plain", action="store_true", help="do not time the plain Python loop")
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="also count instructions per alert with callgrind: runs on N and 2N alerts of each shape "
                             "(needs valgrind and jq)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each tool this many times and keep its best time: other load on the machine "
                             "only ever slows a run down (default 1)")
    args = parser.parse_args()
    global REPEAT  # pylint: disable=global-statement
    REPEAT = max(1, args.repeat)
    args.small_events = min(args.small_events, args.events)
    shapes = [shape.strip() for shape in args.shapes.split(",") if shape.strip()]
    unknown = sorted(set(shapes) - {"generated", "recorded"})
    if unknown:
        parser.error("--shapes: unknown shape(s) %s; use generated, recorded" % ", ".join(unknown))

    workdir = Path(tempfile.mkdtemp(prefix="falco-triage-bench-", dir=args.tmpdir))
    try:
        for shape in shapes:
            big = workdir / ("falco-dump-%s.txt" % shape)
            small = workdir / ("falco-dump-%s-small.txt" % shape)
            started = time.perf_counter()
            if shape == "recorded":
                alerts, origin = load_recorded()
                if alerts is None:
                    print("[recorded] skipped: %s" % origin)
                    continue
                expected, expected_small = generate_recorded(big, small, args.events, args.small_events, alerts)
            else:
                expected, expected_small, origin = generate(big, small, args.events, args.small_events)
            print("[%s] input: %d alerts (%.0f MB), %d alerts (%.0f MB); %s; generated in %.1f s" % (
                shape, args.events, big.stat().st_size / 1e6, args.small_events, small.stat().st_size / 1e6, origin,
                time.perf_counter() - started))
            busy = BusyCore(args.busy_core)
            try:
                measure_shape(shape, big, small, expected, expected_small, args)
            finally:
                busy.stop()
            if not args.keep:
                big.unlink()
                small.unlink()
        if args.instructions and shutil.which("valgrind") and shutil.which("jq"):
            print_instructions(workdir, args.instructions, shapes)
        elif args.instructions:
            print("valgrind or jq not found: instructions not counted")
    finally:
        if args.keep:
            print("inputs kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
