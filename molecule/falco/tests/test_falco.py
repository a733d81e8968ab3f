"""Falco 0.31.1 (package file) and 0.43.1 with gRPC (signed repository) from TEST FIXTURE packages.

What the real Falco 0.44.1 cannot show (molecule/falco_real covers 0.44.1 for real): the tutorial's 0.31.1, the
0.43.1 drop-in generation with gRPC, and moves between versions. The last tests move both hosts to 0.44.1 in one run
(falco-current upgrades from the repository, falco-legacy moves from a package file to the drop-in generation), then
bring falco-current back down to the scenario's 0.43.1; they run last (pytest keeps file order).

The fixture's falco binary records every call in /var/log/falco-fixture/calls.jsonl and its running state (options,
FALCO_HOSTNAME, loaded files, merged configuration, reloads) in /run/falco-fixture-state.json; what it cannot show
(driver loading, kernel events) is listed in docs/falco.md.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import converge, failures, results  # noqa: E402

UPSTREAM = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3])).parent / "shared" / "upstream" / "falco"
HOSTS = ["falco-legacy", "falco-current"]
VERSIONS = {"falco-legacy": "0.31.1", "falco-current": "0.43.1"}
RULES = {
    "falco-legacy": ["fleetwatch-500-local.yaml", "fleetwatch-600-exceptions.yaml", "fleetwatch-700-disabled.yaml"],
    # Where the legacy host's settings land in the drop-in generation (after its move): disabled rules in the config.
    "falco-legacy-moved": ["fleetwatch-500-local.yaml", "fleetwatch-600-exceptions.yaml"],
    "falco-current": ["fleetwatch-100-incubating.yaml", "fleetwatch-101-sandbox.yaml", "fleetwatch-500-local.yaml",
                      "fleetwatch-600-exceptions.yaml"],
}
POSTINST_LOG = "/var/log/falco-fixture-postinst.log"
# Shaped well for both generations (append: true is what 0.31.1 knows; the preflight refuses override before 0.37),
# refused by Falco's own validation: it appends to a rule no loaded file defines.
BAD_RULE = json.dumps({"falco_local_rules": [{"rule": "No such rule anywhere", "condition": "and proc.name = x",
                                              "append": True}]})


def host(name):
    return testinfra.get_host("podman://" + name)


def state(name):
    return json.loads(host(name).check_output("cat /run/falco-fixture-state.json"))


def calls(name):
    return [json.loads(line) for line in host(name).file("/var/log/falco-fixture/calls.jsonl").content_string.splitlines()]


def postinst_runs(name):
    """One line per run of the package's postinst: the unattended variables it saw."""
    return host(name).file(POSTINST_LOG).content_string.splitlines()


def dry_run_loads(dropins):
    """What falco --dry-run loads for falco-current: the staged validation config, the package's drop-in and our
    staged drop-ins, in file-name order (Falco's config.d order)."""
    staged = ["/var/lib/fleetwatch/falco/staging/config.d/fleetwatch-%s.yaml" % d for d in dropins]
    return ["/var/lib/fleetwatch/falco/staging/validate.yaml"] + sorted(
        ["/etc/falco/config.d/falco.container_plugin.yaml"] + staged, key=lambda p: p.rsplit("/", 1)[1])


def installed_version(name):
    return host(name).check_output("dpkg-query -W -f='${Version}' falco")


def snapshot(name):
    """sha256 of every file under /etc/falco and of the unit drop-ins."""
    out = host(name).check_output("find /etc/falco /etc/systemd/system -path '*falco*' -type f -exec sha256sum {} + | sort")
    return out


def assert_runs_modern_bpf(name, version):
    """The one driver unit runs the installed version with the role's configuration."""
    h = host(name)
    assert installed_version(name) == version
    assert "Falco version: %s" % version in h.check_output("falco --version")
    assert h.service("falco-modern-bpf").is_running and h.service("falco-modern-bpf").is_enabled
    assert h.check_output("systemctl is-enabled falco.service") == "alias"
    for other in ("falco-kmod", "falco-custom", "falco-bpf"):
        # `systemctl is-enabled` of a unit that is gone exits 1 on Debian 12's systemd and 4 on Debian 13's, where
        # testinfra's is_enabled expects 0 or 1: read the exit code directly (0 only for an enabled unit).
        assert not h.service(other).is_running and h.run("systemctl is-enabled %s", other).rc != 0
    assert h.check_output("systemctl is-enabled falcoctl-artifact-follow.service || true") == "masked"
    s = state(name)
    assert s["pid"] == int(h.check_output("systemctl show -P MainPID falco-modern-bpf.service"))
    assert s["options"] == ["engine.kind=modern_ebpf"] and s["FALCO_HOSTNAME"] == name
    assert s["config"]["metrics"]["enabled"] is True and s["config"]["webserver"]["prometheus_metrics_enabled"] is True
    # Metrics keys follow the installed release: kernel_iter_event_counters_enabled is 0.44's.
    assert ("kernel_iter_event_counters_enabled" in s["config"]["metrics"]) == (version == "0.44.1")
    assert sorted(h.check_output("ls /etc/falco/rules.d").split()) == RULES[name]
    if UPSTREAM.is_dir():
        packaged = hashlib.sha256((UPSTREAM / ("falco-%s_falco.yaml" % version)).read_bytes()).hexdigest()
        assert h.file("/etc/falco/falco.yaml").sha256sum == packaged
    return s


@pytest.mark.parametrize("name", HOSTS)
def test_the_pinned_version_is_installed(name):
    h = host(name)
    assert h.package("falco").version == VERSIONS[name]
    assert "Falco version: %s" % VERSIONS[name] in h.check_output("falco --version")


def test_legacy_runs_falco_service():
    h = host("falco-legacy")
    assert h.service("falco").is_running
    assert h.service("falco").is_enabled


def test_current_runs_the_modern_bpf_unit_as_falco_service():
    """0.43.1 from the repository: the modern eBPF unit (falco-bpf.service, still shipped, stays off), the packaged
    falco.yaml untouched (when ../shared/upstream is there to compare with)."""
    assert_runs_modern_bpf("falco-current", VERSIONS["falco-current"])
    # 0.43.x still ships the legacy eBPF unit; the role keeps it stopped and disabled.
    assert host("falco-current").file("/usr/lib/systemd/system/falco-bpf.service").exists


@pytest.mark.parametrize("name,choice", [("falco-legacy", "none"), ("falco-current", "modern_ebpf")])
def test_package_scripts_ran_unattended(name, choice):
    lines = postinst_runs(name)
    assert lines and all(line == "driver choice: %s falcoctl: no" % choice for line in lines)


def test_repository_key_is_pinned_and_scoped():
    h = host("falco-current")
    sources = h.file("/etc/apt/sources.list.d/falcosecurity.sources").content_string
    assert "Signed-By: /usr/share/keyrings/falco-archive-keyring.asc" in sources
    assert "URIs: file:///srv/falco-fixture-repo/deb" in sources
    assert "falco-fixture-repo" in h.check_output("apt-cache policy falco")


@pytest.mark.parametrize("name", HOSTS)
def test_every_event_carries_the_host_name(name):
    assert state(name)["FALCO_HOSTNAME"] == name


def test_current_effective_config():
    """0.43.1's drop-ins, gRPC among them (the last generation that has it, for falco-exporter)."""
    s = state("falco-current")
    assert s["loaded"] == ["/etc/falco/falco.yaml", "/etc/falco/config.d/falco.container_plugin.yaml",
                           "/etc/falco/config.d/fleetwatch-grpc.yaml", "/etc/falco/config.d/fleetwatch-metrics.yaml",
                           "/etc/falco/config.d/fleetwatch-outputs.yaml", "/etc/falco/config.d/fleetwatch-rules.yaml"]
    c = s["config"]
    assert c["json_output"] is True
    assert c["metrics"]["enabled"] is True and c["metrics"]["interval"] == "1h" and c["metrics"]["output_rule"] is False
    assert c["webserver"]["enabled"] is True and c["webserver"]["prometheus_metrics_enabled"] is True
    assert (c["webserver"]["listen_address"], c["webserver"]["listen_port"]) == ("127.0.0.1", 8765)
    assert c["file_output"] == {"enabled": True, "keep_alive": False, "filename": "/var/log/falco/events.json"}
    assert c["rules"] == [{"disable": {"rule": "Clear Log Activities"}}, {"disable": {"tag": "T1036"}}]
    assert c["load_plugins"] == ["container"]
    assert c["grpc"] == {"enabled": True, "bind_address": "unix:///run/falco/falco.sock", "threadiness": 0}
    assert c["grpc_output"] == {"enabled": True}


def test_legacy_effective_config_is_the_tutorials():
    c = state("falco-legacy")["config"]
    assert c["json_output"] is True
    assert c["grpc"] == {"enabled": True, "bind_address": "unix:///var/run/falco.sock", "threadiness": 0}
    assert c["grpc_output"] == {"enabled": True}
    assert "rules_files" not in c and "/etc/falco/rules.d" in c["rules_file"]


@pytest.mark.parametrize("name", HOSTS)
def test_our_rules_files_are_in_place(name):
    h = host(name)
    assert sorted(h.check_output("ls /etc/falco/rules.d").split()) == RULES[name]
    exceptions = h.file("/etc/falco/rules.d/fleetwatch-600-exceptions.yaml").content_string
    assert ("override:\n    exceptions: append" in exceptions) == (name == "falco-current")
    assert ("append: true" in exceptions) == (name == "falco-legacy")


@pytest.mark.parametrize("name", HOSTS)
def test_rules_and_config_were_validated_before_they_went_live(name):
    h = host(name)
    log = calls(name)
    validations = [c for c in log if c["event"] == "validate"]
    assert validations, log
    first = validations[0]
    staged = ["/var/lib/fleetwatch/falco/staging/rules.d/" + f for f in RULES[name]]
    expected = ["-V", "/etc/falco/falco_rules.yaml"] + [a for f in staged for a in ("-V", f)]
    assert first["argv"][2:] == expected
    # ctime: when each file was put in place (the copy keeps the staged file's mtime).
    live_since = min(float(h.check_output("stat -c %%.Z /etc/falco/rules.d/%s", f)) for f in RULES[name])
    assert first["time"] < live_since
    dry_runs = [c for c in log if c["event"] == "dry-run"]
    # --dry-run exists from 0.35: used on 0.43.1, never asked of 0.31.1.
    assert bool(dry_runs) == (name == "falco-current")
    if dry_runs:
        assert dry_runs[0]["time"] < live_since
        # The dry-run checked the staged drop-ins (the gRPC one too), not only the packaged falco.yaml.
        assert dry_runs[0]["loaded"] == dry_run_loads(["grpc", "metrics", "outputs", "rules"])


FILES = "fleetwatch.falco_stack.files"


def files_calls(report, name):
    """The falco role's calls of the files module on a host that ran (were not skipped)."""
    return [r for r in results(report, name, FILES) if not r.get("skipped")]


def written(report, name):
    """The paths a run's files calls wrote on a host (or, in check mode, would write)."""
    return [path for r in files_calls(report, name) for path in r.get("written", [])]


def diffs(report, name):
    """{path: (before, after)} of every file content a run's files calls showed with --diff on a host."""
    return {d["before_header"]: (d.get("before"), d.get("after")) for r in files_calls(report, name)
            for d in r.get("diff", []) if isinstance(d.get("after"), str)}


def test_check_mode_on_converged_hosts_reports_no_change():
    rc, report, output = converge("--check", "--diff")
    assert rc == 0, output
    assert set(report["stats"]) == set(HOSTS)
    assert all(r["changed"] == 0 and r["failures"] == 0 for r in report["stats"].values()), report["stats"]
    # The inspection found nothing to write: the calls that write the rendered files (staged, live, the unit's
    # drop-in) were skipped, and the one left, the role's state directories, which no inspection covers, found
    # nothing to fix.
    for name in HOSTS:
        calls = files_calls(report, name)
        assert len(calls) == 1, calls
        assert calls[0]["directories"] == [] and calls[0]["written"] == [] and calls[0]["removed"] == [], calls


def test_check_mode_shows_the_change_to_the_live_files_and_writes_nothing():
    stage = "find /var/lib/fleetwatch/falco/staging -type f -exec sha256sum {} + | sort"
    before = {n: (snapshot(n), host(n).check_output(stage)) for n in HOSTS}
    changed_rules = json.dumps({"falco_local_rules": [{"list": "fleetwatch_lab_tools", "items": ["lab-probe", "lab-check"]}]})
    rc, report, output = converge("--check", "--diff", "-e", changed_rules)
    assert rc == 0, output
    live = "/etc/falco/rules.d/fleetwatch-500-local.yaml"
    for name in HOSTS:
        assert report["stats"][name]["changed"] > 0, report["stats"]
        assert live in written(report, name), written(report, name)
        old, new = diffs(report, name)[live]
        assert "- lab-check" in new and "- lab-check" not in old, (old, new)
        assert (snapshot(name), host(name).check_output(stage)) == before[name]


def test_grpc_on_0_44_is_refused_before_any_change():
    before = snapshot("falco-current")
    rc, report, output = converge("--limit", "falco-current", "-e",
                                  json.dumps({"falco_version": "0.44.1", "falco_grpc_enabled": True}))
    assert rc != 0
    assert any("falco_grpc_enabled: true needs Falco <= 0.43" in m for m in failures(report, "falco-current")), output
    assert report["stats"]["falco-current"]["changed"] == 0
    assert snapshot("falco-current") == before


def test_a_repository_key_with_another_fingerprint_is_refused():
    before = snapshot("falco-current")
    rc, report, output = converge("--limit", "falco-current", "-e", "falco_repo_key_fingerprint=" + "0" * 40)
    assert rc != 0
    refused = "not the pinned falco_repo_key_fingerprint %s. Nothing was trusted." % ("0" * 40)
    assert any(refused in m for m in failures(report, "falco-current")), output
    assert report["stats"]["falco-current"]["changed"] == 0, report["stats"]
    assert snapshot("falco-current") == before


def test_install_method_none_checks_the_installed_version():
    name = "falco-current"
    pid = state(name)["pid"]
    rc, report, output = converge("--limit", name, "-e", "falco_install_method=none")
    assert rc == 0, output
    assert report["stats"][name]["changed"] == 0, report["stats"]
    # Another release than the installed one (0.44.1 without gRPC, so the preflight lets it through).
    rc, report, output = converge("--limit", name, "-e", json.dumps(
        {"falco_install_method": "none", "falco_version": "0.44.1", "falco_grpc_enabled": False}))
    assert rc != 0
    refused = "runs Falco 0.43.1, but falco_version is 0.44.1. With falco_install_method: none, install that release"
    assert any(refused in m for m in failures(report, name)), output
    assert report["stats"][name]["changed"] == 0, report["stats"]
    assert installed_version(name) == "0.43.1" and state(name)["pid"] == pid


def test_a_configuration_falco_rejects_leaves_the_running_files_alone():
    name = "falco-current"
    before = snapshot(name)
    pid, reloads = state(name)["pid"], state(name)["reloads"]
    logged = len(calls(name))
    # An empty metrics interval: Falco (and the fixture) refuse "Metrics interval must have a minimum value".
    rc, report, output = converge("--limit", name, "-e", "falco_metrics_interval=")
    assert rc != 0
    assert [m for m in failures(report, name) if "rejected the staged configuration" in m
            and "Metrics interval must have a minimum value" in m], output
    assert [c["event"] for c in calls(name)[logged:] if c["event"] in ("dry-run", "error")] == ["error"]
    assert snapshot(name) == before
    assert state(name)["pid"] == pid and state(name)["reloads"] == reloads
    assert "interval: ''" in host(name).file("/var/lib/fleetwatch/falco/staging/config.d/fleetwatch-metrics.yaml").content_string


def test_a_bad_rule_leaves_the_running_files_alone():
    before = {n: snapshot(n) for n in HOSTS}
    pids = {n: state(n)["pid"] for n in HOSTS}
    reloads = {n: state(n)["reloads"] for n in HOSTS}
    rc, report, output = converge("-e", BAD_RULE)
    assert rc != 0
    for name in HOSTS:
        assert report["stats"][name]["failures"] == 1, report["stats"]
        refusal, = failures(report, name)
        assert "no rule by that name already exists" in refusal, refusal
        assert "were not changed and Falco keeps running on them" in refusal, refusal
        assert snapshot(name) == before[name]
        assert state(name)["pid"] == pids[name] and state(name)["reloads"] == reloads[name]
        assert host(name).service("falco-modern-bpf" if name == "falco-current" else "falco").is_running
        assert "No such rule anywhere" in host(name).file(
            "/var/lib/fleetwatch/falco/staging/rules.d/fleetwatch-500-local.yaml").content_string


# How each release gets a changed file (docs/falco.md, "How changes reach a running Falco"): 0.31.1 by the role's
# SIGHUP, 0.43.1 by its own watcher with no signal from the role (a SIGHUP during that reload would kill it).
RELOADED_BY = {"falco-legacy": "signal", "falco-current": "watcher"}
# What the fixture records of a running Falco (not of its -V, --dry-run and --version calls).
RUNNING_EVENTS = ("start", "ready", "reload", "reload-refused", "sighup-ignored", "killed-by-sighup-while-starting",
                  "killed-by-sighup-while-restarting")


def test_files_no_longer_declared_are_removed_and_falco_reloads():
    """A configuration change without a package change: the running Falco is reloaded once, the way its release
    allows, not restarted. The moves below bring the declared rules back."""
    pids = {n: state(n)["pid"] for n in HOSTS}
    reloads = {n: state(n)["reloads"] for n in HOSTS}
    logged = {n: len(calls(n)) for n in HOSTS}
    rc, report, output = converge("-e", '{"falco_local_rules": []}')
    assert rc == 0, output
    for name in HOSTS:
        h = host(name)
        assert report["stats"][name]["changed"] > 0, report["stats"]
        assert not h.file("/etc/falco/rules.d/fleetwatch-500-local.yaml").exists
        assert not h.file("/var/lib/fleetwatch/falco/staging/rules.d/fleetwatch-500-local.yaml").exists
        assert h.file("/etc/falco/rules.d/fleetwatch-600-exceptions.yaml").exists
        s = state(name)
        assert s["pid"] == pids[name] and s["reloads"] == reloads[name] + 1, (name, s)
        run = [(c["event"], c.get("by")) for c in calls(name)[logged[name]:] if c["event"] in RUNNING_EVENTS]
        assert run == [("reload", RELOADED_BY[name])], (name, run)


def assert_started_once_and_never_signalled(name, since):
    """A run that installed another version and changed the configuration restarts Falco and does not also send it
    the SIGHUP of the reload handler: the running Falco was started once and no Falco got a signal (the fixture
    records a SIGHUP in its first seconds, which would kill a real Falco still loading its rules, a SIGHUP during a
    restart, and any reload with what caused it). The Falco the package's scripts started may reload itself when
    the role's files change (its watcher) before the restart replaces it: Falco's doing, not the role's."""
    run = calls(name)[since:]
    pid = state(name)["pid"]
    assert [c["pid"] for c in run if c["event"] == "start"].count(pid) == 1, run
    signalled = [c["event"] for c in run if c["event"].startswith("killed-by-sighup")
                 or (c["event"] == "reload" and c.get("by") != "watcher")]
    assert signalled == [], run


# Both hosts to 0.44.1 in one run: falco-current upgrades from the repository (gRPC off, as 0.44 requires),
# falco-legacy moves from the tutorial's 0.31.1 to the drop-in generation with the 0.44.1 package file. Both bring
# back the local rules the test before removed (the declared state comes back).
MOVE = json.dumps({"falco_version": "0.44.1", "falco_grpc_enabled": False,
                   "falco_package_src": "{{ lab_falco_fixture_dir }}/falco-0.44.1-x86_64.deb"})


@pytest.fixture(scope="module")
def moved():
    """The move to 0.44.1, run once; the tests below read what it did."""
    before = {n: {"calls": len(calls(n)), "postinst": len(postinst_runs(n))} for n in HOSTS}
    before["falco-legacy"]["falco.yaml"] = host("falco-legacy").file("/etc/falco/falco.yaml").content_string
    rc, report, output = converge("--diff", "-e", MOVE)
    assert rc == 0, output
    return {"before": before, "report": report}


def test_the_current_host_upgrades_to_0_44_1(moved):
    name = "falco-current"
    h = host(name)
    before = moved["before"][name]
    assert moved["report"]["stats"][name]["changed"] > 0, moved["report"]["stats"]
    dry_runs = [c for c in calls(name)[before["calls"]:] if c["event"] == "dry-run"]
    assert [c["loaded"] for c in dry_runs] == [dry_run_loads(["metrics", "outputs", "rules"])]
    # The metrics drop-in changed with the version (0.44's kernel_iter_event_counters_enabled came), so both the
    # restart and the reload handler were notified.
    assert "/etc/falco/config.d/fleetwatch-metrics.yaml" in written(moved["report"], name), \
        written(moved["report"], name)
    assert_started_once_and_never_signalled(name, before["calls"])
    # The package scripts ran once more and got the driver choice again.
    assert postinst_runs(name)[before["postinst"]:] == ["driver choice: modern_ebpf falcoctl: no"]
    # 0.44 dropped falco-bpf.service and gRPC: the unit file went with the package, the gRPC drop-in with the role.
    assert not h.file("/usr/lib/systemd/system/falco-bpf.service").exists
    assert not h.file("/etc/falco/config.d/fleetwatch-grpc.yaml").exists
    s = assert_runs_modern_bpf(name, "0.44.1")
    assert "grpc" not in s["config"] and "grpc_output" not in s["config"]
    assert s["loaded"] == ["/etc/falco/falco.yaml", "/etc/falco/config.d/falco.container_plugin.yaml",
                           "/etc/falco/config.d/fleetwatch-metrics.yaml", "/etc/falco/config.d/fleetwatch-outputs.yaml",
                           "/etc/falco/config.d/fleetwatch-rules.yaml"]


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="upstream Falco reference files not found at %s" % UPSTREAM)
def test_the_tutorial_host_moves_to_the_dropin_generation(moved):
    """0.31.1 with a falco.yaml rendered by the role -> 0.44.1 (docs/upgrade.md): the package manager keeps the
    modified falco.yaml and sets 0.44.1's aside; the role puts the packaged one in place so the drop-ins load."""
    name = "falco-legacy"
    h = host(name)
    assert moved["report"]["stats"][name]["changed"] > 0, moved["report"]["stats"]
    assert installed_version(name) == "0.44.1"
    packaged = hashlib.sha256((UPSTREAM / "falco-0.44.1_falco.yaml").read_bytes()).hexdigest()
    assert h.file("/etc/falco/falco.yaml").sha256sum == packaged
    assert h.file("/etc/falco/falco.yaml.fleetwatch-replaced").content_string == moved["before"][name]["falco.yaml"]
    assert not h.file("/etc/falco/falco.yaml.dpkg-dist").exists
    s = state(name)
    assert s["loaded"][0] == "/etc/falco/falco.yaml"
    assert "/etc/falco/config.d/fleetwatch-outputs.yaml" in s["loaded"]
    assert "grpc" not in s["config"] and s["config"]["json_output"] is True
    # The disabled rules went into the configuration; the local rules came back, live and staged.
    assert sorted(h.check_output("ls /etc/falco/rules.d").split()) == RULES["falco-legacy-moved"]
    assert h.file("/var/lib/fleetwatch/falco/staging/rules.d/fleetwatch-500-local.yaml").exists


def test_the_moved_hosts_stay(moved):
    rc, report, output = converge("-e", MOVE)
    assert rc == 0, output
    assert all(report["stats"][name]["changed"] == 0 for name in HOSTS), report["stats"]
    assert all(installed_version(name) == "0.44.1" for name in HOSTS)


def test_the_scenario_version_downgrades_it_back():
    """0.44.1 -> the scenario's 0.43.1 with gRPC on again. That it then stays is the idempotence step's proof: the
    same 0.43.1 pinned, with the newer 0.44.1 in the repository."""
    name = "falco-current"
    h = host(name)
    runs = len(postinst_runs(name))
    logged = len(calls(name))
    rc, report, output = converge("--limit", name, "--diff")
    assert rc == 0, output
    assert set(report["stats"]) == {name} and report["stats"][name]["changed"] > 0, report["stats"]
    dry_runs = [c for c in calls(name)[logged:] if c["event"] == "dry-run"]
    assert [c["loaded"] for c in dry_runs] == [dry_run_loads(["grpc", "metrics", "outputs", "rules"])]
    # The metrics drop-in changed with the version (0.44's kernel_iter_event_counters_enabled went) and the gRPC one
    # came back, so both the restart and the reload handler were notified.
    assert {"/etc/falco/config.d/fleetwatch-metrics.yaml", "/etc/falco/config.d/fleetwatch-grpc.yaml"} <= set(
        written(report, name)), written(report, name)
    assert_started_once_and_never_signalled(name, logged)
    assert postinst_runs(name)[runs:] == ["driver choice: modern_ebpf falcoctl: no"]
    # 0.43.x still ships falco-bpf.service; the role keeps it stopped and disabled.
    assert h.file("/usr/lib/systemd/system/falco-bpf.service").exists
    s = assert_runs_modern_bpf(name, "0.43.1")
    assert "/etc/falco/config.d/fleetwatch-grpc.yaml" in s["loaded"]
    assert s["config"]["grpc"] == {"enabled": True, "bind_address": "unix:///run/falco/falco.sock", "threadiness": 0}
    assert s["config"]["grpc_output"] == {"enabled": True}
