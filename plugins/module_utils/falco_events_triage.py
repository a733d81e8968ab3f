# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Falco alert triage: ``FalcoTriage``, the streaming counter of alerts per host, rule and fingerprint.

Part of the triage split over ``falco_events_*.py``; ``falco_events.py`` says which file holds what.
"""

from __future__ import annotations

__metaclass__ = type

import io
import json
import operator

from .falco_events_alert import (
    ALERT_KEY_NAMES,
    DEFAULT_FINGERPRINT_FIELDS,
    _clean_fingerprint_value,
    _decode_for_display,
    _fingerprint_id,
    _host_set,
    _values_getter,
)
from .falco_events_base import (
    DEFAULT_MAX_FINGERPRINTS,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_RULE_GROUPS,
    DEFAULT_TOP,
    FalcoTriageError,
    MAX_HOSTS_PER_FINGERPRINT,
    PRIORITIES,
    SKIP_REASONS,
    _FIRST_SENTINEL,
    _LAST_SENTINEL,
    _RULE_ROW_TIE_KEYS,
    _RULE_TOTAL_TIE_KEYS,
    _UNKNOWN_PRIORITY_RANK,
    _bounded_table,
    _ordered_priorities,
    _require_priority_rank,
    canonical_time,
    parse_time_bound,
    priority_rank,
)

try:
    import orjson

    _json_loads = orjson.loads
    JSON_PARSER = "orjson"
except ImportError:  # pragma: no cover - depends on the host
    _json_loads = json.loads
    JSON_PARSER = "json"


def _parser_keys(names, probe):
    """``names`` as the very string objects the JSON parser returns as keys; ``probe`` is a JSON object of them.

    orjson keeps the key strings it creates in a cache and hands the same objects out again for every later
    line. A dict lookup with the object stored in the dict is settled by identity, without comparing characters:
    with these objects the triage reads an alert with 5 to 7 % fewer instructions (callgrind). Looking up with an
    equal string of another origin (the stdlib parser, or a key the cache has since replaced) gives the same
    result, only without that shortcut.
    """
    parsed = _json_loads(probe)
    own = dict(zip(parsed, parsed))
    return tuple(own.get(name, name) for name in names)


SAMPLE_OUTPUT_CHARS = 500
SKIPPED_EXAMPLE_CHARS = 160
READ_BLOCK_BYTES = 256 * 1024

# A container.id shorter than this ("host", "") is not an id: no value is cleaned for containing it.
_MIN_CONTAINER_ID = 12

# Hosts whose group counters one cache slot keeps (_host_count): memory stays bounded with thousands of hosts in a
# dump, whose further hosts take the longer way, through the group table, on every alert.
_MAX_SLOT_HOSTS = 32

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
        # The keys the hot loop looks up, in the order _consume unpacks them (see _parser_keys).
        self._key_names = ALERT_KEY_NAMES + ("hostname", "container.id") + self.fingerprint_fields
        self._key_probe = json.dumps(dict((name, 0) for name in self._key_names))

        self.lines_read = 0
        self.alerts = 0
        self.filtered_out = 0
        self.skipped = dict((reason, 0) for reason in SKIP_REASONS)
        self.skipped_examples = {}
        # Times of the alerts whose fingerprint entries were evicted; time_bounds() adds the entries' own.
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
        # (rule, priority, raw field values) as found in the alert -> a slot (_new_slot): the fingerprint entry,
        # the values' strings joined, and the group counters of the hosts seen with it. Most alerts repeat a key
        # seen before, so cleaning values and hashing the cleaned key happen once per distinct raw key.
        # Host-independent on purpose: a dump from hundreds of hosts must not multiply it.
        # Container-independent too, except where a value contains the alert's container id: cleaning drops such a
        # value (_entry_for), so the same raw values clean differently in the container they name and anywhere
        # else. One substring search of the joined strings finds that case; the entry is then cached under
        # (rule, priority, values, container id), and the plain key's entry stays None until an alert elsewhere.
        self._entries = {}
        # (host, rule, priority as written) -> [count], folded into rule_counts when a feed ends and set back to
        # zero; the slots hold the same counters
        self._raw_groups = {}
        # rule or priority name -> the one string object the cache slots share for it
        self._shared_names = {}
        # priority as written in the alert -> (rank, canonical name)
        self._priority_info = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_entries"] = {}
        state["_raw_groups"] = {}
        state["_priority_info"] = {}
        state["_shared_names"] = {}
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
        self._fold_groups()
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
                # Lines keep their newline (the parser takes it as trailing whitespace). BytesIO finds line ends
                # with memchr where bytes.split compares byte by byte: the split was the largest single cost of a
                # triage (about a tenth of its instructions, measured with callgrind; bench/triage_bench.py).
                # BytesIO reads the block without copying it.
                buffer = io.BytesIO(data)
                span = len(pending) + len(data)
                if pending:
                    # The line the last block left open ends here; it is joined on its own, where joining it to
                    # the whole block copied every byte once more (2.5 % of the instructions, callgrind).
                    buffer.seek(newline + 1)
                    lines = buffer.readlines()
                    lines.insert(0, pending + data[:newline + 1])
                else:
                    lines = buffer.readlines()
                pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
                if span > max_len and max(map(len, lines)) > max_len + 1:
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
        self._fold_groups()
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
        # Fetched for every batch, which costs little next to it, so that a key the parser's cache replaced is
        # soon found again.
        keys = _parser_keys(self._key_names, self._key_probe)
        alert_keys = operator.itemgetter(*keys[:5])
        hostname_key, container_id_key = keys[5:7]
        fields = keys[7:]
        entries = self._entries
        entries_get = entries.get
        new_slot = self._new_slot
        host_count = self._host_count
        default_host = self.default_host
        skipped = self.skipped
        # Alerts are counted once per batch, as the lines not skipped: a counter in the loop costs every event.
        skipped_before = sum(skipped.values())
        filtering = (self.since is not None or self.until is not None or self.min_priority_rank is not None
                     or self.rules is not None)
        filtered_out = 0
        str_type = str
        dict_type = dict
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
                    and moment.__class__ is str_type and len(moment) == 30 and moment[29] == "Z" and moment[19] == "."
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

            host = event.get(hostname_key)
            if host.__class__ is not str_type or not host:
                host = str(host) if host else default_host
            key = (rule, priority, values)
            try:
                cached = entries_get(key)
            except TypeError:  # a list or object among the values: not usable as a key, nothing is cached
                cached = new_slot(rule, priority, None)
            else:
                if cached is None:
                    cached = entries[key] = new_slot(rule, priority, values)
            entry = cached[0]
            if cached[1]:
                container_id = output_fields.get(container_id_key)
                # The substring search first: it rules out most alerts before the length is read.
                if (container_id.__class__ is str_type and container_id in cached[1]
                        and len(container_id) >= _MIN_CONTAINER_ID):
                    key = (rule, priority, values, container_id)
                    cached = entries_get(key)
                    if cached is None:
                        cached = entries[key] = new_slot(rule, priority, None)
                    entry = cached[0]
            if entry is None:
                entry = cached[0] = self._entry_for(rule, priority, output_fields, event.get("output"), host)
            # The slot's counter of this host's group (host, rule, priority); a host new to the slot gets it, and
            # is added to the fingerprint's hosts, once. A lookup by the host alone, where a lookup by the group
            # built a tuple, hashed it and compared it, and the fingerprint's hosts were checked on every alert.
            count = cached[4].get(host)
            if count is None:
                count = host_count(cached, host)
            count[0] += 1
            entry[0] += 1
            if moment is not None:
                # Alerts mostly come in time order: one comparison for most of them. An entry's first and last
                # time are both unset ("~" and "") or both set, so an unset last time means an unset first.
                last = entry[2]
                if moment > last:
                    entry[2] = moment
                    if not last:
                        entry[1] = moment
                elif moment < entry[1]:
                    entry[1] = moment

        self.alerts += len(lines) - (sum(skipped.values()) - skipped_before)
        self.filtered_out += filtered_out
        # Folded when a feed ends (feed_lines, feed_stream), and here only to keep the raw table bounded: folding
        # visits every group, and a block of a file holds a few hundred alerts only.
        if len(self._raw_groups) > self.max_rule_groups:
            self._fold_groups()
        if len(self.fingerprints) > self.max_fingerprints:
            self._prune_fingerprints()
        elif len(entries) > self.max_fingerprints:
            self._prune_entry_cache()
        if len(self._shared_names) > self.max_fingerprints:
            # Bounded like the cache; slots made before keep their objects, and compare by characters with newer ones.
            self._shared_names = {}

    def _new_slot(self, rule, priority, values):
        """A cache slot: [fingerprint entry (None until the first alert), the values' strings joined, rule, priority,
        {host: its group's counter}].

        Rule and priority are kept as one shared object per name, so the group keys made from slots compare by
        identity.
        """
        shared = self._shared_names
        rule = shared.setdefault(rule, rule)
        priority = shared.setdefault(priority, priority)
        joined = "" if values is None else "\n".join([value for value in values if value.__class__ is str])
        return [None, joined, rule, priority, {}]

    def _host_count(self, slot, host):
        """The counter of the group (host, the slot's rule and priority), kept in the slot for that host; the host
        is added to the slot's fingerprint entry at the same time (the entry exists by then)."""
        group = (host, slot[2], slot[3])
        count = self._raw_groups.get(group)
        if count is None:
            count = self._raw_groups[group] = [0]
        if len(slot[4]) < _MAX_SLOT_HOSTS:
            slot[4][host] = count
        entry = slot[0]
        hosts = entry[_FP_HOSTS]
        if hosts != host and (hosts.__class__ is not set or host not in hosts):
            self._add_host(entry, host)
        return count

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
        # For every host, rule and priority seen: a method call each cost about as much as
        # the rest of the fold. The counters stay, set back to zero: cache slots hold them (_host_count).
        for (host, rule, priority), count in self._raw_groups.items():
            if count[0]:
                info = priority_info.get(priority) or self._priority(priority)
                group = (host, rule, info[1])
                rule_counts[group] = rule_counts_get(group, 0) + count[0]
                count[0] = 0
        if len(self._raw_groups) > self.max_rule_groups:
            # Bounded like the tables (a dump from many hosts): the slots let go of their counters too, and get
            # them again from _host_count.
            self._raw_groups = {}
            for slot in self._entries.values():
                slot[4].clear()
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
            if not isinstance(container_id, str) or len(container_id) < _MIN_CONTAINER_ID:
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
            self.first_seen = min(self.first_seen, entry[_FP_FIRST])
            self.last_seen = max(self.last_seen, entry[_FP_LAST])
        self.fingerprints = dict(ordered[:keep])
        # Cache keys of surviving entries stay: dropping them all would make every frequent key miss again.
        alive = set(id(entry) for _key, entry in ordered[:keep])
        self._entries = dict((key, cached) for key, cached in self._entries.items() if id(cached[0]) in alive)
        self._prune_entry_cache()

    def _prune_entry_cache(self):
        """Keep the cache within max_fingerprints: drop keys of one-off fingerprints first, all keys if needed."""
        if len(self._entries) <= self.max_fingerprints:
            return
        self._entries = dict((key, cached) for key, cached in self._entries.items()
                             if cached[0] is not None and cached[0][_FP_COUNT] > 1)
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
        named = {field: value for field, value in zip(self.fingerprint_fields, values) if value is not None}
        hosts = entry[_FP_HOSTS]
        hosts = [hosts] if hosts.__class__ is str else sorted(hosts)
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
        first_seen, last_seen = self.time_bounds()
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
            "first_seen": None if first_seen == _FIRST_SENTINEL else first_seen,
            "last_seen": None if last_seen == _LAST_SENTINEL else last_seen,
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

    def time_bounds(self):
        """(first, last) time of the alerts counted, as sentinels when none had a time.

        The hot loop keeps times per fingerprint entry only; evicted entries leave theirs in first_seen and
        last_seen.
        """
        first, last = self.first_seen, self.last_seen
        for entry in self.fingerprints.values():
            if entry[_FP_FIRST] < first:
                first = entry[_FP_FIRST]
            if entry[_FP_LAST] > last:
                last = entry[_FP_LAST]
        return first, last

    def filters(self):
        return {
            "since": self.since,
            "until": self.until,
            "min_priority": None if self.min_priority_rank is None else PRIORITIES[self.min_priority_rank],
            "rules": sorted(self.rules) if self.rules else None,
        }
