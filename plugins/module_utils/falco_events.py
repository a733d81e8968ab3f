# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming triage of Falco JSON alerts.

The single home of the parsing, filtering, aggregation, merging and exception-suggestion logic used by the
``falco_events`` module and the ``tools/falco-triage`` command. It reads bytes, keeps memory bounded whatever the
input size, and returns bounded summaries, never the alerts themselves.

Layout of the work:
  * ``FalcoTriage`` consumes lines (``feed_stream`` for a file object, ``feed_lines`` for an iterable) and keeps
    counters plus two bounded tables: alerts per (host, rule, priority) and alerts per fingerprint.
  * ``triage_file`` reads a regular file, in parallel byte ranges when asked, and merges the partial results;
    ``feed_command_output`` streams a command's output (journalctl) into a FalcoTriage; ``triage_directory``
    summarises each host of a central store, ``triage_store`` merges all of its hosts into one FalcoTriage.
  * ``FalcoTriage.summary`` cuts the tables to the top N entries; ``merge_summaries`` combines summaries of
    several hosts; ``suggest_exceptions`` turns frequent, long-lived, low-priority fingerprints into entries of the
    falco role's ``falco_rule_exceptions`` variable.
"""

from __future__ import annotations

__metaclass__ = type

import calendar
import datetime
import io
import json
import operator
import os
import re
import stat
import subprocess
import tempfile
import time

try:
    import orjson

    _json_loads = orjson.loads
    JSON_PARSER = "orjson"
except ImportError:  # pragma: no cover - depends on the host
    _json_loads = json.loads
    JSON_PARSER = "json"


PRIORITIES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")
_PRIORITY_RANK_BY_NAME = dict((name.lower(), rank) for rank, name in enumerate(PRIORITIES))
_PRIORITY_RANK_BY_NAME["info"] = PRIORITIES.index("Informational")
# Ranks of unknown priority names sort after every known one.
_UNKNOWN_PRIORITY_RANK = len(PRIORITIES)

SKIP_REASONS = ("not_json", "truncated_json", "invalid_utf8", "oversized", "not_an_alert")

# The output fields that name who did what: stable from one alert of the same actor to the next.
# Left out on purpose: pids, evt.time/evt.num, container.id/container.name (one value per container
# instance), k8s.pod.name (random suffix), user.uid/user.loginuid (uid repeats user.name; loginuid changes with
# whoever logged in, splitting one actor into many), proc.aname[N]/proc.pcmdline (ancestry with temporary
# names such as memfd:sealed-91), evt.type, proc.tty, thread.cap_permitted and container.mounts (describe the
# event, not the actor).
DEFAULT_FINGERPRINT_FIELDS = (
    "proc.name",
    "proc.exepath",
    "proc.pname",
    "proc.cmdline",
    "container.image.repository",
    "container.image.tag",
    "fd.name",
    "user.name",
    "k8s.ns.name",
)

# A suggested exception must name at least one of these, so it never silences a rule as a whole.
EXCEPTION_ANCHOR_FIELDS = ("proc.name", "proc.exepath", "proc.cmdline", "container.image.repository")

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
DEFAULT_TOP = 20
DEFAULT_MAX_FINGERPRINTS = 5000
DEFAULT_MAX_RULE_GROUPS = 5000
DEFAULT_SUGGEST_MIN_COUNT = 10
DEFAULT_SUGGEST_MIN_SPAN = 3600
DEFAULT_SUGGEST_MAX_PRIORITY = "warning"
MAX_HOSTS_PER_FINGERPRINT = 50
SAMPLE_OUTPUT_CHARS = 500
SKIPPED_EXAMPLE_CHARS = 160
READ_BLOCK_BYTES = 256 * 1024
# Below this size a process pool costs more than it saves.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024

_FIRST_SENTINEL = "~"  # sorts after any ISO8601 time
_LAST_SENTINEL = ""  # sorts before any ISO8601 time

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)
_RELATIVE_TIME_RE = re.compile(r"^-\s*(\d+)\s*([smhdw])$")
_RELATIVE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Falco quotes exception values that contain a space and does no escaping at all, so only values made of
# these characters are certain to reach the condition unchanged.
_SAFE_EXCEPTION_VALUE_RE = re.compile(r"^[A-Za-z0-9 /._:@+~%-]+$")
_SLUG_STRIP_RE = re.compile(r"[^a-z0-9]+")


class FalcoTriageError(Exception):
    """A caller error: bad option value or unreadable input."""


# ---------------------------------------------------------------------------------------------------------------
# Priorities and times


def priority_rank(name):
    """Rank of a Falco priority name (0 = emergency ... 7 = debug), or None when unknown."""
    if not isinstance(name, str):
        return None
    return _PRIORITY_RANK_BY_NAME.get(name.strip().lower())


def _require_priority_rank(name, option):
    rank = priority_rank(name)
    if rank is None:
        raise FalcoTriageError(
            "%s: unknown Falco priority %r; use one of %s" % (option, name, ", ".join(p.lower() for p in PRIORITIES))
        )
    return rank


def canonical_time(text):
    """ISO8601 text to the form Falco writes, ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` in UTC, or None.

    In that form, string order is time order, so the hot loop compares times without parsing them.
    A time without an offset is taken as UTC, like Falco's own.
    """
    if not isinstance(text, str):
        return None
    match = _TIME_RE.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    if offset and offset not in ("Z", "z", "UTC"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        shift = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        moment = moment - sign * shift
    nanoseconds = (fraction or "")[:9].ljust(9, "0")
    return "%s.%sZ" % (moment.strftime("%Y-%m-%dT%H:%M:%S"), nanoseconds)


def parse_time_bound(text, option, now=None):
    """A user's since/until value: ISO8601, ``now`` or relative ``-30m``/``-24h``/``-7d``/``-1w``."""
    if text is None or text == "":
        return None
    value = str(text).strip()
    if value.lower() == "now" or _RELATIVE_TIME_RE.match(value):
        current = time.time() if now is None else now
        match = _RELATIVE_TIME_RE.match(value)
        if match:
            current -= int(match.group(1)) * _RELATIVE_UNITS[match.group(2)]
        whole = int(current)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        return "%s.%09dZ" % (stamp, int(round((current - whole) * 1e9)) % 1000000000)
    canonical = canonical_time(value)
    if canonical is None:
        raise FalcoTriageError(
            "%s: cannot read %r as a time; use ISO8601 (2024-05-01T19:30:00Z), now, or -30m/-24h/-7d" % (option, text)
        )
    return canonical


def epoch_seconds(canonical):
    """Seconds since the epoch of a canonical_time() string."""
    whole = calendar.timegm(time.strptime(canonical[:19], "%Y-%m-%dT%H:%M:%S"))
    return whole + int(canonical[20:29]) / 1e9


# ---------------------------------------------------------------------------------------------------------------
# Aggregation


def _clean_fingerprint_value(value, container_id):
    """The value as it goes into a fingerprint, or None to leave it out."""
    if value is None or value == "" or value == "<NA>":
        return None
    if isinstance(value, str):
        # Socket tuples carry the client's ephemeral port: a new value for every connection.
        if "->" in value:
            return None
        # Falco 0.31 container-start alerts put "container:<id>" into proc.cmdline: one value per container.
        if container_id and container_id in value:
            return None
        return value
    if isinstance(value, (int, float, bool)):
        return value
    return None


def _fingerprint_id(rule, named_values):
    """A short, stable id over rule and field values, the same on every host and in every process."""
    # Imported here: OpenSSL adds megabytes to every parallel worker, and only summaries need ids.
    import hashlib

    payload = json.dumps([rule, named_values], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _decode_for_display(raw, limit):
    text = raw[: limit * 4].decode("utf-8", "replace")
    return text[:limit]


def _host_set(hosts):
    return set((hosts,)) if isinstance(hosts, str) else set(hosts)


# The keys every alert has, fetched in one call by the hot loop; it raises KeyError when one is missing.
_ALERT_KEYS = operator.itemgetter("rule", "priority", "time", "output_fields", "output")


def _values_getter(fields):
    """A function returning the tuple of an alert's values of ``fields`` (KeyError when one is missing)."""
    if len(fields) >= 2:
        return operator.itemgetter(*fields)
    # itemgetter of one field returns the value itself, not a tuple of one; the cache keys must be tuples.
    return lambda output_fields: tuple(output_fields[field] for field in fields)


# Fingerprint entry slots: a list, not an object, because attribute access costs time in the hot loop.
_FP_COUNT, _FP_FIRST, _FP_LAST, _FP_RANK, _FP_PRIORITY, _FP_SAMPLE, _FP_HOSTS, _FP_HOSTS_TRUNCATED = range(8)


class FalcoTriage:
    """Streaming counter of Falco JSON alerts.

    Memory is bounded by max_line_bytes (plus one read block) for the input and by max_fingerprints and
    max_rule_groups for the tables. When a table overflows, its least frequent half is dropped and counted in
    ``evicted`` so totals stay exact and the summary says ``approximate: true``.
    """

    def __init__(
        self,
        default_host="unknown",
        since=None,
        until=None,
        min_priority=None,
        rules=None,
        fingerprint_fields=DEFAULT_FINGERPRINT_FIELDS,
        max_line_bytes=DEFAULT_MAX_LINE_BYTES,
        max_fingerprints=DEFAULT_MAX_FINGERPRINTS,
        max_rule_groups=DEFAULT_MAX_RULE_GROUPS,
    ):
        if max_line_bytes < 2:
            raise FalcoTriageError("max_line_bytes: must be at least 2, got %r" % (max_line_bytes,))
        self.default_host = default_host or "unknown"
        self.since = parse_time_bound(since, "since")
        self.until = parse_time_bound(until, "until")
        self.min_priority_rank = None if min_priority in (None, "") else _require_priority_rank(min_priority, "min_priority")
        self.rules = frozenset(rules) if rules else None
        self.fingerprint_fields = tuple(fingerprint_fields)
        self.max_line_bytes = int(max_line_bytes)
        self.max_fingerprints = max(2, int(max_fingerprints))
        self.max_rule_groups = max(2, int(max_rule_groups))

        self.lines_read = 0
        self.alerts = 0
        self.filtered_out = 0
        self.skipped = dict((reason, 0) for reason in SKIP_REASONS)
        self.skipped_examples = {}
        self.first_seen = _FIRST_SENTINEL
        self.last_seen = _LAST_SENTINEL
        # (host, rule, priority name) -> count
        self.rule_counts = {}
        # (rule, cleaned field values) -> entry list, see _FP_* slots
        self.fingerprints = {}
        self.evicted_rule_groups = {"entries": 0, "events": 0}
        self.evicted_fingerprints = {"entries": 0, "events": 0}
        # Exact totals even after the rule table was pruned.
        self.evicted_by_host = {}
        self.evicted_by_priority = {}
        self._reset_caches()

    def _reset_caches(self):
        # (rule, priority, raw field values) as found in the alert -> fingerprint entry. Most alerts repeat a
        # key seen before, so cleaning values and hashing the cleaned key happen once per distinct raw key.
        # Host-independent on purpose: a dump from hundreds of hosts must not multiply it.
        self._entries = {}
        # (host, rule, priority as written) -> count, folded into rule_counts after every batch
        self._raw_groups = {}
        # priority as written in the alert -> (rank, canonical name)
        self._priority_info = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_entries"] = {}
        state["_priority_info"] = {}
        return state

    # -- input ---------------------------------------------------------------------------------------------------

    def feed_lines(self, lines):
        """Consume an iterable of complete lines (bytes, with or without their line ending)."""
        batch = []
        max_len = self.max_line_bytes
        for line in lines:
            if isinstance(line, str):
                line = line.encode("utf-8", "surrogateescape")
            if line.endswith(b"\n"):
                line = line[:-1]
            if len(line) > max_len:
                self._count_oversized(line)
                continue
            batch.append(line)
            if len(batch) >= 4096:
                self._consume(batch)
                batch = []
        if batch:
            self._consume(batch)
        return self

    def feed_stream(self, stream, limit=None, block_bytes=READ_BLOCK_BYTES):
        """Consume a binary file object in bounded blocks.

        With ``limit``, read that many bytes, then only as far as the end of the line that straddles the limit:
        this is how a file being appended to is read up to its size at open time, and how parallel byte ranges
        meet without losing or doubling a line. A last line without a newline is parsed as it is; if it is
        incomplete it is counted as ``truncated_json``.
        """
        max_len = self.max_line_bytes
        remaining = limit
        pending = b""  # start of a line whose newline has not been read yet
        discarding = False  # inside an oversized line: drop bytes up to its newline
        finishing = False  # past the limit: read only to the end of the current line
        while True:
            if remaining is not None and remaining <= 0 and not finishing:
                if not pending and not discarding:
                    break
                finishing = True
            if finishing or remaining is None:
                want = block_bytes
            else:
                want = min(block_bytes, remaining)
            data = stream.read(want)
            if not data:
                break
            if remaining is not None and not finishing:
                remaining -= len(data)
            newline = data.find(b"\n")
            stop_after = False
            if finishing and newline >= 0:
                data = data[: newline + 1]  # what follows belongs to the next range, or was written after open
                stop_after = True
            if discarding:
                if newline < 0:
                    continue
                discarding = False
                data = data[newline + 1:]
                newline = data.find(b"\n")
            if newline < 0:
                # No line ends in this block: grow the pending line, or give it up without joining the bytes.
                if len(pending) + len(data) > max_len:
                    self._count_oversized(pending or data)
                    pending = b""
                    discarding = True
                else:
                    pending += data
            else:
                if pending:
                    data = pending + data
                # Lines keep their newline (the parser takes it as trailing whitespace). BytesIO finds line ends
                # with memchr where bytes.split compares byte by byte: the split was the largest single cost of a
                # triage (about a tenth of its instructions, measured with callgrind; bench/triage_bench.py).
                lines = io.BytesIO(data).readlines()
                pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
                if len(data) > max_len and max(map(len, lines)) > max_len + 1:
                    kept = []
                    for line in lines:
                        if len(line) > max_len + 1:
                            self._count_oversized(line)
                        else:
                            kept.append(line)
                    lines = kept
                if len(pending) > max_len:
                    self._count_oversized(pending)
                    pending = b""
                    discarding = True
                if lines:
                    self._consume(lines)
            if stop_after:
                break
        if pending and not discarding:
            self._consume([pending])
        return self

    def _count_oversized(self, line):
        self.lines_read += 1
        self._skip("oversized", line)

    def _skip(self, reason, line):
        self.skipped[reason] += 1
        if reason not in self.skipped_examples:
            self._skip_example(reason, line)

    # -- the hot loop ----------------------------------------------------------------------------------------------

    def _consume(self, lines):
        loads = _json_loads
        fields = self.fingerprint_fields
        entries = self._entries
        entries_get = entries.get
        raw_groups = self._raw_groups
        raw_groups_get = raw_groups.get
        default_host = self.default_host
        set_type = set
        skipped = self.skipped
        first_seen = self.first_seen
        last_seen = self.last_seen
        # Alerts are counted once per batch, as the lines not skipped: a counter in the loop costs every event.
        skipped_before = sum(skipped.values())
        filtering = (self.since is not None or self.until is not None or self.min_priority_rank is not None
                     or self.rules is not None)
        filtered_out = 0
        str_type = str
        dict_type = dict
        alert_keys = _ALERT_KEYS
        # Every fingerprint field in one C-level call; it raises KeyError when the alert lacks one of them.
        fingerprint_values = _values_getter(fields)

        self.lines_read += len(lines)
        for line in lines:
            # The common case with as few steps as possible: a line that parses as a Falco alert with every key in
            # its usual form (string rule, priority and time in Falco's own form, output_fields an object). Any
            # other line (banner, syslog prefix, broken JSON, an alert of another shape) takes the careful path
            # below, which reads it again from the start: the same result, only slower.
            try:
                event = loads(line)
                rule, priority, moment, output_fields, _output = alert_keys(event)
            except (ValueError, KeyError, TypeError):
                event = None
            if (event is not None and rule.__class__ is str_type and priority.__class__ is str_type
                    and moment.__class__ is str_type and len(moment) == 30 and moment[19::10] == ".Z"
                    and output_fields.__class__ is dict_type):
                if filtering and self._filtered_out(moment, priority, rule):
                    filtered_out += 1
                    continue
                try:
                    values = fingerprint_values(output_fields)
                except KeyError:  # a field this rule does not print
                    values = tuple(map(output_fields.get, fields))
            else:
                # Cheap byte checks first: only lines that look like a JSON object reach the parser.
                if line[:1] != b"{":
                    stripped = line.lstrip()
                    if stripped[:1] == b"{":
                        line = stripped
                    else:
                        # journalctl/syslog prefix such as "May 01 19:29:32 host falco[1]: {...}"
                        brace = line.find(b": {")
                        if brace < 0:
                            skipped["not_json"] += 1
                            if "not_json" not in self.skipped_examples:
                                self._skip_example("not_json", line)
                            continue
                        line = line[brace + 2:]
                try:
                    event = loads(line)
                except ValueError:
                    try:
                        line.decode("utf-8")
                        reason = "truncated_json"
                    except UnicodeDecodeError:
                        reason = "invalid_utf8"
                    self._skip(reason, line)
                    continue
                if event.__class__ is not dict_type:
                    self._skip("not_an_alert", line)
                    continue
                rule = event.get("rule")
                priority = event.get("priority")
                if rule.__class__ is not str_type or priority.__class__ is not str_type or "output" not in event:
                    self._skip("not_an_alert", line)
                    continue

                moment = event.get("time")
                if moment is not None and (
                    moment.__class__ is not str_type or len(moment) != 30 or moment[19] != "." or moment[29] != "Z"
                ):
                    moment = canonical_time(moment)
                if filtering and self._filtered_out(moment, priority, rule):
                    filtered_out += 1
                    continue
                output_fields = event.get("output_fields")
                if output_fields.__class__ is dict_type:
                    values = tuple(map(output_fields.get, fields))
                else:
                    output_fields = values = None

            host = event.get("hostname")
            if host.__class__ is not str_type or not host:
                host = str(host) if host else default_host
            group = (host, rule, priority)
            raw_groups[group] = raw_groups_get(group, 0) + 1
            key = (rule, priority, values)
            try:
                entry = entries_get(key)
            except TypeError:  # a list or object among the values: not usable as a key
                entry = None
                key = None
            if entry is None:
                entry = self._entry_for(rule, priority, output_fields, event.get("output"), host)
                if key is not None:
                    entries[key] = entry
            entry[0] += 1
            if moment is not None:
                if moment < entry[1]:
                    entry[1] = moment
                    if moment < first_seen:
                        first_seen = moment
                if moment > entry[2]:
                    entry[2] = moment
                    if moment > last_seen:
                        last_seen = moment
            hosts = entry[6]
            if hosts.__class__ is set_type:
                if host not in hosts:
                    self._add_host(entry, host)
            elif hosts != host:
                self._add_host(entry, host)

        self.alerts += len(lines) - (sum(skipped.values()) - skipped_before)
        self.filtered_out += filtered_out
        self.first_seen = first_seen
        self.last_seen = last_seen
        self._fold_groups()
        if len(self.fingerprints) > self.max_fingerprints:
            self._prune_fingerprints()
        elif len(entries) > self.max_fingerprints:
            self._prune_entry_cache()

    def _filtered_out(self, moment, priority, rule):
        """Whether the options leave an alert out: outside since/until, below min_priority, not among rules."""
        if self.since is not None or self.until is not None:
            if moment is None or (self.since is not None and moment < self.since) or (
                    self.until is not None and moment > self.until):
                return True
        if self.min_priority_rank is not None and self._priority(priority)[0] > self.min_priority_rank:
            return True
        return self.rules is not None and rule not in self.rules

    def _skip_example(self, reason, line):
        if line.endswith(b"\n"):
            line = line[:-1]
        self.skipped_examples[reason] = _decode_for_display(line, SKIPPED_EXAMPLE_CHARS)

    def _priority(self, priority):
        """(rank, canonical name) of a priority as written in an alert, cached."""
        info = self._priority_info.get(priority)
        if info is None:
            rank = priority_rank(priority)
            info = (_UNKNOWN_PRIORITY_RANK, priority) if rank is None else (rank, PRIORITIES[rank])
            self._priority_info[priority] = info
        return info

    def _fold_groups(self):
        """Move the hot loop's raw counts into rule_counts under canonical priority names."""
        rule_counts = self.rule_counts
        rule_counts_get = rule_counts.get
        priority_info = self._priority_info
        # Once per batch, but for every host, rule and priority in it: a method call each cost about as much as
        # the rest of the fold.
        for (host, rule, priority), count in self._raw_groups.items():
            info = priority_info.get(priority) or self._priority(priority)
            group = (host, rule, info[1])
            rule_counts[group] = rule_counts_get(group, 0) + count
        self._raw_groups.clear()
        if len(rule_counts) > self.max_rule_groups:
            self._prune_rule_counts()

    def _entry_for(self, rule, priority, output_fields, output, host):
        """The fingerprint entry of an alert, created on first sight."""
        rank, priority = self._priority(priority)
        container_id = None
        raw_values = (None,) * len(self.fingerprint_fields)
        if output_fields is not None:
            raw_values = tuple(map(output_fields.get, self.fingerprint_fields))
            container_id = output_fields.get("container.id")
            if not isinstance(container_id, str) or len(container_id) < 12:
                container_id = None
        cleaned = tuple(_clean_fingerprint_value(value, container_id) for value in raw_values)
        key = (rule, cleaned)
        entry = self.fingerprints.get(key)
        if entry is None:
            sample = output if isinstance(output, str) else json.dumps(output)
            # One host is kept as a plain string (the common case on a host), a set once a second one shows up.
            entry = [0, _FIRST_SENTINEL, _LAST_SENTINEL, rank, priority, sample[:SAMPLE_OUTPUT_CHARS], host, False]
            self.fingerprints[key] = entry
        elif rank < entry[_FP_RANK]:
            entry[_FP_RANK] = rank
            entry[_FP_PRIORITY] = priority
        return entry

    @staticmethod
    def _add_host(entry, host):
        hosts = entry[_FP_HOSTS]
        if isinstance(hosts, str):
            entry[_FP_HOSTS] = set((hosts, host))
        elif len(hosts) < MAX_HOSTS_PER_FINGERPRINT:
            hosts.add(host)
        else:
            entry[_FP_HOSTS_TRUNCATED] = True

    # -- bounded tables --------------------------------------------------------------------------------------------

    def _prune_rule_counts(self):
        ordered = sorted(self.rule_counts.items(), key=lambda item: item[1], reverse=True)
        keep = self.max_rule_groups // 2
        for (host, _rule, priority), count in ordered[keep:]:
            self.evicted_rule_groups["entries"] += 1
            self.evicted_rule_groups["events"] += count
            self.evicted_by_host[host] = self.evicted_by_host.get(host, 0) + count
            self.evicted_by_priority[priority] = self.evicted_by_priority.get(priority, 0) + count
        self.rule_counts = dict(ordered[:keep])

    def _prune_fingerprints(self):
        ordered = sorted(self.fingerprints.items(), key=lambda item: item[1][_FP_COUNT], reverse=True)
        keep = self.max_fingerprints // 2
        for _key, entry in ordered[keep:]:
            self.evicted_fingerprints["entries"] += 1
            self.evicted_fingerprints["events"] += entry[_FP_COUNT]
        self.fingerprints = dict(ordered[:keep])
        # Cache keys of surviving entries stay: dropping them all would make every frequent key miss again.
        alive = set(id(entry) for _key, entry in ordered[:keep])
        self._entries = dict((key, entry) for key, entry in self._entries.items() if id(entry) in alive)
        self._prune_entry_cache()

    def _prune_entry_cache(self):
        """Keep the cache within max_fingerprints: drop keys of one-off fingerprints first, all keys if needed."""
        if len(self._entries) <= self.max_fingerprints:
            return
        self._entries = dict((key, entry) for key, entry in self._entries.items() if entry[_FP_COUNT] > 1)
        if len(self._entries) > self.max_fingerprints // 2:
            self._entries = {}

    # -- combining -------------------------------------------------------------------------------------------------

    def merge(self, other):
        """Add another FalcoTriage's counts (same options) into this one, e.g. the result of another byte range.

        Entries of ``other`` are moved, not copied, to keep the peak memory of a merge low: do not use ``other``
        afterwards.
        """
        self.lines_read += other.lines_read
        self.alerts += other.alerts
        self.filtered_out += other.filtered_out
        for reason, count in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        for reason, example in other.skipped_examples.items():
            self.skipped_examples.setdefault(reason, example)
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        for group, count in other.rule_counts.items():
            self.rule_counts[group] = self.rule_counts.get(group, 0) + count
        for key, theirs in other.fingerprints.items():
            ours = self.fingerprints.get(key)
            if ours is None:
                self.fingerprints[key] = theirs
                continue
            ours[_FP_COUNT] += theirs[_FP_COUNT]
            ours[_FP_FIRST] = min(ours[_FP_FIRST], theirs[_FP_FIRST])
            ours[_FP_LAST] = max(ours[_FP_LAST], theirs[_FP_LAST])
            if theirs[_FP_RANK] < ours[_FP_RANK]:
                ours[_FP_RANK] = theirs[_FP_RANK]
                ours[_FP_PRIORITY] = theirs[_FP_PRIORITY]
            union = _host_set(ours[_FP_HOSTS]) | _host_set(theirs[_FP_HOSTS])
            if len(union) > MAX_HOSTS_PER_FINGERPRINT:
                union = set(sorted(union)[:MAX_HOSTS_PER_FINGERPRINT])
                ours[_FP_HOSTS_TRUNCATED] = True
            ours[_FP_HOSTS] = union.pop() if len(union) == 1 else union
            ours[_FP_HOSTS_TRUNCATED] = ours[_FP_HOSTS_TRUNCATED] or theirs[_FP_HOSTS_TRUNCATED]
        for table in ("evicted_rule_groups", "evicted_fingerprints"):
            for name, count in getattr(other, table).items():
                getattr(self, table)[name] += count
        for table in ("evicted_by_host", "evicted_by_priority"):
            mine = getattr(self, table)
            for name, count in getattr(other, table).items():
                mine[name] = mine.get(name, 0) + count
        self._entries = {}
        if len(self.rule_counts) > self.max_rule_groups:
            self._prune_rule_counts()
        if len(self.fingerprints) > self.max_fingerprints:
            self._prune_fingerprints()
        return self

    # -- results ---------------------------------------------------------------------------------------------------

    @property
    def matched(self):
        return self.alerts - self.filtered_out

    def rule_rows(self):
        """Every (host, rule, priority) row as a dict, most frequent first: the rule table without its top-N cut."""
        rows = [
            {"host": host, "rule": rule, "priority": priority, "count": count}
            for (host, rule, priority), count in self.rule_counts.items()
        ]
        return _bounded_table(rows, None, _RULE_ROW_TIE_KEYS)["top"]

    def counts_by_rule(self):
        """Matched alerts per rule name over all hosts and priorities (exact unless the rule table was pruned)."""
        totals = {}
        for (_host, rule, _priority), count in self.rule_counts.items():
            totals[rule] = totals.get(rule, 0) + count
        return totals

    def fingerprint_records(self, limit=None):
        """Fingerprints as plain dicts, most frequent first (all of them when limit is None)."""
        ordered = self._ordered_fingerprints()
        if limit is not None:
            ordered = ordered[:limit]
        return [self._fingerprint_record(key, entry) for key, entry in ordered]

    def _fingerprint_record(self, key, entry):
        rule, values = key
        named = dict((field, value) for field, value in zip(self.fingerprint_fields, values) if value is not None)
        hosts = sorted(_host_set(entry[_FP_HOSTS]))
        return {
            "id": _fingerprint_id(rule, named),
            "rule": rule,
            "priority": entry[_FP_PRIORITY],
            "count": entry[_FP_COUNT],
            "first_seen": None if entry[_FP_FIRST] == _FIRST_SENTINEL else entry[_FP_FIRST],
            "last_seen": None if entry[_FP_LAST] == _LAST_SENTINEL else entry[_FP_LAST],
            "fields": named,
            "hosts": hosts,
            "host_count": len(hosts),
            "hosts_truncated": entry[_FP_HOSTS_TRUNCATED],
            "sample_output": entry[_FP_SAMPLE],
        }

    def summary(self, top=DEFAULT_TOP):
        """A bounded, JSON-ready summary: counters, top-N tables with ``others``, never raw alerts."""
        by_host = dict(self.evicted_by_host)
        by_priority = dict(self.evicted_by_priority)
        # (rule, priority) -> [alerts, hosts]: each host has at most one row per rule and priority.
        totals = {}
        for (host, rule, priority), count in self.rule_counts.items():
            by_host[host] = by_host.get(host, 0) + count
            by_priority[priority] = by_priority.get(priority, 0) + count
            total = totals.setdefault((rule, priority), [0, 0])
            total[0] += count
            total[1] += 1
        rule_rows = [
            {"host": host, "rule": rule, "priority": priority, "count": count}
            for (host, rule, priority), count in self.rule_counts.items()
        ]
        total_rows = [
            {"rule": rule, "priority": priority, "count": count, "host_count": host_count}
            for (rule, priority), (count, host_count) in totals.items()
        ]
        return {
            "format": 1,
            "parser": JSON_PARSER,
            "lines_read": self.lines_read,
            "alerts": self.alerts,
            "matched": self.matched,
            "filtered_out": self.filtered_out,
            "skipped_lines": dict(self.skipped),
            "skipped_examples": dict(self.skipped_examples),
            "first_seen": None if self.first_seen == _FIRST_SENTINEL else self.first_seen,
            "last_seen": None if self.last_seen == _LAST_SENTINEL else self.last_seen,
            "approximate": bool(self.evicted_rule_groups["entries"] or self.evicted_fingerprints["entries"]),
            "filters": self.filters(),
            "fingerprint_fields": list(self.fingerprint_fields),
            "by_priority": _ordered_priorities(by_priority),
            "by_host": _bounded_table(
                [{"host": host, "count": count} for host, count in by_host.items()], top, ("host",)
            ),
            # Fleet-wide alerts per rule and priority. Rows evicted from the rule table are host/rule/priority
            # rows whose rule may still have a total here: they are counted in others, never guessed into a total.
            "rule_totals": _bounded_table(total_rows, top, _RULE_TOTAL_TIE_KEYS, self.evicted_rule_groups),
            "rules": _bounded_table(
                rule_rows, top, _RULE_ROW_TIE_KEYS, self.evicted_rule_groups
            ),
            "fingerprints": self._fingerprint_table(top),
        }

    def _fingerprint_table(self, top):
        # Records (with their hashed id) are built for the kept rows only: the table may hold thousands.
        ordered = self._ordered_fingerprints()
        kept = ordered[:top] if top is not None and top >= 0 else ordered
        left_out = ordered[len(kept):]
        evicted = self.evicted_fingerprints
        return {
            "top": [self._fingerprint_record(key, entry) for key, entry in kept],
            "distinct": len(ordered) + evicted["entries"],
            "others": {
                "entries": len(left_out) + evicted["entries"],
                "events": sum(entry[_FP_COUNT] for _key, entry in left_out) + evicted["events"],
            },
        }

    def _ordered_fingerprints(self):
        return sorted(self.fingerprints.items(), key=lambda item: (-item[1][_FP_COUNT], item[0][0], repr(item[0][1])))

    def filters(self):
        return {
            "since": self.since,
            "until": self.until,
            "min_priority": None if self.min_priority_rank is None else PRIORITIES[self.min_priority_rank],
            "rules": sorted(self.rules) if self.rules else None,
        }


# Order of rows with the same count, so that tables are stable from one run (and one process) to the next.
_RULE_ROW_TIE_KEYS = ("rule", "host", "priority")
_RULE_TOTAL_TIE_KEYS = ("rule", "priority")


def _ordered_priorities(counts):
    return dict(
        sorted(counts.items(), key=lambda item: (_PRIORITY_RANK_BY_NAME.get(item[0].lower(), _UNKNOWN_PRIORITY_RANK), item[0]))
    )


def _bounded_table(rows, top, tie_keys, evicted=None):
    """{top: the N largest rows, distinct: how many rows there were, others: what the cut left out}."""
    rows = sorted(rows, key=lambda row: [-row["count"]] + [str(row.get(k)) for k in tie_keys])
    kept = rows[:top] if top is not None and top >= 0 else rows
    left_out = rows[len(kept):]
    others = {
        "entries": len(left_out) + (evicted["entries"] if evicted else 0),
        "events": sum(row["count"] for row in left_out) + (evicted["events"] if evicted else 0),
    }
    return {"top": kept, "distinct": len(rows) + (evicted["entries"] if evicted else 0), "others": others}


# ---------------------------------------------------------------------------------------------------------------
# Files, in parallel byte ranges


def _fork_context():
    # Fork keeps this module importable in the workers even when it was loaded from a path or from an
    # Ansible payload; platforms without it fall back to one process. Imported here because only parallel
    # runs need it.
    import multiprocessing

    try:
        return multiprocessing.get_context("fork")
    except ValueError:  # pragma: no cover - platform dependent
        return None


def _line_boundaries(handle, size, parts, block_bytes=64 * 1024):
    """Offsets that cut [0, size) into about ``parts`` ranges, each starting at the beginning of a line."""
    offsets = [0]
    for part in range(1, parts):
        position = max(size * part // parts, offsets[-1])
        handle.seek(position)
        start_of_line = None
        while position < size:
            block = handle.read(min(block_bytes, size - position))
            if not block:
                break
            newline = block.find(b"\n")
            if newline >= 0:
                start_of_line = position + newline + 1
                break
            position += len(block)
        if start_of_line is None or start_of_line >= size:
            break
        if start_of_line > offsets[-1]:
            offsets.append(start_of_line)
    offsets.append(size)
    return list(zip(offsets[:-1], offsets[1:]))


def _triage_range(task):
    path, start, end, options = task
    triage = FalcoTriage(**options)
    with open(path, "rb") as handle:
        handle.seek(start)
        triage.feed_stream(handle, limit=end - start)
    return triage


def triage_file(path, workers=1, **options):
    """Triage a file (or a FIFO such as /dev/stdin) and return the merged FalcoTriage.

    A regular file is read up to its size at open time (plus the rest of the line that straddles it), so a
    file Falco keeps appending to gives a consistent snapshot. With workers > 1 and a large regular file, byte
    ranges cut at line starts are processed in a process pool and merged.
    """
    triage = FalcoTriage(**options)  # validates the options before any work starts
    # Workers get the resolved times: "-1h" must mean the same moment in every process.
    options = dict(options, since=triage.since, until=triage.until)
    with open(path, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            return triage.feed_stream(handle)
        size = status.st_size
        context = _fork_context() if workers and workers > 1 else None
        if context is None or size < PARALLEL_MIN_BYTES:
            return triage.feed_stream(handle, limit=size)
        ranges = _line_boundaries(handle, size, int(workers))
    if len(ranges) < 2:
        with open(path, "rb") as handle:
            return triage.feed_stream(handle, limit=size)
    tasks = [(path, start, end, options) for start, end in ranges]
    pool = context.Pool(processes=min(int(workers), len(tasks)))
    merged = None
    try:
        # One partial result in memory at a time besides the merged one.
        for partial in pool.imap(_triage_range, tasks, chunksize=1):
            merged = partial if merged is None else merged.merge(partial)
    finally:
        pool.close()
        pool.join()
    return merged


# ---------------------------------------------------------------------------------------------------------------
# A central store: one file per host (HOST.jsonl) and its rotations, as the event_collector role writes them

# HOST.jsonl, HOST.jsonl.1, HOST.jsonl.2.gz (logrotate's numbering) or HOST.jsonl-20261127[.gz] (its dateext).
_STORE_FILE_RE = re.compile(r"^(?P<host>.+?)\.jsonl(?P<rotation>(?:[.-][0-9]+)?)(?P<gz>\.gz)?$")


def store_files(directory):
    """{host: [paths, oldest first]} of a central store; files that are not HOST.jsonl[.N|-DATE][.gz] are ignored.

    Oldest first (highest rotation number first, the live file last), so alerts are read in the order they were
    written, as a single host's file would be.
    """
    by_host = {}
    ignored = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        match = _STORE_FILE_RE.match(name)
        if not match or not os.path.isfile(path):
            ignored.append(name)
            continue
        rotation = match.group("rotation")
        if not rotation:
            order = (1, 0, "")
        elif rotation[0] == ".":
            order = (0, -int(rotation[1:]), "")
        else:
            order = (0, 0, rotation)
        by_host.setdefault(match.group("host"), []).append((order, path))
    return dict((host, [path for _order, path in sorted(entries)]) for host, entries in by_host.items()), ignored


def _feed_store_file(triage, path, workers, options):
    if path.endswith(".gz"):
        # Imported here: only rotated, compressed files need it.
        import gzip

        with gzip.open(path, "rb") as handle:
            return triage.feed_stream(handle)
    if workers and workers > 1:
        return triage.merge(triage_file(path, workers=workers, **options))
    with open(path, "rb") as handle:
        return triage.feed_stream(handle, limit=os.fstat(handle.fileno()).st_size)


def triage_directory(directory, hosts=None, workers=1, top=DEFAULT_TOP, **options):
    """Summaries per host of a central store, as each host's own falco_events run would return them.

    Every host's files are read into one FalcoTriage whose default host is the file's host name (alerts of Falco
    before 0.32 carry none; newer alerts keep their own ``hostname``). Hosts are read one after the other and
    only their bounded summary is kept, so memory stays bounded whatever the number of hosts.
    Returns ``{"per_host": {host: summary}, "missing_hosts": [...], "files": n, "ignored_files": [...]}``;
    with ``hosts``, only those hosts' files are read and the ones without any are listed in ``missing_hosts``.
    """
    if not os.path.isdir(directory):
        raise FalcoTriageError("path: %s is not a directory" % directory)
    check = FalcoTriage(**options)  # validates the options before any work starts
    # Every host gets the same resolved times: "-1h" must mean the same moment for all of them.
    options = dict(options, since=check.since, until=check.until)
    options.pop("default_host", None)
    files, ignored = store_files(directory)
    wanted = sorted(files) if hosts is None else sorted(set(hosts))
    per_host = {}
    read = 0
    for host in wanted:
        if host not in files:
            continue
        triage = FalcoTriage(default_host=host, **options)
        for path in files[host]:
            triage = _feed_store_file(triage, path, workers, dict(options, default_host=host))
            read += 1
        per_host[host] = triage.summary(top=top)
    return {
        "per_host": per_host,
        "missing_hosts": [host for host in wanted if host not in files],
        "files": read,
        "ignored_files": ignored[:20],
    }


def triage_store(directory, workers=1, on_file=None, **options):
    """One FalcoTriage over every host of a central store: the fleet-wide view that tools/falco-triage prints.

    Each host's files are read, oldest first, with that host as the default host (alerts of Falco before 0.32
    carry none), then merged into the result; files that are not store files are ignored. Only one host's
    FalcoTriage exists besides the result, and both keep bounded tables, so memory stays bounded whatever the
    number of hosts. ``on_file(path, size)`` is called after each file is read, e.g. to show progress.
    """
    if not os.path.isdir(directory):
        raise FalcoTriageError("path: %s is not a directory" % directory)
    options = dict(options)
    options.pop("default_host", None)
    fleet = FalcoTriage(**options)  # validates the options before any work starts
    # Every host gets the same resolved times: "-1h" must mean the same moment for all of them.
    options.update(since=fleet.since, until=fleet.until)
    files, _ignored = store_files(directory)
    for host in sorted(files):
        host_options = dict(options, default_host=host)
        triage = FalcoTriage(**host_options)
        for path in files[host]:
            triage = _feed_store_file(triage, path, workers, host_options)
            if on_file is not None:
                on_file(path, os.path.getsize(path))
        fleet.merge(triage)
    return fleet


def feed_command_output(triage, command, stderr_limit=64 * 1024):
    """Run ``command`` and feed its standard output to ``triage`` while it runs; return (returncode, stderr).

    Streaming is the point: a journal can hold gigabytes of alerts, and collecting the whole output first (as
    AnsibleModule.run_command does) would cost that much memory. stderr goes to a temporary file, because a
    pipe nobody reads could fill up and stall the command.
    """
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        try:
            triage.feed_stream(process.stdout)
        finally:
            process.stdout.close()
            returncode = process.wait()
        errors.seek(0)
        stderr = errors.read(stderr_limit).decode("utf-8", "replace").strip()
    return returncode, stderr


# ---------------------------------------------------------------------------------------------------------------
# Summaries from several hosts


def merge_summaries(summaries, top=DEFAULT_TOP):
    """Combine summaries (from FalcoTriage.summary or the falco_events module) into one, cut to ``top``.

    Totals, skip counts and by_priority/by_host stay exact. Rows each host left in ``others`` cannot be matched
    across hosts, so ``others`` adds them up and ``distinct`` is an upper bound once any input was cut.

    ``rule_totals`` (alerts per rule and priority over all hosts) adds up each summary's own ``rule_totals`` rows,
    or, for a summary saved before they existed, totals derived from its ``rules`` rows. Its ``host_count`` is the
    sum of the summaries' host counts: an upper bound when the same host appears in two summaries.
    """
    summaries = [summary for summary in summaries if summary]
    merged = {
        "format": 1,
        "parser": None,
        "lines_read": 0,
        "alerts": 0,
        "matched": 0,
        "filtered_out": 0,
        "skipped_lines": dict((reason, 0) for reason in SKIP_REASONS),
        "skipped_examples": {},
        "first_seen": None,
        "last_seen": None,
        "approximate": False,
        "filters": None,
        "fingerprint_fields": None,
        "by_priority": {},
        "merged_summaries": len(summaries),
    }
    filters_seen = []
    fields_seen = []
    rules = {}
    rule_totals = {}
    fingerprints = {}
    hosts = {}
    others = {"by_host": [0, 0], "rule_totals": [0, 0], "rules": [0, 0], "fingerprints": [0, 0]}
    for summary in summaries:
        for counter in ("lines_read", "alerts", "matched", "filtered_out"):
            merged[counter] += int(summary.get(counter) or 0)
        for reason, count in (summary.get("skipped_lines") or {}).items():
            merged["skipped_lines"][reason] = merged["skipped_lines"].get(reason, 0) + count
        for reason, example in (summary.get("skipped_examples") or {}).items():
            merged["skipped_examples"].setdefault(reason, example)
        merged["first_seen"] = _min_time(merged["first_seen"], summary.get("first_seen"))
        merged["last_seen"] = _max_time(merged["last_seen"], summary.get("last_seen"))
        merged["approximate"] = merged["approximate"] or bool(summary.get("approximate"))
        if summary.get("parser") and merged["parser"] is None:
            merged["parser"] = summary["parser"]
        if summary.get("filters") not in filters_seen:
            filters_seen.append(summary.get("filters"))
        if summary.get("fingerprint_fields") not in fields_seen:
            fields_seen.append(summary.get("fingerprint_fields"))
        for priority, count in (summary.get("by_priority") or {}).items():
            merged["by_priority"][priority] = merged["by_priority"].get(priority, 0) + count
        for table_name, target, key_of in (
            ("by_host", hosts, lambda row: row["host"]),
            ("rules", rules, lambda row: (row["host"], row["rule"], row["priority"])),
            ("fingerprints", fingerprints, lambda row: row["id"]),
        ):
            table = summary.get(table_name) or {}
            left_out = table.get("others") or {}
            others[table_name][0] += int(left_out.get("entries") or 0)
            others[table_name][1] += int(left_out.get("events") or 0)
            for row in table.get("top") or []:
                key = key_of(row)
                if table_name == "fingerprints":
                    _merge_fingerprint_row(target, key, row)
                elif key in target:
                    target[key]["count"] += row["count"]
                else:
                    target[key] = dict(row)
        total_rows, left_out = _rule_total_rows(summary)
        others["rule_totals"][0] += int(left_out.get("entries") or 0)
        others["rule_totals"][1] += int(left_out.get("events") or 0)
        for row in total_rows:
            total = rule_totals.setdefault(
                (row["rule"], row["priority"]),
                {"rule": row["rule"], "priority": row["priority"], "count": 0, "host_count": 0},
            )
            total["count"] += row["count"]
            total["host_count"] += int(row.get("host_count") or 0)
    merged["filters"] = filters_seen[0] if len(filters_seen) == 1 else None
    merged["fingerprint_fields"] = fields_seen[0] if len(fields_seen) == 1 else None
    merged["by_priority"] = _ordered_priorities(merged["by_priority"])
    for table_name, target, tie_keys in (
        ("by_host", hosts, ("host",)),
        ("rule_totals", rule_totals, _RULE_TOTAL_TIE_KEYS),
        ("rules", rules, _RULE_ROW_TIE_KEYS),
        ("fingerprints", fingerprints, ("rule", "id")),
    ):
        entries, events = others[table_name]
        merged[table_name] = _bounded_table(list(target.values()), top, tie_keys, {"entries": entries, "events": events})
    return merged


def _rule_total_rows(summary):
    """(rows, others) of a summary's alerts per rule and priority over its hosts.

    A summary saved before ``rule_totals`` existed has only the per-host ``rules`` table: its totals are derived
    from those rows (one host per row), and what that table left out is what the totals leave out.
    """
    if summary.get("rule_totals") is not None:
        table = summary["rule_totals"]
        return table.get("top") or [], table.get("others") or {}
    table = summary.get("rules") or {}
    derived = {}
    for row in table.get("top") or []:
        total = derived.setdefault(
            (row["rule"], row["priority"]), {"rule": row["rule"], "priority": row["priority"], "count": 0, "host_count": 0}
        )
        total["count"] += row["count"]
        total["host_count"] += 1
    return list(derived.values()), table.get("others") or {}


def _merge_fingerprint_row(target, key, row):
    ours = target.get(key)
    if ours is None:
        copied = dict(row)
        copied["fields"] = dict(row.get("fields") or {})
        copied["hosts"] = list(row.get("hosts") or [])
        target[key] = copied
        return
    ours["count"] += row["count"]
    ours["first_seen"] = _min_time(ours.get("first_seen"), row.get("first_seen"))
    ours["last_seen"] = _max_time(ours.get("last_seen"), row.get("last_seen"))
    if (priority_rank(row.get("priority")) or _UNKNOWN_PRIORITY_RANK) < (
        priority_rank(ours.get("priority")) or _UNKNOWN_PRIORITY_RANK
    ):
        ours["priority"] = row.get("priority")
    union = sorted(set(ours.get("hosts") or []) | set(row.get("hosts") or []))
    truncated = bool(ours.get("hosts_truncated") or row.get("hosts_truncated"))
    if len(union) > MAX_HOSTS_PER_FINGERPRINT:
        union = union[:MAX_HOSTS_PER_FINGERPRINT]
        truncated = True
    ours["hosts"] = union
    ours["host_count"] = len(union)
    ours["hosts_truncated"] = truncated


def _min_time(left, right):
    if left is None:
        return right
    if right is None:
        return left
    return min(left, right)


def _max_time(left, right):
    if left is None:
        return right
    if right is None:
        return left
    return max(left, right)


def summary_window_seconds(summary):
    """Seconds a summary covers: its since/until filters where set, else its first and last alert."""
    filters = summary.get("filters") or {}
    start = filters.get("since") or summary.get("first_seen")
    end = filters.get("until") or summary.get("last_seen")
    if not start or not end:
        return None
    # At least an hour, so that a handful of alerts in a short window does not read as a huge rate.
    return max(epoch_seconds(end) - epoch_seconds(start), 3600.0)


def compare_rates(before, after):
    """Alerts per hour, overall and per rule, in two summaries: the measure of what new exceptions removed.

    Rules come from each summary's top table (summed over hosts); use a large ``top`` for both runs so the
    rules you tuned are in it. ``change_percent`` is negative for a reduction, None when there was no rate before.
    """
    windows = {"before": summary_window_seconds(before), "after": summary_window_seconds(after)}
    if not windows["before"] or not windows["after"]:
        raise FalcoTriageError("compare: both summaries need alerts or since/until to give a time window")
    per_rule = {}
    for label, summary in (("before", before), ("after", after)):
        for row in (summary.get("rules") or {}).get("top") or []:
            counts = per_rule.setdefault(row["rule"], {"before": 0, "after": 0})
            counts[label] += row["count"]

    def rate(count, label):
        return round(count * 3600.0 / windows[label], 3)

    def change(old, new):
        return None if not old else round((new - old) * 100.0 / old, 1)

    rules = []
    for rule, counts in per_rule.items():
        old, new = rate(counts["before"], "before"), rate(counts["after"], "after")
        rules.append({"rule": rule, "before_per_hour": old, "after_per_hour": new, "change_percent": change(old, new)})
    rules.sort(key=lambda row: (-row["before_per_hour"], row["rule"]))
    old, new = rate(before.get("matched") or 0, "before"), rate(after.get("matched") or 0, "after")
    return {
        "window_hours": {label: round(seconds / 3600.0, 2) for label, seconds in windows.items()},
        "total": {"before_per_hour": old, "after_per_hour": new, "change_percent": change(old, new)},
        "rules": rules,
    }


# ---------------------------------------------------------------------------------------------------------------
# Exception suggestions


def _slug(text):
    return _SLUG_STRIP_RE.sub("_", str(text).lower()).strip("_")


def _exception_name(record):
    fields = record.get("fields") or {}
    parts = []
    image = fields.get("container.image.repository")
    if image:
        parts.append(str(image).rsplit("/", 1)[-1])
    for field in ("proc.name", "proc.pname"):
        if fields.get(field):
            parts.append(fields[field])
    words = [_slug(part) for part in parts if _slug(part)]
    stem = "_".join(words)[:40].strip("_") or "actor"
    # The id suffix keeps names unique within a rule, as Falco requires.
    return "triage_%s_%s" % (stem, record.get("id", "")[:8])


def is_safe_exception_value(value):
    """True when Falco will compare the value as written (see _SAFE_EXCEPTION_VALUE_RE)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and bool(_SAFE_EXCEPTION_VALUE_RE.match(value)) and value[:1] not in ("'", '"')


def suggest_exceptions(
    fingerprint_records,
    min_count=DEFAULT_SUGGEST_MIN_COUNT,
    min_span=DEFAULT_SUGGEST_MIN_SPAN,
    max_priority=DEFAULT_SUGGEST_MAX_PRIORITY,
    limit=None,
):
    """Exceptions for fingerprints that are frequent, long-lived and not severe.

    A fingerprint qualifies when it was seen at least ``min_count`` times, its first and last alerts are at
    least ``min_span`` seconds apart (a one-off burst is not a habit), and its priority is ``max_priority`` or
    less severe. Fields whose value Falco could misread are left out of the exception; when no anchor field
    (process or image) is left, the fingerprint is skipped rather than suggesting a rule-wide silence.

    Returns ``{"exceptions": [...], "evidence": [...], "not_suggested": {reason: count}}``; ``exceptions`` is in
    the falco role's ``falco_rule_exceptions`` format and ``evidence[i]`` explains ``exceptions[i]``.
    """
    max_rank = _require_priority_rank(max_priority, "suggest_max_priority")
    exceptions = []
    evidence = []
    not_suggested = {"too_few": 0, "too_short": 0, "too_severe": 0, "no_safe_anchor": 0, "over_limit": 0}
    ordered = sorted(fingerprint_records, key=lambda record: (-record["count"], record["rule"], record.get("id", "")))
    for record in ordered:
        if record["count"] < min_count:
            not_suggested["too_few"] += 1
            continue
        rank = priority_rank(record.get("priority"))
        if rank is None or rank < max_rank:
            not_suggested["too_severe"] += 1
            continue
        first, last = record.get("first_seen"), record.get("last_seen")
        span = None if not first or not last else epoch_seconds(last) - epoch_seconds(first)
        if span is None or span < min_span:
            not_suggested["too_short"] += 1
            continue
        fields = []
        values = []
        left_out = []
        for field, value in sorted((record.get("fields") or {}).items(), key=lambda item: _field_order(item[0])):
            if is_safe_exception_value(value):
                fields.append(field)
                values.append(value)
            else:
                left_out.append(field)
        if not any(field in EXCEPTION_ANCHOR_FIELDS for field in fields):
            not_suggested["no_safe_anchor"] += 1
            continue
        if limit is not None and len(exceptions) >= limit:
            not_suggested["over_limit"] += 1
            continue
        exceptions.append(
            {
                "rule": record["rule"],
                "name": _exception_name(record),
                "fields": fields,
                "comps": ["="] * len(fields),
                "values": [values],
            }
        )
        evidence.append(
            {
                "fingerprint": record.get("id"),
                "rule": record["rule"],
                "priority": record.get("priority"),
                "count": record["count"],
                "first_seen": first,
                "last_seen": last,
                "span_seconds": int(span),
                "hosts": list(record.get("hosts") or []),
                "fields_left_out": left_out,
                "sample_output": record.get("sample_output"),
            }
        )
    return {"exceptions": exceptions, "evidence": evidence, "not_suggested": not_suggested}


def _field_order(field):
    if field in DEFAULT_FINGERPRINT_FIELDS:
        return (0, DEFAULT_FINGERPRINT_FIELDS.index(field), field)
    return (1, 0, field)


def _yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = json.dumps(str(value), ensure_ascii=False)
    # JSON leaves these raw but YAML reads them as line breaks or a byte order mark.
    for char, escape in (("\u0085", "\\N"), ("\u2028", "\\L"), ("\u2029", "\\P"), ("\ufeff", "\\uFEFF")):
        text = text.replace(char, escape)
    return text


def _yaml_flow_list(items):
    return "[" + ", ".join(_yaml_scalar(item) for item in items) + "]"


def exceptions_to_yaml(exceptions, evidence=None, variable="falco_rule_exceptions"):
    """YAML for group_vars: ``<variable>:`` and one commented entry per exception."""
    if not exceptions:
        return "%s: []\n" % variable
    out = ["%s:" % variable]
    for index, exception in enumerate(exceptions):
        why = evidence[index] if evidence and index < len(evidence) else None
        if why:
            hosts = why.get("hosts") or []
            out.append(
                "  # %d alerts (%s) on %d host(s) from %s to %s, fingerprint %s"
                % (why["count"], why.get("priority"), len(hosts), why.get("first_seen"), why.get("last_seen"), why.get("fingerprint"))
            )
            if why.get("fields_left_out"):
                out.append("  # left out (value Falco could misread): %s" % ", ".join(why["fields_left_out"]))
        out.append("  - rule: %s" % _yaml_scalar(exception["rule"]))
        out.append("    name: %s" % _yaml_scalar(exception["name"]))
        out.append("    fields: %s" % _yaml_flow_list(exception["fields"]))
        out.append("    comps: %s" % _yaml_flow_list(exception["comps"]))
        out.append("    values:")
        for row in exception["values"]:
            out.append("      - %s" % _yaml_flow_list(row))
    return "\n".join(out) + "\n"
