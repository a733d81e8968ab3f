"""bench/triage_bench.py: its memory figure counts a worker's own pages, and a short run checks every tool's counts."""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
BENCH = REPO_ROOT / "bench" / "triage_bench.py"

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"),
                                reason="the bench reads /proc/PID/smaps_rollup (Linux 4.14 and later)")


def load_bench():
    spec = importlib.util.spec_from_file_location("triage_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


# A parent that forks one worker; the worker writes 40 MiB of its own, says so on stdout and waits to be killed.
PARENT_AND_WORKER = textwrap.dedent("""
    import os, sys, time
    if os.fork() == 0:
        block = bytearray(40 * 1024 * 1024)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        print("ready", flush=True)
        time.sleep(60)
        os._exit(0)
    time.sleep(60)
""")


def test_tree_memory_counts_the_workers_private_pages_not_the_parents():
    bench = load_bench()
    parent = subprocess.Popen([sys.executable, "-c", PARENT_AND_WORKER], stdout=subprocess.PIPE, text=True)
    private_kb = {}
    try:
        assert parent.stdout.readline().strip() == "ready"
        pss_kb, private_kb = bench.tree_memory_kb(parent.pid)
    finally:
        for pid in [parent.pid] + list(private_kb):
            os.kill(pid, signal.SIGKILL)
        parent.wait()
    assert list(private_kb) != [parent.pid] and parent.pid not in private_kb
    (worker_private_kb,) = private_kb.values()
    assert worker_private_kb >= 40 * 1024
    assert pss_kb >= worker_private_kb


def test_memory_bound_adds_the_workers_private_pages_to_the_process_peak():
    bench = load_bench()
    report = {"rss_self_kb": 30 * 1024, "private_children_kb": 20 * 1024}
    bench.add_memory_bound(report)
    assert report["memory_bound_mb"] == 50.0


def test_a_short_run_checks_the_command_and_reports_its_memory(tmp_path):
    # 15,000 alerts make a dump over 16 MiB, the size from which the command splits a file between two processes.
    command = [sys.executable, str(BENCH), "--events", "15000", "--small-events", "2000", "--shapes", "generated",
               "--skip-plain", "--tmpdir", str(tmp_path)]
    if not shutil.which("jq"):
        command.append("--skip-jq")
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                            timeout=600)
    assert result.returncode == 0, result.stdout
    assert re.search(r"^command .*tools/falco-triage --json --workers 2\)$", result.stdout, re.M), result.stdout
    large = re.search(r"^memory large +15000 alerts: process ([\d.]+) MB, largest worker ([\d.]+) MB RSS, "
                      r"workers' private ([\d.]+) MB, bound ([\d.]+) MB", result.stdout, re.M)
    assert large, result.stdout
    process_mb, worker_mb, private_mb, bound_mb = map(float, large.groups())
    assert worker_mb > 0 and private_mb > 0
    assert bound_mb == pytest.approx(process_mb + private_mb, abs=0.11)
    summary = re.search(r"^SUMMARY shape=generated events=15000 .* peak_mb=([\d.]+) .*goal\(.*\)=(.*)$", result.stdout,
                        re.M)
    assert summary and float(summary.group(1)) >= bound_mb, result.stdout
    assert not list(tmp_path.iterdir()), "the bench leaves no input behind without --keep"
