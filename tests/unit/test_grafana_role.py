"""Role grafana run for real on this machine against temporary directories (configure phase), and its container
definition rendered. Grafana itself cannot run here: see docs/grafana.md for what is and isn't exercised.
"""

import configparser
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from localplay import ansible_playbook, results, run_json

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "grafana"
REFERENCE_11914 = REPO.parent / "shared" / "upstream" / "grafana-reference" / "falco-exporter_grafana-dashboard-11914.json"
PASSWORD = "fixture-pass#;word"


def role_play(**role_vars):
    return [{"hosts": "localhost", "gather_facts": False,
             "roles": [dict({"role": "fleetwatch.falco_stack.grafana"}, **role_vars)]}]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    if not shutil.which("ansible-playbook"):
        pytest.skip("ansible-playbook not on PATH (activate the venv: . scripts/lib.sh; activate_venv)")
    if not shutil.which("podman"):
        pytest.skip("podman is not installed: preflight of container mode needs the podman command")
    if os.geteuid() != 0:
        pytest.skip("the role sets file owners (uid 472, gid 0): run as root")
    return tmp_path_factory.mktemp("grafana")


def role_vars(workdir, **overrides):
    base = {
        "grafana_mode": "container",
        "grafana_container_engine": "podman",
        # never an existing container: the restart handler then has nothing to restart
        "grafana_container_name": "fleetwatch-unit-fixture-" + uuid.uuid4().hex[:8],
        "grafana_config_dir": str(workdir / "etc" / "grafana"),
        "grafana_data_dir": str(workdir / "var" / "lib" / "grafana"),
        "grafana_admin_password": PASSWORD,
        "grafana_datasource_url": "http://prometheus.example:9090",
        "grafana_dashboard_cache_dir": str(workdir / "cache"),
    }
    base.update(overrides)
    return base


CONFIGURE = ("--tags", "grafana_configure")


@pytest.fixture(scope="module")
def configured(workdir):
    """First run of the configure phase, with a stale dashboard left in the directory by an earlier release."""
    dashboards = workdir / "etc" / "grafana" / "dashboards"
    dashboards.mkdir(parents=True)
    (dashboards / "retired-dashboard.json").write_text("{}")
    extra = workdir / "extra-dashboard.json"
    extra.write_text(json.dumps({"uid": "site-extra", "title": "Site extra", "panels": [], "schemaVersion": 39}))
    variables = role_vars(workdir, grafana_dashboards_extra=[str(extra)])
    rc, output, recap = ansible_playbook(workdir, role_play(), variables, *CONFIGURE)
    assert rc == 0, output
    return variables, output, recap


def test_grafana_ini_has_anonymous_off_and_the_admin_from_the_inventory(configured):
    variables = configured[0]
    ini_file = Path(variables["grafana_config_dir"]) / "grafana.ini"
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(ini_file.read_text())
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["security"]["admin_user"] == "admin"
    assert ini["security"]["admin_password"] == '"""%s"""' % PASSWORD
    assert ini["server"]["http_port"] == "3000"
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["paths"]["data"] == variables["grafana_data_dir"]
    assert ini["paths"]["provisioning"] == variables["grafana_config_dir"] + "/provisioning"
    stat = ini_file.stat()
    assert stat.st_mode & 0o777 == 0o640 and stat.st_uid == 0 and stat.st_gid == 0


def test_password_never_appears_in_the_output(configured):
    assert PASSWORD not in configured[1]


def test_datasource_is_provisioned_with_the_uid_the_dashboards_use(configured):
    variables = configured[0]
    provisioned = yaml.safe_load((Path(variables["grafana_config_dir"]) / "provisioning/datasources/fleetwatch.yml").read_text())
    assert provisioned["apiVersion"] == 1
    [source] = provisioned["datasources"]  # no falcosidekick host with a Loki output: no Loki datasource
    assert source["uid"] == "fleetwatch-prometheus"
    assert source["type"] == "prometheus" and source["access"] == "proxy" and source["isDefault"] is True
    assert source["url"] == "http://prometheus.example:9090"
    assert source["editable"] is False
    assert provisioned["prune"] is True, "a datasource left out of the file (Loki switched off) is deleted by Grafana"
    for dashboard in (ROLE / "files" / "dashboards").glob("*.json"):
        [variable] = [v for v in json.loads(dashboard.read_text())["templating"]["list"] if v["name"] == "datasource"]
        assert variable["current"]["value"] == source["uid"], dashboard.name


def test_dashboard_provider_points_at_the_synced_directory(configured):
    variables = configured[0]
    providers = yaml.safe_load((Path(variables["grafana_config_dir"]) / "provisioning/dashboards/fleetwatch.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == variables["grafana_config_dir"] + "/dashboards"
    assert provider["allowUiUpdates"] is False


def test_declared_dashboards_are_installed_and_the_retired_one_removed(configured):
    directory = Path(configured[0]["grafana_config_dir"]) / "dashboards"
    assert sorted(p.name for p in directory.iterdir()) == [
        "extra-dashboard.json", "falco-fleet.json", "falco-legacy-events.json", "host-node-exporter.json"]
    for name in ["falco-fleet", "falco-legacy-events", "host-node-exporter"]:
        assert (directory / (name + ".json")).read_bytes() == (ROLE / "files" / "dashboards" / (name + ".json")).read_bytes()


def test_data_directory_belongs_to_the_image_user(configured):
    stat = Path(configured[0]["grafana_data_dir"]).stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (472, 0, 0o750)


def restarted(report):
    """Whether the run's restart handler ran (container mode under podman: the handler's shell task)."""
    return [r for r in results(report, "ansible.builtin.shell") if not r.get("skipped")] != []


def sent(report):
    """Each files module call the run made: what it was sent (paths of its files, directories and removals) and what
    it returned. A call skipped on the controller sent nothing."""
    return [({key: [entry["path"] if isinstance(entry, dict) else entry
                    for entry in r["invocation"]["module_args"][key]] for key in ("files", "directories", "absent")}, r)
            for r in results(report, "fleetwatch.falco_stack.files") if not r.get("skipped")]


def dashboard_files(variables):
    return sorted((Path(variables["grafana_config_dir"]) / "dashboards").glob("*.json"))


def test_second_run_and_check_mode_change_nothing(configured, workdir):
    variables = configured[0]
    for args in [CONFIGURE, CONFIGURE + ("--check", "--diff")]:
        rc, output, recap = ansible_playbook(workdir, role_play(), variables, *args)
        assert rc == 0, output
        assert recap["changed"] == 0, output
        assert PASSWORD not in output


def test_dashboards_no_longer_declared_are_removed(configured, workdir):
    variables = dict(configured[0], grafana_dashboards=["falco-fleet"], grafana_dashboards_extra=[])
    directory = Path(variables["grafana_config_dir"]) / "dashboards"
    rc, report, output = run_json(workdir, role_play(), variables, *CONFIGURE)
    assert rc == 0, output
    assert [p.name for p in directory.iterdir()] == ["falco-fleet.json"]
    # the dashboard kept is unchanged: the call removes the others and sends no content
    [(arguments, returned)] = sent(report)
    removed = sorted(str(directory / name) for name in
                     ["extra-dashboard.json", "falco-legacy-events.json", "host-node-exporter.json"])
    assert arguments == {"files": [], "directories": [], "absent": removed}
    assert sorted(returned["removed"]) == removed
    rc, output = ansible_playbook(workdir, role_play(), configured[0], *CONFIGURE)[:2]  # back to the first state
    assert rc == 0, output


def test_a_converged_host_is_sent_no_dashboard(configured, workdir):
    """The inspection reports every dashboard's SHA-1, the controller compares, and nothing differs: no files call,
    in a normal run and in check mode with --diff."""
    variables = configured[0]
    dashboards = dashboard_files(variables)
    assert len(dashboards) == 4
    for args in [CONFIGURE, CONFIGURE + ("--check", "--diff")]:
        rc, report, output = run_json(workdir, role_play(), variables, *args)
        assert rc == 0, output
        [inspection] = [r for r in results(report, "fleetwatch.falco_stack.host_inspect") if not r.get("skipped")]
        for path in dashboards:
            assert inspection["paths"][str(path)]["sha1"] == hashlib.sha1(path.read_bytes()).hexdigest(), path
        assert sent(report) == [], "a converged host needs no files call"
        assert results(report, "fleetwatch.falco_stack.files"), "the files task is there, skipped"
        assert report["stats"]["localhost"]["changed"] == 0, output


def test_check_mode_sends_only_the_changed_dashboard_and_changes_nothing(configured, workdir):
    variables = configured[0]
    dashboard = Path(variables["grafana_config_dir"]) / "dashboards" / "host-node-exporter.json"
    dashboard.write_text("{}")
    try:
        rc, report, output = run_json(workdir, role_play(), variables, *CONFIGURE, "--check", "--diff")
        assert rc == 0, output
        [(arguments, returned)] = sent(report)
        assert arguments == {"files": [str(dashboard)], "directories": [], "absent": []}
        assert returned["changed"] and returned["written"] == [str(dashboard)]
        [diff] = returned["diff"]
        assert (diff["before"], diff["after_header"]) == ("{}", str(dashboard))
        assert diff["after"] == (ROLE / "files" / "dashboards" / "host-node-exporter.json").read_text()
        assert dashboard.read_text() == "{}", "check mode wrote nothing"
        assert not restarted(report)
    finally:
        rc, output = ansible_playbook(workdir, role_play(), variables, *CONFIGURE)[:2]
        assert rc == 0, output


def test_a_changed_dashboard_is_rewritten_without_a_restart_and_a_changed_provider_restarts(configured, workdir):
    """Grafana re-reads its dashboard directory by itself; the dashboard provider it reads only at start. Only the
    file that differs is sent to the host."""
    variables = configured[0]
    config = Path(variables["grafana_config_dir"])
    dashboard = config / "dashboards" / "falco-fleet.json"
    dashboard.write_text("{}")
    rc, report, output = run_json(workdir, role_play(), variables, *CONFIGURE)
    assert rc == 0, output
    [(arguments, returned)] = sent(report)
    assert arguments == {"files": [str(dashboard)], "directories": [], "absent": []}
    assert returned["written"] == [str(dashboard)]
    assert dashboard.read_bytes() == (ROLE / "files" / "dashboards" / "falco-fleet.json").read_bytes()
    assert not restarted(report), "a dashboard change needs no restart"

    provider = config / "provisioning" / "dashboards" / "fleetwatch.yml"
    wanted = provider.read_text()
    provider.write_text("apiVersion: 1\nproviders: []\n")
    rc, report, output = run_json(workdir, role_play(), variables, *CONFIGURE)
    assert rc == 0, output
    [(arguments, returned)] = sent(report)
    assert arguments == {"files": [str(provider)], "directories": [], "absent": []}
    assert returned["written"] == [str(provider)]
    assert provider.read_text() == wanted
    assert restarted(report), "Grafana reads the dashboard provider only at start"


def test_missing_admin_password_fails_before_any_change(workdir):
    variables = role_vars(workdir / "missing")
    del variables["grafana_admin_password"]
    rc, output = ansible_playbook(workdir, role_play(), variables, *CONFIGURE)[:2]
    assert rc != 0
    assert "grafana_admin_password" in output
    assert not (workdir / "missing").exists()


LOKI_SECRET = "fixture-loki-apikey-%s" % uuid.uuid4().hex[:6]


def sidekick_inventory(workdir, loki):
    """An inventory with one falcosidekick host (never contacted: the play runs on localhost) and its Loki output."""
    path = workdir / ("inventory-%s.yml" % uuid.uuid4().hex[:6])
    outputs = {"alertmanager": {"minimumpriority": "warning"}}
    if loki is not None:
        outputs["loki"] = loki
    path.write_text(yaml.safe_dump({"all": {"children": {"falcosidekick": {"hosts": {
        "sidekick-fixture": {"falcosidekick_outputs": outputs}}}}}}))
    return path


def datasources(variables):
    provisioned = yaml.safe_load((Path(variables["grafana_config_dir"]) / "provisioning/datasources/fleetwatch.yml").read_text())
    return {source["type"]: source for source in provisioned["datasources"]}


def test_loki_datasource_follows_falcosidekick_loki_output(workdir):
    """falcosidekick's Loki output on in the inventory: a Loki datasource with its URL, credential and tenant; a re-run
    changes nothing; the output off again: the Loki datasource leaves the file (Grafana prunes it)."""
    variables = role_vars(workdir / "loki")
    loki = {"hostport": "https://loki.example:3100", "user": "fleet", "apikey": LOKI_SECRET, "tenant": "falco",
            "minimumpriority": "notice"}
    inventory = sidekick_inventory(workdir, loki)
    rc, output = ansible_playbook(workdir, role_play(), variables, *CONFIGURE, "-i", str(inventory))[:2]
    assert rc == 0, output
    assert LOKI_SECRET not in output
    sources = datasources(variables)
    assert set(sources) == {"prometheus", "loki"}
    source = sources["loki"]
    assert source["uid"] == "fleetwatch-loki" and source["name"] == "Loki"
    assert source["url"] == "https://loki.example:3100" and source["access"] == "proxy"
    assert source["isDefault"] is False and source["editable"] is False
    assert (source["basicAuth"], source["basicAuthUser"]) == (True, "fleet")
    assert source["secureJsonData"] == {"basicAuthPassword": LOKI_SECRET, "httpHeaderValue1": "falco"}
    assert source["jsonData"] == {"httpHeaderName1": "X-Scope-OrgID"}
    assert sources["prometheus"]["isDefault"] is True
    path = Path(variables["grafana_config_dir"]) / "provisioning/datasources/fleetwatch.yml"
    assert path.stat().st_mode & 0o777 == 0o640, "the file holds the Loki credential"
    fleet = json.loads((ROLE / "files" / "dashboards" / "falco-fleet.json").read_text())
    [variable] = [v for v in fleet["templating"]["list"] if v["name"] == "loki"]
    assert variable["current"]["value"] == source["uid"]

    rc, output, recap = ansible_playbook(workdir, role_play(), variables, *CONFIGURE, "-i", str(inventory))
    assert rc == 0 and recap["changed"] == 0, output

    rc, output = ansible_playbook(workdir, role_play(), variables, *CONFIGURE,
                                  "-i", str(sidekick_inventory(workdir, None)))[:2]
    assert rc == 0, output
    assert set(datasources(variables)) == {"prometheus"}


def test_loki_url_set_directly_without_credentials(workdir):
    variables = role_vars(workdir / "loki-direct", grafana_loki_url="http://127.0.0.1:3100")
    rc, output = ansible_playbook(workdir, role_play(), variables, *CONFIGURE)[:2]
    assert rc == 0, output
    source = datasources(variables)["loki"]
    assert source["url"] == "http://127.0.0.1:3100"
    assert source["basicAuth"] is False and source["secureJsonData"] == {} and source["jsonData"] == {}


@pytest.mark.parametrize("bad,needle", [
    ({"grafana_loki_url": "loki.example:3100"}, "grafana_loki_url must be \"\" (no Loki datasource) or the http(s) URL"),
    ({"grafana_loki_url": "http://loki.example:3100", "grafana_loki_basic_auth": {"username": "u", "password": "p"}},
     "an https:// grafana_loki_url"),
    ({"grafana_loki_url": "https://loki.example:3100", "grafana_loki_basic_auth": {"username": "u"}},
     "grafana_loki_basic_auth needs a non-empty username and password"),
])
def test_preflight_refuses_a_bad_loki_datasource(workdir, bad, needle):
    target = workdir / ("bad-loki-" + uuid.uuid4().hex[:6])
    rc, output = ansible_playbook(workdir, role_play(), role_vars(target, **bad), *CONFIGURE)[:2]
    assert rc != 0
    assert needle in output, output
    assert not target.exists()


def test_falcosidekick_loki_over_http_with_a_credential_is_refused(workdir):
    """The inventory's falcosidekick sends its apikey to an http:// Loki: Grafana would too, so preflight says what to do."""
    target = workdir / "loki-http-credential"
    inventory = sidekick_inventory(workdir, {"hostport": "http://loki.example:3100", "user": "u", "apikey": LOKI_SECRET})
    rc, output = ansible_playbook(workdir, role_play(), role_vars(target), *CONFIGURE, "-i", str(inventory))[:2]
    assert rc != 0
    assert "or set grafana_loki_basic_auth: {}" in output, output
    assert LOKI_SECRET not in output
    assert not target.exists()


@pytest.mark.parametrize("bad,needle", [
    ({"grafana_admin_password": ""}, "grafana_admin_password must be set"),
    ({"grafana_admin_password": "admin"}, "grafana_admin_password must be set"),
    ({"grafana_ini": {"auth.anonymous": {"enabled": True}}}, "may not enable auth.anonymous"),
    ({"grafana_ini": {"security": {"admin_password": "x"}}}, "use grafana_admin_user and grafana_admin_password"),
    ({"grafana_datasource_url": "prometheus:9090"}, "grafana_datasource_url must be an http(s) URL"),
    ({"grafana_admin_pasword": "whatever-long"}, "grafana_admin_pasword (did you mean grafana_admin_password?)"),
    ({"grafana_mode": "dockr"}, "grafana_mode"),
    ({"grafana_mode": "package"}, "in package mode grafana_config_dir stays /etc/grafana"),
])
def test_preflight_refuses_bad_settings_and_names_the_variable(workdir, bad, needle):
    target = workdir / ("bad-" + uuid.uuid4().hex[:6])
    rc, output = ansible_playbook(workdir, role_play(), role_vars(target, **bad), *CONFIGURE)[:2]
    assert rc != 0
    assert needle in output, output
    assert not target.exists()
    assert "whatever-long" not in output or "did you mean" in output


def test_preflight_refuses_a_missing_container_engine_before_any_change(workdir):
    target = workdir / ("no-engine-" + uuid.uuid4().hex[:6])
    variables = role_vars(target, grafana_container_engine="docker",
                          grafana_container_docker_host="unix://" + str(workdir / "no-such-docker.sock"))
    rc, output = ansible_playbook(workdir, role_play(), variables, *CONFIGURE)[:2]
    assert rc != 0
    assert "grafana_container_engine: docker, but the Docker socket unix://" in output, output
    assert "(grafana_container_docker_host) was not found on localhost" in output, output
    assert not target.exists()


def test_dashboard_11914_is_imported_from_the_controller_cache(workdir):
    if not REFERENCE_11914.exists():
        pytest.skip("reference data absent: %s (stands in for the cached download)" % REFERENCE_11914)
    target = workdir / "with-11914"
    cache = target / "cache"
    cache.mkdir(parents=True)
    shutil.copy(REFERENCE_11914, cache / "11914-r1.json")  # what the download would have left there (air-gapped path)
    variables = role_vars(target, grafana_dashboard_11914_import=True, grafana_dashboard_cache_dir=str(cache))
    rc, output = ansible_playbook(workdir, role_play(), variables, *CONFIGURE)[:2]
    assert rc == 0, output
    imported = json.loads((target / "etc/grafana/dashboards/falco-exporter-11914.json").read_text())
    assert imported["uid"] == "fleetwatch-falco-11914"
    assert "__inputs" not in imported and "id" not in imported
    assert "${DS_PROMETHEUS}" not in json.dumps(imported)
    assert {p["datasource"] for p in imported["panels"]} == {"Prometheus"}
    assert "fleetwatch" in imported["tags"]


def test_dashboard_11914_import_false_from_the_command_line(workdir):
    """-e grafana_dashboard_11914_import=false arrives as the string "false": no import, and an imported copy goes."""
    target = workdir / "no-11914"
    variables = role_vars(target)
    dashboards = Path(variables["grafana_config_dir"]) / "dashboards"
    dashboards.mkdir(parents=True)
    (dashboards / "falco-exporter-11914.json").write_text("{}")
    rc, output = ansible_playbook(workdir, role_play(), variables, *CONFIGURE,
                                  "-e", "grafana_dashboard_11914_import=false")[:2]
    assert rc == 0, output
    assert not (dashboards / "falco-exporter-11914.json").exists(), output
    assert not (workdir / "no-11914" / "cache").exists(), "nothing was downloaded or cached"
    assert sorted(p.name for p in dashboards.iterdir()) == sorted("%s.json" % d for d in
                                                                  yaml.safe_load((ROLE / "defaults" / "main.yml")
                                                                                 .read_text())["grafana_dashboards"])


def test_container_definition(workdir):
    """The container's image, volumes and environment as the run phase receives them (rendered, not run)."""
    out = workdir / "rendered.json"
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Load the role's variables", "ansible.builtin.include_role": {
            "name": "fleetwatch.falco_stack.grafana", "tasks_from": "preflight.yml", "public": True}},
        {"name": "Write what run_container.yml gets", "ansible.builtin.copy": {"dest": str(out), "mode": "0600",
                                                                               "content": "{{ __grafana_container | to_json }}"}}]}]
    variables = role_vars(workdir / "render", grafana_container_digest="sha256:" + "ab" * 32)
    rc, output = ansible_playbook(workdir, play, variables)[:2]
    assert rc == 0, output
    rendered = json.loads(out.read_text())
    config, data = variables["grafana_config_dir"], variables["grafana_data_dir"]
    assert rendered["image"] == "docker.io/grafana/grafana:12.2.1@sha256:" + "ab" * 32
    assert rendered["volumes"] == ["%s:%s:ro" % (config, config), "%s:%s" % (data, data)]
    assert rendered["env"] == {"GF_PATHS_CONFIG": config + "/grafana.ini", "GF_PATHS_DATA": data,
                               "GF_PATHS_PLUGINS": data + "/plugins", "GF_PATHS_PROVISIONING": config + "/provisioning"}
    assert PASSWORD not in json.dumps(rendered), "the password reaches Grafana through grafana.ini only"
    # _common's container tasks add the host network and restart policy always (tests/unit/roles/test_common_container.py).
    assert (rendered["engine"], rendered["name"], rendered["user"]) == ("podman", variables["grafana_container_name"], "472:0")
    assert "command" not in rendered, "the image's own entry point and arguments"


# scripts/role_specs.py (lint stage) keeps defaults and specs in lockstep; this is what only grafana has: a variable
# without a default, which the user must set, kept out of the logs.
def test_the_admin_password_is_required_and_never_logged():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    options = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert options["grafana_admin_password"] == dict(options["grafana_admin_password"], required=True, no_log=True)
    assert "grafana_admin_password" not in defaults
