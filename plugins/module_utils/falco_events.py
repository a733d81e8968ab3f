# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming triage of Falco JSON alerts: the public names of the triage, from the files that hold them.

The single home of the parsing, filtering, aggregation, merging and exception-suggestion logic used by the
``falco_events`` module, the ``falco_triage`` filter and the ``tools/falco-triage`` command. It reads bytes, keeps
memory bounded whatever the input size, and returns bounded summaries, never the alerts themselves. Callers import
from here; the work is split along its concerns, each file importing the ones before it (relative imports, so
``tools/falco-triage`` can load the directory as a package from a git checkout):

  * ``falco_events_base``: priorities and times (``priority_rank``, ``canonical_time``, ``parse_time_bound``),
    the limits and defaults, ``FalcoTriageError`` and the bounded top-N tables every summary is made of.
  * ``falco_events_alert``: one alert's fingerprint: its fields (``DEFAULT_FINGERPRINT_FIELDS``), how their values
    are cleaned, its id.
  * ``falco_events_triage``: ``FalcoTriage`` consumes lines (``feed_stream`` for a file object, ``feed_lines`` for
    an iterable) and keeps counters plus two bounded tables, alerts per (host, rule, priority) and alerts per
    fingerprint; ``FalcoTriage.summary`` cuts them to the top N entries.
  * ``falco_events_input``: ``triage_file`` reads a regular file, in parallel byte ranges when asked, and merges
    the partial results; ``feed_command_output`` streams a command's output (journalctl) into a FalcoTriage;
    ``triage_directory`` summarises each host of a central store, ``triage_store`` merges all of its hosts into one.
  * ``falco_events_merge``: ``merge_summaries`` combines summaries of several hosts, ``compare_rates`` compares
    alert rates before and after tuning.
  * ``falco_events_suggest``: ``suggest_exceptions`` turns frequent, long-lived, low-priority fingerprints into
    entries of the falco role's ``falco_rule_exceptions`` variable, ``exceptions_to_yaml`` writes them for
    group_vars.
"""

from __future__ import annotations

__metaclass__ = type

from .falco_events_alert import DEFAULT_FINGERPRINT_FIELDS
from .falco_events_base import (
    DEFAULT_MAX_FINGERPRINTS,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_RULE_GROUPS,
    DEFAULT_SUGGEST_MAX_PRIORITY,
    DEFAULT_SUGGEST_MIN_COUNT,
    DEFAULT_SUGGEST_MIN_SPAN,
    DEFAULT_TOP,
    MAX_HOSTS_PER_FINGERPRINT,
    PRIORITIES,
    SKIP_REASONS,
    FalcoTriageError,
    canonical_time,
    epoch_seconds,
    parse_time_bound,
    priority_rank,
)
from .falco_events_input import (
    PARALLEL_MIN_BYTES,
    feed_command_output,
    store_files,
    triage_directory,
    triage_file,
    triage_store,
)
from .falco_events_merge import compare_rates, merge_summaries, summary_window_seconds
from .falco_events_suggest import (
    EXCEPTION_ANCHOR_FIELDS,
    exceptions_to_yaml,
    is_safe_exception_value,
    suggest_exceptions,
)
from .falco_events_triage import JSON_PARSER, READ_BLOCK_BYTES, SAMPLE_OUTPUT_CHARS, SKIPPED_EXAMPLE_CHARS, FalcoTriage

__all__ = (
    "DEFAULT_FINGERPRINT_FIELDS",
    "DEFAULT_MAX_FINGERPRINTS",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_MAX_RULE_GROUPS",
    "DEFAULT_SUGGEST_MAX_PRIORITY",
    "DEFAULT_SUGGEST_MIN_COUNT",
    "DEFAULT_SUGGEST_MIN_SPAN",
    "DEFAULT_TOP",
    "EXCEPTION_ANCHOR_FIELDS",
    "JSON_PARSER",
    "MAX_HOSTS_PER_FINGERPRINT",
    "PARALLEL_MIN_BYTES",
    "PRIORITIES",
    "READ_BLOCK_BYTES",
    "SAMPLE_OUTPUT_CHARS",
    "SKIPPED_EXAMPLE_CHARS",
    "SKIP_REASONS",
    "FalcoTriage",
    "FalcoTriageError",
    "canonical_time",
    "compare_rates",
    "epoch_seconds",
    "exceptions_to_yaml",
    "feed_command_output",
    "is_safe_exception_value",
    "merge_summaries",
    "parse_time_bound",
    "priority_rank",
    "store_files",
    "suggest_exceptions",
    "summary_window_seconds",
    "triage_directory",
    "triage_file",
    "triage_store",
)
