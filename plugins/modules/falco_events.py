#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summarise the Falco JSON alerts of a host, from journald or a file, or of a central store of per-host files."""

from __future__ import annotations

__metaclass__ = type

DOCUMENTATION = r"""
module: falco_events
short_description: Summarise Falco alerts of a host and suggest rule exceptions
version_added: 0.1.0
description:
  - Reads the JSON alerts Falco wrote to journald or to a file, streaming, with bounded memory, and returns
    counts per host, rule and priority, the most frequent alert fingerprints and, on request, exceptions in
    the format of the falco role's C(falco_rule_exceptions) variable.
  - Lines that are not Falco JSON alerts (startup banners, broken or oversized lines, other JSON) are skipped
    and counted by reason.
  - A fingerprint is the rule plus the output fields that name the actor (process, parent, command line,
    image, file, user, namespace); volatile values such as pids, times, container ids and names, socket
    tuples are left out. See C(docs/tuning.md) in the collection.
  - Alerts of Falco before 0.32 carry no host name; O(host) is used for them (with O(source=directory), the host
    name in the file's name).
  - With O(source=directory) the module reads the central store the collection's C(event_collector) role writes
    (one C(HOST.jsonl) file per host and its rotations) and returns, besides the merged counts, one summary per host
    in RV(per_host), the same summary a run on that host with O(source=file) would return for the same alerts.
  - The module only reads; it never reports a change and is safe in check mode.
  - Per-host results can be combined on the controller with the collection's C(merge_summaries) logic in
    C(plugins/module_utils/falco_events_merge.py) or with C(tools/falco-triage --merge).
author:
  - fleetwatch engineers (!UNKNOWN)
options:
  source:
    description:
      - Where to read alerts from.
      - V(journald) runs C(journalctl -o cat) for the units in O(units).
      - V(file) reads O(path), a file Falco writes with C(file_output) or a saved journal dump; a file that is
        still being written is read up to its size when it was opened.
      - V(directory) reads O(path), a directory of per-host files named C(HOST.jsonl), with their rotations
        C(HOST.jsonl.1), C(HOST.jsonl.2.gz) or C(HOST.jsonl-DATE[.gz]) (read oldest first); other files are ignored.
    type: str
    choices: [journald, file, directory]
    default: journald
  units:
    description:
      - Systemd units whose journal is read when O(source=journald).
      - The default covers the unit names of every Falco package generation (a single C(falco) unit up to
        0.38, one unit per driver later, C(falco-bpf) until 0.43). Units that do not exist add nothing.
    type: list
    elements: str
    default: [falco, falco-modern-bpf, falco-kmod, falco-bpf, falco-custom]
  path:
    description:
      - File to read when O(source=file), directory when O(source=directory). Required in both cases.
    type: path
  hosts:
    description:
      - With O(source=directory), read only the files of these hosts; hosts without a file are returned in
        RV(missing_hosts). Default is every host in the directory.
    type: list
    elements: str
  host:
    description:
      - Host name given to alerts that carry none (Falco before 0.32).
      - Defaults to the name the managed host reports for itself; pass C({{ inventory_hostname }}) to
        line results up with the inventory.
    type: str
  since:
    description:
      - Keep alerts at or after this time. ISO8601 (V(2024-05-01T19:30:00Z); no offset means UTC),
        V(now), or relative V(-30m), V(-24h), V(-7d), V(-1w).
      - With O(source=journald) it is also passed to C(journalctl --since), so older journal entries are not read.
    type: str
  until:
    description:
      - Keep alerts at or before this time; same forms as O(since).
      - With O(source=journald) it is passed to C(journalctl --until) with one minute of margin, because an
        alert reaches the journal shortly after the time it carries.
    type: str
  min_priority:
    description:
      - Keep alerts of this priority or a more severe one.
    type: str
    choices: [emergency, alert, critical, error, warning, notice, informational, info, debug]
  rules:
    description:
      - Keep only alerts of these rule names.
    type: list
    elements: str
  top:
    description:
      - Number of rows kept in each table of the result; the rest is counted in its C(others).
    type: int
    default: 20
  max_line_bytes:
    description:
      - Lines longer than this are skipped and counted as C(oversized), without being read into memory.
    type: int
    default: 1048576
  fingerprint_fields:
    description:
      - Output fields that make up a fingerprint, besides the rule.
      - Only change this when your rules print other fields that name the actor.
    type: list
    elements: str
    default: [proc.name, proc.exepath, proc.pname, proc.cmdline, container.image.repository,
              container.image.tag, fd.name, user.name, k8s.ns.name]
  workers:
    description:
      - Processes used for a large regular file (O(source=file)). The default of one leaves the other cores
        to Falco itself on a production host.
    type: int
    default: 1
  suggest:
    description:
      - Also return suggested exceptions for frequent, long-lived, low-priority fingerprints.
    type: bool
    default: false
  suggest_min_count:
    description:
      - A fingerprint needs at least this many alerts to be suggested.
    type: int
    default: 10
  suggest_min_span:
    description:
      - Seconds between the first and the last alert of a fingerprint for it to be suggested; a one-off burst
        is not a habit.
    type: int
    default: 3600
  suggest_max_priority:
    description:
      - Most severe priority for which exceptions are suggested; more severe alerts are never suggested.
    type: str
    choices: [emergency, alert, critical, error, warning, notice, informational, info, debug]
    default: warning
notes:
  - Falco 0.44 units send their standard output to null; alerts reach journald through C(syslog_output)
    (with C(json_output) enabled), or a file through C(file_output).
  - The result never contains the alerts themselves, only bounded tables and one sample output line per
    fingerprint.
attributes:
  check_mode:
    description: Can run in check mode and return the same result, since it only reads.
    support: full
  diff_mode:
    description: Nothing is changed, so there is no diff.
    support: none
"""

EXAMPLES = r"""
- name: Summarise the last day of Falco alerts from journald
  fleetwatch.falco_stack.falco_events:
    since: -24h
    host: "{{ inventory_hostname }}"
  register: falco_summary

- name: Show the noisiest rules
  ansible.builtin.debug:
    var: falco_summary.rules.top

- name: Suggest exceptions from Falco's JSON file output
  fleetwatch.falco_stack.falco_events:
    source: file
    path: /var/log/falco/events.json
    min_priority: notice
    suggest: true
    suggest_min_count: 50
    suggest_min_span: 86400
  register: falco_tuning

- name: Summarise the central store of the event_collector role, for the hosts of group falco
  fleetwatch.falco_stack.falco_events:
    source: directory
    path: /var/log/fleetwatch/falco-events
    hosts: "{{ groups['falco'] }}"
    since: -24h
  register: falco_central

- name: Write the suggestions for review, next to the host's variables on the controller
  ansible.builtin.copy:
    content: "{{ {'falco_rule_exceptions': falco_tuning.suggested_exceptions} | to_nice_yaml }}"
    dest: "review/{{ inventory_hostname }}-falco-exceptions.yml"
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
source:
  description: Where the alerts were read from.
  returned: always
  type: str
  sample: journald
per_host:
  description:
    - With O(source=directory), one summary per host read, keyed by the host name of its files, each with the
      same keys as this module's result for one host (C(format) to C(fingerprints)). The top-level counts and tables
      are these summaries merged.
  returned: when O(source=directory)
  type: dict
missing_hosts:
  description: Hosts named in O(hosts) that have no file in the directory.
  returned: when O(source=directory)
  type: list
  elements: str
  sample: [web-03]
files_read:
  description: Number of files read from the directory.
  returned: when O(source=directory)
  type: int
  sample: 4
command:
  description: The journalctl command line that was run.
  returned: when O(source=journald)
  type: list
  elements: str
  sample: [/usr/bin/journalctl, -o, cat, --no-pager, -q, -u, falco]
format:
  description: Version of the layout of this result, for tools that read saved summaries.
  returned: always
  type: int
  sample: 1
parser:
  description: The JSON parser used, V(orjson) when the host has it, else V(json).
  returned: always
  type: str
  sample: orjson
lines_read:
  description: Lines read, alerts and skipped lines alike.
  returned: always
  type: int
  sample: 1523
alerts:
  description: Falco alerts found (C(lines_read) minus the skipped lines).
  returned: always
  type: int
  sample: 1510
matched:
  description: Alerts that passed the filters (C(alerts) minus C(filtered_out)); every table counts these.
  returned: always
  type: int
  sample: 1400
filtered_out:
  description: Alerts left out by O(since), O(until), O(min_priority) or O(rules).
  returned: always
  type: int
  sample: 110
skipped_lines:
  description:
    - Lines that were not alerts, by reason. C(not_json) banners and other text, C(truncated_json) a line that
      starts like JSON but does not parse, C(invalid_utf8), C(oversized) longer than O(max_line_bytes),
      C(not_an_alert) valid JSON without C(rule), C(priority) and C(output).
  returned: always
  type: dict
  sample: {not_json: 12, truncated_json: 1, invalid_utf8: 0, oversized: 0, not_an_alert: 0}
skipped_examples:
  description: The first skipped line of each reason, cut to 160 characters, to tell why nothing matched.
  returned: always
  type: dict
  sample: {not_json: "Falco version: 0.44.1 (x86_64)"}
first_seen:
  description: Time of the oldest matched alert (UTC, nanoseconds).
  returned: always
  type: str
  sample: "2026-11-27T12:48:19.235783172Z"
last_seen:
  description: Time of the newest matched alert.
  returned: always
  type: str
  sample: "2026-11-27T12:50:53.208375926Z"
approximate:
  description: True when a table outgrew its bound and its least frequent rows were dropped; totals stay exact.
  returned: always
  type: bool
  sample: false
filters:
  description: The filters applied, times resolved to UTC.
  returned: always
  type: dict
  sample: {since: "2026-11-26T12:00:00.000000000Z", until: null, min_priority: null, rules: null}
fingerprint_fields:
  description: The output fields fingerprints were built from.
  returned: always
  type: list
  elements: str
by_priority:
  description: Matched alerts per priority, most severe first.
  returned: always
  type: dict
  sample: {Error: 3, Warning: 120, Notice: 1200}
by_host:
  description: Matched alerts per host; C(top) rows, C(distinct) hosts and what the cut left in C(others).
  returned: always
  type: dict
  sample: {top: [{host: web-01, count: 1323}], distinct: 1, others: {entries: 0, events: 0}}
rule_totals:
  description:
    - Matched alerts per rule and priority over all hosts, most frequent first; C(host_count) is the number of
      hosts with that rule and priority. Host/rule/priority rows dropped from a full table are counted in
      C(others).
  returned: always
  type: dict
  sample:
    top: [{rule: Read sensitive file untrusted, priority: Warning, count: 120, host_count: 1}]
    distinct: 3
    others: {entries: 0, events: 0}
rules:
  description: Matched alerts per host, rule and priority, most frequent first.
  returned: always
  type: dict
  sample:
    top: [{host: web-01, rule: Read sensitive file untrusted, priority: Warning, count: 120}]
    distinct: 4
    others: {entries: 0, events: 0}
fingerprints:
  description:
    - Matched alerts per fingerprint, most frequent first. Each row has C(id) (stable across hosts), C(rule),
      C(priority), C(count), C(first_seen), C(last_seen), C(fields), C(hosts), C(host_count) and one
      C(sample_output).
  returned: always
  type: dict
  sample:
    top:
      - id: 93d22fd4d320
        rule: Read sensitive file untrusted
        priority: Warning
        count: 120
        first_seen: "2026-11-20T08:00:01.000000000Z"
        last_seen: "2026-11-27T12:50:53.208375926Z"
        fields: {proc.name: cat, proc.pname: bash, fd.name: /etc/shadow, user.name: root}
        hosts: [web-01]
        host_count: 1
        hosts_truncated: false
        sample_output: "12:50:53.208375926: Warning Sensitive file opened for reading by non-trusted program | ..."
    distinct: 7
    others: {entries: 0, events: 0}
suggested_exceptions:
  description:
    - Exceptions in the falco role's C(falco_rule_exceptions) format, one per qualifying fingerprint, at most
      O(top). Review before use.
  returned: when O(suggest=true)
  type: list
  elements: dict
  sample:
    - rule: Read sensitive file untrusted
      name: triage_cat_bash_93d22fd4
      fields: [proc.name, proc.exepath, proc.pname, proc.cmdline, fd.name, user.name]
      comps: ["=", "=", "=", "=", "=", "="]
      values: [[cat, /usr/bin/cat, bash, cat /etc/shadow, /etc/shadow, root]]
suggestion_evidence:
  description: Why each suggestion was made (count, span, hosts, fields left out), in the same order.
  returned: when O(suggest=true)
  type: list
  elements: dict
suggestions_not_made:
  description: Fingerprints that were not suggested, by reason.
  returned: when O(suggest=true)
  type: dict
  sample: {too_few: 3, too_short: 1, too_severe: 2, no_safe_anchor: 0, over_limit: 0}
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.falco_events import (
    DEFAULT_FINGERPRINT_FIELDS,
    FalcoTriage,
    FalcoTriageError,
    epoch_seconds,
    feed_command_output,
    merge_summaries,
    suggest_exceptions,
    triage_directory,
    triage_file,
)

FALCO_UNITS = ["falco", "falco-modern-bpf", "falco-kmod", "falco-bpf", "falco-custom"]
PRIORITY_CHOICES = ["emergency", "alert", "critical", "error", "warning", "notice", "informational", "info", "debug"]
# An alert is written to the journal a little after the time it carries; --until gets this much slack and
# the exact cut is made on the alert's own time.
JOURNAL_UNTIL_SLACK_SECONDS = 60


def journalctl_command(journalctl, units, since, until):
    """journalctl arguments for the alerts of ``units``; since/until are canonical UTC times or None."""
    command = [journalctl, "-o", "cat", "--no-pager", "-q"]
    for unit in units:
        command.extend(["-u", unit])
    # "@<epoch>" is understood by every systemd version and has no timezone ambiguity.
    if since:
        command.append("--since=@%d" % int(epoch_seconds(since)))
    if until:
        command.append("--until=@%d" % (int(epoch_seconds(until)) + 1 + JOURNAL_UNTIL_SLACK_SECONDS))
    return command


def read_journal(module, triage, units):
    journalctl = module.get_bin_path("journalctl", required=True)
    command = journalctl_command(journalctl, units, triage.since, triage.until)
    returncode, stderr = feed_command_output(triage, command)
    if returncode != 0:
        module.fail_json(
            msg="journalctl exited with %d: %s" % (returncode, stderr or "no error output"),
            command=command,
            rc=returncode,
        )
    if stderr:
        # e.g. "No journal files were found." or missing permissions on some journal files
        module.warn("journalctl: %s" % stderr[:500])
    return command


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="str", choices=["journald", "file", "directory"], default="journald"),
            units=dict(type="list", elements="str", default=list(FALCO_UNITS)),
            path=dict(type="path"),
            hosts=dict(type="list", elements="str"),
            host=dict(type="str"),
            since=dict(type="str"),
            until=dict(type="str"),
            min_priority=dict(type="str", choices=PRIORITY_CHOICES),
            rules=dict(type="list", elements="str"),
            top=dict(type="int", default=20),
            max_line_bytes=dict(type="int", default=1048576),
            fingerprint_fields=dict(type="list", elements="str", default=list(DEFAULT_FINGERPRINT_FIELDS)),
            workers=dict(type="int", default=1),
            suggest=dict(type="bool", default=False),
            suggest_min_count=dict(type="int", default=10),
            suggest_min_span=dict(type="int", default=3600),
            suggest_max_priority=dict(type="str", choices=PRIORITY_CHOICES, default="warning"),
        ),
        required_if=[("source", "file", ["path"]), ("source", "directory", ["path"])],
        supports_check_mode=True,
    )
    params = module.params
    if params["top"] < 1:
        module.fail_json(msg="top: must be at least 1, got %d" % params["top"])
    if params["workers"] < 1:
        module.fail_json(msg="workers: must be at least 1, got %d" % params["workers"])
    if not params["units"] and params["source"] == "journald":
        module.fail_json(msg="units: name at least one systemd unit to read the journal of")

    options = dict(
        default_host=params["host"] or platform.node() or "unknown",
        since=params["since"],
        until=params["until"],
        min_priority=params["min_priority"],
        rules=params["rules"],
        fingerprint_fields=params["fingerprint_fields"],
        max_line_bytes=params["max_line_bytes"],
    )
    result = dict(changed=False, source=params["source"])
    triage = None
    try:
        if params["source"] == "directory":
            options.pop("default_host")
            store = triage_directory(params["path"], hosts=params["hosts"], workers=params["workers"],
                                     top=params["top"], **options)
            result.update(merge_summaries(list(store["per_host"].values()), top=params["top"]))
            result.pop("merged_summaries", None)
            result.update(per_host=store["per_host"], missing_hosts=store["missing_hosts"], files_read=store["files"])
        elif params["source"] == "file":
            path = params["path"]
            if not os.path.exists(path):
                module.fail_json(msg="path: %s does not exist" % path)
            if os.path.isdir(path):
                module.fail_json(msg="path: %s is a directory, not a file of Falco alerts" % path)
            if not os.access(path, os.R_OK):
                module.fail_json(msg="path: %s is not readable by this user" % path)
            triage = triage_file(path, workers=params["workers"], **options)
        else:
            triage = FalcoTriage(**options)
            result["command"] = read_journal(module, triage, params["units"])
    except FalcoTriageError as error:
        module.fail_json(msg=to_native(error))
    except (IOError, OSError) as error:
        module.fail_json(msg="cannot read the alerts: %s" % to_native(error))

    if triage is not None:
        result.update(triage.summary(top=params["top"]))
    if params["suggest"]:
        # A store is summarised host by host: suggestions come from the merged top fingerprints.
        records = triage.fingerprint_records() if triage is not None else result["fingerprints"]["top"]
        try:
            suggestions = suggest_exceptions(
                records,
                min_count=params["suggest_min_count"],
                min_span=params["suggest_min_span"],
                max_priority=params["suggest_max_priority"],
                limit=params["top"],
            )
        except FalcoTriageError as error:
            module.fail_json(msg=to_native(error))
        result["suggested_exceptions"] = suggestions["exceptions"]
        result["suggestion_evidence"] = suggestions["evidence"]
        result["suggestions_not_made"] = suggestions["not_suggested"]
    if result["alerts"] == 0 and result["skipped_lines"]["not_json"]:
        module.warn(
            "No Falco JSON alert among %d lines: is json_output enabled in falco.yaml? First line skipped: %r"
            % (result["lines_read"], result["skipped_examples"].get("not_json", ""))
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
