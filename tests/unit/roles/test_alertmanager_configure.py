"""Role alertmanager, configure phase, run for real on this machine in package mode against a temporary directory with
the distribution's amtool: what a refused configuration tells the user, and what happens to dropped templates."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from localplay import NEEDS_ANSIBLE_PLAYBOOK, group_exists, results, run_json  # noqa: E402

SECRET = "fault-secret-8v1Qx"


pytestmark = [
    NEEDS_ANSIBLE_PLAYBOOK,
    pytest.mark.skipif(not Path("/usr/bin/amtool").exists() or not group_exists("prometheus"),
                       reason="needs Debian's prometheus-alertmanager package (amtool, group prometheus): "
                              "scripts/setup.sh installs it"),
]


def configure(tmp_path, *args, phases=("configure",), **role_vars):
    config_dir = tmp_path / "alertmanager"
    # The distribution as preflight learns it: package mode's names come from the role's map for this family.
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.setup": {"gather_subset": ["!all", "!min", "distribution"]}}] + [
        {"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack.alertmanager", "tasks_from": phase}}
        for phase in phases]}]
    variables = dict({"alertmanager_config_dir": str(config_dir),
                      "alertmanager_storage_path": str(tmp_path / "storage")}, **role_vars)
    rc, report, output = run_json(tmp_path, play, variables, *args)
    return config_dir, rc, output, report


def test_a_refused_configuration_says_amtools_reason_without_the_receivers_secrets(tmp_path):
    receiver = {"name": "oncall", "webhook_configs": [{
        "url": "localhost:9096/alerts",  # no scheme: amtool refuses it
        "http_config": {"basic_auth": {"username": "fleet", "password": SECRET}}}]}
    config_dir, rc, output, report = configure(tmp_path, "-vvv", alertmanager_receivers=[receiver],
                                               alertmanager_default_receiver="oncall",
                                               alertmanager_global={"smtp_auth_password": SECRET + "-global"})
    assert rc != 0 and report["stats"]["localhost"]["failures"] == 1, output[-3000:]
    reason, = [r["msg"] for r in results(report, "ansible.builtin.fail") if r.get("failed")]
    assert 'unsupported scheme "localhost" for URL' in reason, reason[-3000:]
    assert "was not written, the running Alertmanager keeps its configuration" in reason
    assert "alertmanager_receivers" in reason
    assert SECRET not in output
    assert not (config_dir / "alertmanager.yml").exists()


# With the catch-up first (as the role runs), its inspection lists the templates; without it (its tags skipped), the
# configure phase finds them itself.
@pytest.mark.parametrize("phases", [("catch_up", "configure"), ("configure",)], ids=["inspected", "found"])
def test_a_template_dropped_from_the_variable_is_removed_and_the_others_kept(tmp_path, phases):
    template = '{{ "{{" }} define "lab.extra" {{ "}}" }}extra{{ "{{" }} end {{ "}}" }}'
    # No receivers: the configuration is valid; the play stops at the reload handler (no service here), after the
    # files are written.
    config_dir, rc, output, report = configure(tmp_path, phases=phases,
                                               alertmanager_notification_templates={"extra.tmpl": template})
    templates = config_dir / "templates"
    assert (templates / "extra.tmpl").read_text() == '{{ define "lab.extra" }}extra{{ end }}', output[-3000:]
    assert (templates / "fleetwatch.tmpl").exists()
    (templates / "README").write_text("not a template: left alone\n")
    # Alertmanager's glob loads names that start with a dot too.
    (templates / ".stray.tmpl").write_text("{{ define \"stray\" }}{{ end }}\n")

    config_dir, rc, output, report = configure(tmp_path, phases=phases)
    assert not (templates / "extra.tmpl").exists(), output[-3000:]
    assert not (templates / ".stray.tmpl").exists(), output[-3000:]
    assert (templates / "fleetwatch.tmpl").exists() and (templates / "README").exists()
    removed = sorted(item["path"] for result in results(report, "ansible.builtin.file")
                     for item in result.get("results", []) if item.get("state") == "absent" and item.get("changed"))
    assert removed == ["%s/.stray.tmpl" % templates, "%s/extra.tmpl" % templates], removed
    # The catch-up's inspection listed the templates; only without it does the configure phase look for them.
    finds = [r for r in results(report, "ansible.builtin.find") if not r.get("skipped")]
    assert len(finds) == (1 if phases == ("configure",) else 0), finds

    config_dir, rc, output, report = configure(tmp_path, phases=phases, alertmanager_notification_templates_enabled=False)
    assert not (templates / "fleetwatch.tmpl").exists(), output[-3000:]
