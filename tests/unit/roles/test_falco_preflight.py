"""The falco role's preflight, run on localhost through the role's own preflight tasks (read-only).

Each case is a play that must fail with a message naming the variable and saying what to change, or pass
(with a warning where the issue asks for one).
"""

import platform
import re
import shutil

import pytest

from falco_helpers import REPO, UPSTREAM, UPSTREAM_REASON, collections_dir, load_yaml, run_failures, run_playbook
from fixture_packages import REAL_FALCO_DEB, REAL_FALCO_DEB_REASON, build_deb, rpm_bytes

needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed (apt-get install dpkg)")

STABLE_RULES = UPSTREAM / "falcosecurity-rules_falco-rules-5.1.0_falco_rules.yaml"


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    return collections_dir(tmp_path_factory)


def preflight(collections, **extra):
    return run_playbook("falco_preflight.yml", collections, extra)


def refusals(collections, **extra):
    """The messages of the failed preflight tasks (from the JSON callback), one per failed task or loop item."""
    rc, failed = run_failures("falco_preflight.yml", collections, dict({"__falco_kernel_has_btf": True}, **extra))
    assert rc != 0, "preflight passed"
    return [f["msg"] if isinstance(f["msg"], str) else " ".join(f["msg"]) for f in failed]


def test_defaults_pass(collections):
    rc, output = preflight(collections, __falco_kernel_has_btf=True)
    assert rc == 0, output
    assert "changed=0" in output


def test_unknown_driver_is_refused_with_the_choices(collections):
    rc, output = preflight(collections, falco_driver="ebpf")
    assert rc != 0
    assert "falco_driver 'ebpf' is not a driver Falco 0.44.1 knows" in output
    assert "auto, modern_ebpf, kmod, nodriver" in output


def test_driver_the_version_does_not_know(collections):
    rc, output = preflight(collections, falco_version="0.31.1", falco_driver="modern_ebpf", falco_metrics_enabled=False)
    assert rc != 0
    assert "falco_driver 'modern_ebpf' is not a driver Falco 0.31.1 knows" in output
    assert "auto, kmod, nodriver" in output


def test_grpc_with_0_44_points_to_native_metrics(collections):
    rc, output = preflight(collections, falco_grpc_enabled=True)
    assert rc != 0
    assert "falco_grpc_enabled: true needs Falco <= 0.43" in output
    assert "removed in 0.44.0" in output
    assert "falco_metrics_enabled: true" in output


@pytest.mark.parametrize("value,refused", [("true", True), ("yes", True), ("false", False), ("False", False)])
def test_grpc_from_the_command_line_is_read_as_a_boolean(collections, value, refused):
    # -e key=value passes the string; "false" must not count as asking for gRPC.
    rc, output = run_playbook("falco_preflight.yml", collections, {"__falco_kernel_has_btf": True},
                              "-e", "falco_grpc_enabled=" + value)
    assert (rc != 0) == refused, output
    assert ("falco_grpc_enabled: true needs Falco <= 0.43" in output) == refused


def test_grpc_with_0_43_passes(collections):
    rc, output = preflight(collections, falco_version="0.43.1", falco_grpc_enabled=True, __falco_kernel_has_btf=True)
    assert rc == 0, output


def test_modern_ebpf_without_btf(collections):
    # __falco_kernel_has_btf is what the role derives from its stat of /sys/kernel/btf/vmlinux; extra vars
    # override it, the same way a kernel without BTF would make the stat report no file.
    rc, output = preflight(collections, falco_driver="modern_ebpf", __falco_kernel_has_btf=False)
    assert rc != 0
    assert "falco_driver: modern_ebpf needs kernel BTF (/sys/kernel/btf/vmlinux)" in output
    assert "Use falco_driver: kmod" in output


def test_auto_without_btf_picks_kmod_and_needs_headers(collections):
    # This machine's kernel is not a distribution kernel, so its headers are in no repository.
    rc, output = preflight(collections, __falco_kernel_has_btf=False)
    assert rc != 0
    assert "resolved to kmod" in output
    assert "linux-headers-" in output or "kernel-devel-" in output


@pytest.mark.parametrize("exception,what", [
    ({"fields": ["proc.name", "fd.name"], "comps": ["="], "values": [["a", "b"]]},
     "fields has 2 entries but comps has 1: give one comparison operator per field"),
    ({"fields": ["proc.name"], "comps": ["="], "values": [["a", "b"]]},
     "values row 1 has 2 value(s) for 1 field(s): every row of values needs one value per field"),
])
def test_exception_with_disagreeing_lengths(collections, exception, what):
    exception = dict(exception, rule="Read sensitive file untrusted", name="bad_one")
    messages = refusals(collections, falco_rule_exceptions=[exception])
    assert len(messages) == 1, messages
    assert messages[0].startswith("falco_rule_exceptions item 1 (exception 'bad_one' on rule 'Read sensitive file "
                                  "untrusted'): " + what), messages


def test_every_problem_of_the_exceptions_is_reported_at_once(collections):
    good = {"rule": "Read sensitive file untrusted", "name": "ok", "fields": ["proc.name"], "comps": ["="],
            "values": [["a"]]}
    messages = refusals(collections, falco_rule_exceptions=[
        good,
        dict(good, name="typo", comps=["equals"]),
        {"rule": "Terminal shell in container", "name": "yaml_no", "fields": ["user.name"], "comps": ["="],
         "values": [[False]]}])
    assert len(messages) == 1, messages  # one task, every problem listed
    assert "falco_rule_exceptions item 2 (exception 'typo' on rule 'Read sensitive file untrusted'): comps entry 1 " \
        "('equals') is not a comparison operator Falco knows" in messages[0]
    assert "falco_rule_exceptions item 3 (exception 'yaml_no' on rule 'Terminal shell in container'): values row 1, " \
        "value 1 is the boolean false: quote it" in messages[0]
    assert "item 1 " not in messages[0]


LOCAL_RULE = {"rule": "Shell in backup container", "desc": "A shell ran in a backup container",
              "condition": "spawned_process and proc.name = bash", "output": "Shell (user=%user.name)",
              "priority": "Notice", "tags": ["shell"]}


def test_local_rules_in_falcos_shape_pass(collections):
    rules = [{"list": "backup_binaries", "items": ["restic", "borg"]},
             {"macro": "backup_process", "condition": "proc.name in (backup_binaries)"},
             dict(LOCAL_RULE, priority="WARNING"),
             {"rule": "Read sensitive file untrusted", "condition": "and not backup_process",
              "override": {"condition": "append"}}]
    rc, output = preflight(collections, falco_local_rules=rules, __falco_kernel_has_btf=True)
    assert rc == 0, output


def test_every_problem_of_the_local_rules_is_named_with_its_item(collections):
    rules = [LOCAL_RULE,
             dict((k, v) for k, v in LOCAL_RULE.items() if k != "priority"),
             {"macro": "backup_process", "conditon": "proc.name = restic"},
             {"list": "backup_binaries", "items": "restic"},
             dict(LOCAL_RULE, rule="Loud", priority="Loud"),
             {"rul": "Typo"}]
    rules[1]["prio"] = "Warning"
    messages = refusals(collections, falco_local_rules=rules)
    assert len(messages) == 1, messages
    text = messages[0]
    for expected in [
            "falco_local_rules item 2 (rule 'Shell in backup container'): unknown key 'prio', did you mean 'priority'?",
            "falco_local_rules item 3 (macro 'backup_process'): unknown key 'conditon', did you mean 'condition'?",
            "falco_local_rules item 4 (list 'backup_binaries'): items must be a list of strings or numbers, not 'restic'",
            "falco_local_rules item 5 (rule 'Loud'): priority 'Loud' is not a priority Falco knows",
            "falco_local_rules item 6 (keys 'rul') is neither a rule, a macro, a list",
    ]:
        assert expected in text, text
    assert "item 1 " not in text


def test_legacy_generation_takes_append_and_refuses_override(collections):
    appended = {"rule": "Write below binary dir", "append": True, "condition": "and not proc.name = backup-agent"}
    legacy = {"falco_version": "0.31.1", "falco_driver": "nodriver", "falco_metrics_enabled": False}
    rc, output = preflight(collections, falco_local_rules=[appended], **legacy)
    assert rc == 0, output
    overridden = {"rule": "Write below binary dir", "condition": "and not proc.name = backup-agent",
                  "override": {"condition": "append"}}
    messages = refusals(collections, falco_local_rules=[overridden], **legacy)
    assert messages == ["falco_local_rules item 1 (rule 'Write below binary dir'): 'override' needs Falco 0.37.0 or "
                        "newer, and falco_version is 0.31.1 (use append: true)"], messages
    rc, output = preflight(collections, falco_local_rules=[overridden], __falco_kernel_has_btf=True)
    assert rc == 0, output


@pytest.mark.skipif(not STABLE_RULES.is_file(), reason=UPSTREAM_REASON)
def test_exception_on_a_rule_the_default_ruleset_lacks_is_a_warning(collections):
    exceptions = [
        {"rule": "Read sensitive file untrusted", "name": "ok", "fields": ["proc.name"], "comps": ["="], "values": [["a"]]},
        {"rule": "My own rule", "name": "mine", "fields": ["proc.name"], "comps": ["="], "values": [["a"]]},
    ]
    # The stable rules file stands in for the host's /etc/falco/falco_rules.yaml.
    rc, output = preflight(collections, falco_rule_exceptions=exceptions, __falco_kernel_has_btf=True,
                           __falco_default_rules_file=str(STABLE_RULES))
    assert rc == 0, output
    assert "WARNING: falco_rule_exceptions names rule(s) My own rule," in output
    assert "Read sensitive file untrusted," not in output


def test_tutorial_settings_pass(collections):
    rc, output = preflight(collections, falco_version="0.31.1", falco_driver="nodriver",
                           falco_grpc_enabled=True, falco_install_method="package",
                           falco_package_src="https://download.falco.org/packages/rpm/falco-0.31.1-x86_64.rpm")
    assert rc == 0, output


def package_settings(path):
    return {"falco_install_method": "package", "falco_package_src": str(path)}


@needs_dpkg_deb
def test_a_package_file_of_another_version_is_refused_whatever_its_name(collections, tmp_path):
    deb = build_deb(tmp_path, "0.43.1", filename="falco-0.44.1-x86_64.deb")
    assert refusals(collections, **package_settings(deb)) == [
        "falco_package_src '%s' holds Falco 0.43.1 (version 0.43.1 read from the package itself; the file name does "
        "not count), but falco_version is 0.44.1. Point falco_package_src at the 0.44.1 package, or set falco_version "
        "to 0.43.1." % deb]


@needs_dpkg_deb
def test_a_renamed_package_file_of_falco_version_passes(collections, tmp_path):
    deb = build_deb(tmp_path, "0.44.1-1", filename="mirror-7f3a9c.deb")
    rc, output = preflight(collections, __falco_kernel_has_btf=True, **package_settings(deb))
    assert rc == 0, output


def test_a_hand_written_rpm_of_the_tutorials_release_passes(collections, tmp_path):
    rpm = tmp_path / "falco.rpm"
    rpm.write_bytes(rpm_bytes(version="0.31.1"))
    rc, output = preflight(collections, falco_version="0.31.1", falco_driver="nodriver", falco_metrics_enabled=False,
                           **package_settings(rpm))
    assert rc == 0, output


@needs_dpkg_deb
def test_a_package_file_that_is_not_falco_is_refused(collections, tmp_path):
    deb = build_deb(tmp_path, "0.44.1", name="falcon")
    assert refusals(collections, **package_settings(deb)) == [
        "falco_package_src '%s' is the package 'falcon' 0.44.1, not falco. Point falco_package_src at the Falco 0.44.1 "
        ".deb or .rpm." % deb]


@pytest.mark.parametrize("content,reason", [(None, "no package file"),
                                            (b"<html>", "is not a package file whose version can be read")])
def test_a_package_file_that_cannot_be_read_is_refused(collections, tmp_path, content, reason):
    path = tmp_path / "falco-0.44.1-x86_64.deb"
    if content is not None:
        path.write_bytes(content)
    messages = refusals(collections, **package_settings(path))
    assert len(messages) == 1 and "package_info: " in messages[0] and reason in messages[0], messages


@pytest.mark.skipif(not REAL_FALCO_DEB.is_file(), reason=REAL_FALCO_DEB_REASON)
def test_the_real_falco_package_passes_for_0_44_1_and_is_refused_for_0_43_1(collections):
    rc, output = preflight(collections, __falco_kernel_has_btf=True, **package_settings(REAL_FALCO_DEB))
    assert rc == 0, output
    messages = refusals(collections, falco_version="0.43.1", **package_settings(REAL_FALCO_DEB))
    assert messages and messages[0].startswith("falco_package_src '%s' holds Falco 0.44.1" % REAL_FALCO_DEB), messages


def download_check(collections, path, version="0.44.1", name="falco-0.44.1-x86_64.deb"):
    """The role's check of a downloaded file (tasks/package_version.yml), the file standing in for the download."""
    return run_failures("falco_package_version.yml", collections, {
        "falco_version": version, "__falco_package_file": str(path),
        "falco_package_src": "https://mirror.example.invalid/falco/" + name})


@needs_dpkg_deb
def test_a_downloaded_deb_of_falco_version_passes_and_stays(collections, tmp_path):
    deb = build_deb(tmp_path, "0.44.1-1")
    rc, failed = download_check(collections, deb)
    assert rc == 0 and failed == [] and deb.is_file()


@needs_dpkg_deb
def test_a_downloaded_deb_of_another_version_is_refused_and_removed(collections, tmp_path):
    deb = build_deb(tmp_path, "0.43.1")
    rc, failed = download_check(collections, deb)
    assert rc != 0 and not deb.exists()
    assert [f["msg"] for f in failed] == [
        "falco_package_src https://mirror.example.invalid/falco/falco-0.44.1-x86_64.deb delivered falco 0.43.1 (read "
        "from the downloaded package on localhost), but falco_version is 0.44.1; the download was removed. Point "
        "falco_package_src at the 0.44.1 package, or set falco_version to the release the URL serves."]


def test_a_download_that_is_no_package_is_refused_and_removed(collections, tmp_path):
    page = tmp_path / "falco-0.44.1-x86_64.deb"
    page.write_text("<html>Mirror maintenance</html>")
    rc, failed = download_check(collections, page)
    assert rc != 0 and not page.exists()
    assert len(failed) == 1 and failed[0]["msg"].startswith(
        "falco_package_src https://mirror.example.invalid/falco/falco-0.44.1-x86_64.deb downloaded to %s on localhost "
        "is not a package dpkg-deb can read (" % page), failed


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm not installed (apt-get install rpm)")
def test_a_downloaded_rpm_is_read_with_rpm(collections, tmp_path):
    rpm = tmp_path / "falco-0.31.1-x86_64.rpm"
    rpm.write_bytes(rpm_bytes(version="0.31.1"))
    rc, failed = download_check(collections, rpm, version="0.31.1", name="falco-0.31.1-x86_64.rpm")
    assert rc == 0 and failed == [], failed
    rc, failed = download_check(collections, rpm, version="0.31.2", name="falco-0.31.1-x86_64.rpm")
    assert rc != 0 and not rpm.exists()
    assert "delivered falco 0.31.1 (read from the downloaded package on localhost), but falco_version is 0.31.2" in \
        failed[0]["msg"], failed


def test_unsupported_middle_versions(collections):
    rc, output = preflight(collections, falco_version="0.36.2")
    assert rc != 0
    assert "0.34 to 0.37 are not supported" in output


def test_disable_by_tag_before_0_38(collections):
    rc, output = preflight(collections, falco_version="0.31.1", falco_driver="nodriver", falco_metrics_enabled=False,
                           falco_disabled_rules=[{"tag": "shell"}])
    assert rc != 0
    assert "falco_disabled_rules by tag needs Falco >= 0.38" in output


def test_misspelled_variable(collections):
    rc, output = preflight(collections, falco_dirver="kmod")
    assert rc != 0
    assert "falco_dirver (did you mean falco_driver?)" in output


def test_ruleset_url_without_checksum(collections):
    rc, output = preflight(collections, __falco_kernel_has_btf=True, falco_rulesets=[
        {"name": "incubating", "src": "https://example.invalid/falco-incubating_rules.yaml"}])
    assert rc != 0
    assert "a URL src needs a checksum" in output


def test_a_host_falco_does_not_ship_for_is_refused(collections):
    # __falco_architectures lists what Falco ships for; leaving out this machine's architecture makes it the
    # 32-bit host (armv7l, i686) the check is for.
    others = [a for a in ("x86_64", "aarch64") if a != platform.machine()]
    rc, output = preflight(collections, __falco_architectures=others, __falco_kernel_has_btf=True)
    assert rc != 0
    assert "Falco ships for 64-bit x86_64 and aarch64 only; localhost is %s" % platform.machine() in output
    assert "install the 64-bit OS" in output


def test_variables_of_the_falco_exporter_role_are_not_the_falco_roles_to_refuse(collections):
    # falco_exporter_* starts with falco_, but belongs to the falco_exporter role (which checks it itself): a host
    # running both roles, like the example inventory's fedora-legacy, must pass the falco role's check.
    exporter_vars = load_yaml(REPO / "roles" / "falco_exporter" / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    own = {name: "x" for name in exporter_vars if name.startswith("falco_exporter_")}
    assert "falco_exporter_listen_address" in own
    rc, output = preflight(collections, __falco_kernel_has_btf=True, **own)
    assert rc == 0, output


def test_a_misspelled_falco_variable_is_still_refused_next_to_falco_exporter_ones(collections):
    # falco_exporterx is not in the falco_exporter role's namespace (falco_exporter_): still the falco role's typo.
    rc, output = preflight(collections, __falco_kernel_has_btf=True, falco_exporter_listen_address="0.0.0.0:9376",
                           falco_exporterx="1", falco_grpc_enabeld=True)
    assert rc != 0
    refused = re.search(r"Unknown variable\(s\) ([a-z_, ]+):", output)
    assert refused, output
    assert sorted(refused.group(1).split(", ")) == ["falco_exporterx", "falco_grpc_enabeld"]
    assert "falco_grpc_enabeld (did you mean falco_grpc_enabled?)" in output


def test_the_example_inventorys_legacy_host_passes(collections):
    host_vars = load_yaml(REPO / "inventories" / "example" / "host_vars" / "fedora-legacy.yml")
    assert "falco_exporter_listen_address" in host_vars
    # Its kmod driver needs kernel headers this machine's repositories lack: nodriver keeps the rest of the host as is.
    rc, output = preflight(collections, **dict(host_vars, falco_driver="nodriver"))
    assert rc == 0, output


# One setting wrong at a time: the refusal names that variable, says what to set, and names none of the others.
SETTINGS = ["falco_package_src", "falco_repo_key_fingerprint", "falco_http_output_url", "falco_file_output_path",
            "falco_metrics_port", "falco_hostname"]


@pytest.mark.parametrize("variable,settings,fix", [
    ("falco_package_src", {"falco_install_method": "package", "falco_package_src": "/tmp/falco.tar.gz"}, ".deb or .rpm"),
    ("falco_repo_key_fingerprint", {"falco_repo_key_fingerprint": "478b 2fbb"}, "40 upper-case hex digits"),
    ("falco_http_output_url", {"falco_http_output_url": "sidekick:2801"}, "http://sidekick:2801/"),
    ("falco_file_output_path", {"falco_file_output_path": "events.json"}, "absolute path"),
    ("falco_metrics_port", {"falco_metrics_port": 70000}, "1 to 65535"),
    ("falco_hostname", {"falco_hostname": "web 1"}, "letters, digits"),
])
def test_each_setting_is_refused_on_its_own(collections, variable, settings, fix):
    messages = refusals(collections, **settings)
    assert len(messages) == 1, messages
    assert variable in messages[0] and fix in messages[0], messages[0]
    assert not [other for other in SETTINGS if other != variable and other in messages[0]], messages[0]


@pytest.mark.parametrize("settings,wanted", [
    ({"falco_rulesets": [{"name": "a", "src": "/tmp/a.yaml"}, {"src": "/tmp/b.yaml"}]},
     ["falco_rulesets item 2 ({\"src\": \"/tmp/b.yaml\"}) needs a name and a src"]),
    ({"falco_rulesets": [{"name": "../x", "src": "/tmp/a.yaml"}]}, ["falco_rulesets item 1: the name '../x'"]),
    ({"falco_rulesets": [{"name": "a", "src": "/tmp/a.yaml"}, {"name": "a", "src": "/tmp/b.yaml"}]},
     ["falco_rulesets names must be unique (each is a file of its own): a appear"]),
    ({"falco_rulesets": [{"name": "ok", "src": "https://x.invalid/r.yaml", "checksum": "sha256:00"},
                         {"name": "incubating", "src": "https://x.invalid/r.yaml"}]},
     ["falco_rulesets item 2 ('incubating'): a URL src needs a checksum"]),
    ({"falco_disabled_rules": [{"rule": "A"}, {"name": "B"}, {"tag": "t", "rule": "C"}]},
     ["falco_disabled_rules item 2 ({\"name\": \"B\"}) must be {rule: NAME} or {tag: TAG}",
      "falco_disabled_rules item 3 ({\"tag\": \"t\", \"rule\": \"C\"}) must be"]),
])
def test_rulesets_and_disabled_rules_are_refused_item_by_item(collections, settings, wanted):
    messages = refusals(collections, **settings)
    assert len(messages) == len(wanted), messages
    for message, start in zip(messages, wanted):
        assert message.startswith(start), message
