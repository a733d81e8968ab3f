# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Falco alert triage: reading inputs (a file in parallel byte ranges, a central store, a command's output).

Part of the triage split over ``falco_events_*.py``; ``falco_events.py`` says which file holds what.
"""

from __future__ import annotations

__metaclass__ = type

import os
import re
import stat
import subprocess
import tempfile

from .falco_events_base import DEFAULT_TOP, FalcoTriageError
from .falco_events_triage import FalcoTriage

# Below this size a process pool costs more than it saves.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024


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
