"""Role prometheus: what its vars and templates/prometheus.yml.j2 render from an inventory, without a host (targets,
labels, config, args, container).

Runs ansible-playbook on the controller with a local connection: the role's defaults and vars/main.yml are loaded,
preflight's fact is set, and the rendered values and configuration are written to files, as the role's tasks would
see them.
"""

import json
import shutil
import textwrap

import pytest
import yaml

from localplay import PROMETHEUS_FACTS, REPO, render_prometheus, render_role_vars, target_groups

ANSIBLE = shutil.which("ansible-playbook")
pytestmark = pytest.mark.skipif(ANSIBLE is None, reason="ansible-playbook not found (activate the venv)")

INVENTORY = textwrap.dedent("""\
    all:
      vars:
        ansible_connection: local
      children:
        monitoring:
          hosts:
            mon: {cloud: onprem, site: hq}
        falco:
          hosts:
            new-agent: {cloud: aws, env: prod, ansible_host: 10.0.0.5}
            templated-agent: {cloud: azure, site: "{{ cloud }}-{{ zone }}", zone: west, falco_metrics_port: "{{ 8000 + 766 }}"}
            tls-agent:
              cloud: gcp
              falco_version: "0.43.0"
              falco_grpc_enabled: true
              node_exporter_tls_enabled: true
              node_exporter_basic_auth_users: {prometheus: secret}
              node_exporter_web_listen_address: "0.0.0.0:9111"
            old-agent: {falco_version: "0.31.1", falco_grpc_enabled: true, falco_exporter_listen_address: ":9400"}
            quiet-agent: {falco_version: "0.40.0", falco_metrics_enabled: false}
        docker_hosts:
          hosts:
            new-agent:
        sidekick:
          hosts:
            mon:
    """)

RENDERED = {"files": "__prometheus_scrape.files", "args": "__prometheus_args",
            "volumes": "__prometheus_container_volumes", "image": "__prometheus_container_image_ref",
            "promtool": "__prometheus_promtool_cmd", "basic_auth_hosts": "__prometheus_scrape.basic_auth_hosts"}


def render(tmp_path, **extra_vars):
    extra = dict({"prometheus_docker_groups": ["docker_hosts"], "prometheus_falcosidekick_groups": ["sidekick"]},
                 **extra_vars)
    rendered = render_prometheus(tmp_path, RENDERED, extra, inventory=INVENTORY, host="mon")
    return dict(rendered, targets=target_groups(rendered["files"]))


def by_host(groups):
    return {g["labels"]["host"]: (g["targets"], g["labels"]) for g in groups}


def test_targets_come_from_the_inventory_per_job(tmp_path):
    targets = render(tmp_path)["targets"]
    assert by_host(targets["node-exporter"]) == {
        "mon": (["mon:9100"], {"host": "mon", "cloud": "onprem", "site": "hq"}),
        "new-agent": (["new-agent:9100"], {"host": "new-agent", "cloud": "aws", "env": "prod"}),
        "old-agent": (["old-agent:9100"], {"host": "old-agent"}),
        "quiet-agent": (["quiet-agent:9100"], {"host": "quiet-agent"}),
        # Values that are templates are templated with the host's own variables.
        "templated-agent": (["templated-agent:9100"], {"host": "templated-agent", "cloud": "azure", "site": "azure-west"}),
    }
    assert by_host(targets["node-exporter-tls"]) == {"tls-agent": (["tls-agent:9111"], {"host": "tls-agent", "cloud": "gcp"})}
    # Native metrics from 0.39 on unless switched off; falco-exporter where gRPC is on and Falco is older than 0.44.
    assert sorted(by_host(targets["falco"])) == ["new-agent", "templated-agent", "tls-agent"]
    assert by_host(targets["falco"])["new-agent"][0] == ["new-agent:8765"]
    assert by_host(targets["falco"])["templated-agent"][0] == ["templated-agent:8766"]
    assert {h: t for h, (t, _labels) in by_host(targets["falco-exporter"]).items()} == {
        "tls-agent": ["tls-agent:9376"], "old-agent": ["old-agent:9400"]}
    assert targets["falco-exporter-tls"] == []
    assert by_host(targets["docker-exporter"])["new-agent"][0] == ["new-agent:9323"]
    assert by_host(targets["falcosidekick"])["mon"][0] == ["mon:2801"]


def test_address_variable_and_label_variables(tmp_path):
    rendered = render(tmp_path, prometheus_target_address_var="ansible_host", prometheus_target_label_vars=["env"])
    node = by_host(rendered["targets"]["node-exporter"])
    assert node["new-agent"] == (["10.0.0.5:9100"], {"host": "new-agent", "env": "prod"})
    assert node["mon"] == (["mon:9100"], {"host": "mon"})  # no ansible_host: the inventory name


def test_tls_job_verifies_certificates_and_reads_the_password_from_a_file(tmp_path):
    rendered = render(tmp_path, prometheus_scrape_ca_cert="PEM",
                      prometheus_scrape_basic_auth={"username": "prometheus", "password": "secret"})
    jobs = {j["job_name"]: j for j in rendered["config"]["scrape_configs"]}
    tls = jobs["node-exporter-tls"]
    assert tls["scheme"] == "https"
    assert tls["tls_config"] == {"ca_file": "/etc/prometheus/scrape-ca.crt"}
    assert tls["basic_auth"] == {"username": "prometheus", "password_file": "/etc/prometheus/scrape-password"}
    assert tls["relabel_configs"] == [{"target_label": "job", "replacement": "node-exporter"}]
    assert "secret" not in json.dumps(rendered["config"])
    assert "insecure_skip_verify" not in json.dumps(rendered["config"])
    assert rendered["basic_auth_hosts"] == ["tls-agent"]
    assert jobs["prometheus"]["static_configs"][0]["labels"] == {"host": "mon", "cloud": "onprem", "site": "hq"}


def test_tutorial_globals_are_variables(tmp_path):
    rendered = render(tmp_path)
    assert rendered["config"]["global"] == {"scrape_interval": "30s", "evaluation_interval": "30s",
                                            "scrape_timeout": "10s", "external_labels": {"monitor": "fleetwatch"}}
    assert rendered["config"]["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert "alerting" not in rendered["config"]
    rendered = render(tmp_path, prometheus_scrape_interval="15s", prometheus_alertmanagers=["mon:9093"],
                      prometheus_retention_time="90d", prometheus_retention_size="50GB",
                      prometheus_storage_path="/srv/prometheus")
    assert rendered["config"]["global"]["scrape_interval"] == "15s"
    assert rendered["config"]["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["mon:9093"]}]}]}
    assert {"--storage.tsdb.path=/srv/prometheus", "--storage.tsdb.retention.time=90d",
            "--storage.tsdb.retention.size=50GB"} <= set(rendered["args"])


def test_remote_write_and_agent_mode(tmp_path):
    remote = [{"url": "https://mimir.example/api/v1/push", "basic_auth": {"username": "site-a"}}]
    rendered = render(tmp_path, prometheus_remote_write=remote, prometheus_agent_mode=True)
    assert rendered["config"]["remote_write"] == remote
    assert "rule_files" not in rendered["config"] and "evaluation_interval" not in rendered["config"]["global"]
    assert "--enable-feature=agent" in rendered["args"]  # Debian's Prometheus 2.x
    assert "--storage.agent.path=/var/lib/prometheus/metrics2" in rendered["args"]
    assert not any(a.startswith("--storage.tsdb") for a in rendered["args"])
    rendered = render(tmp_path, prometheus_remote_write=remote, prometheus_agent_mode=True, prometheus_mode="container")
    assert "--agent" in rendered["args"]  # Prometheus 3 in the pinned image


def test_container_definition(tmp_path):
    rendered = render(tmp_path, prometheus_mode="container",
                      prometheus_container_digest="sha256:" + "a" * 64)
    assert rendered["image"] == "docker.io/prom/prometheus:v3.5.0@sha256:" + "a" * 64
    # Configuration read-only at the same path; the database on a host directory, so it outlives the container.
    assert rendered["volumes"] == ["/etc/prometheus:/etc/prometheus:ro",
                                   "/var/lib/prometheus/metrics2:/var/lib/prometheus/metrics2"]
    assert rendered["args"][:2] == ["--config.file=/etc/prometheus/prometheus.yml", "--web.listen-address=0.0.0.0:9090"]
    # validate: the image's promtool, as root to read the 0600 candidate, with exactly one %s (Ansible substitutes once).
    assert rendered["promtool"].startswith("podman run --rm --network none --user 0 --entrypoint /bin/promtool")
    assert rendered["promtool"].count("%s") == 1


def test_agent_flag_follows_the_version_in_the_image_tag(tmp_path):
    remote = [{"url": "http://central:9090/api/v1/write"}]
    for tag, flag in (("v2.42.0-debian12", "--enable-feature=agent"), ("v2.55.1", "--enable-feature=agent"),
                      ("v3.5.0", "--agent"), ("3.6.0-distroless", "--agent")):
        rendered = render(tmp_path, prometheus_remote_write=remote, prometheus_agent_mode=True,
                          prometheus_mode="container", prometheus_container_tag=tag)
        assert flag in rendered["args"], (tag, rendered["args"])
        other = "--agent" if flag != "--agent" else "--enable-feature=agent"
        assert other not in rendered["args"], (tag, rendered["args"])


def test_booleans_given_as_strings_on_the_command_line(tmp_path):
    """-e key=value passes "false" and "true" as strings; the role reads its booleans with | bool."""
    names = dict(RENDERED, rule_files="__prometheus_rule_files")
    rendered = render_prometheus(tmp_path, names, {
        "prometheus_agent_mode": "false", "prometheus_falco_rules_enabled": "false",
        "prometheus_web_enable_remote_write_receiver": "true"}, inventory=INVENTORY, host="mon")
    assert rendered["config"]["rule_files"] == ["/etc/prometheus/rules/*.yml"]  # a server, not an agent
    assert "--storage.tsdb.path=/var/lib/prometheus/metrics2" in rendered["args"]
    assert not any("agent" in a for a in rendered["args"])
    assert rendered["rule_files"] == []  # "false" turned the shipped Falco rules off
    assert "--web.enable-remote-write-receiver" in rendered["args"]
    rendered = render_prometheus(tmp_path, names, {
        "prometheus_agent_mode": "true", "prometheus_remote_write": [{"url": "http://central:9090/api/v1/write"}],
        "prometheus_web_enable_remote_write_receiver": "false"}, inventory=INVENTORY, host="mon")
    assert "rule_files" not in rendered["config"]
    assert "--enable-feature=agent" in rendered["args"]
    assert "--web.enable-remote-write-receiver" not in rendered["args"]


def test_remote_write_receiver_is_off_by_default(tmp_path):
    assert "--web.enable-remote-write-receiver" not in render(tmp_path)["args"]
    rendered = render(tmp_path, prometheus_web_enable_remote_write_receiver=True)
    assert "--web.enable-remote-write-receiver" in rendered["args"]


def test_the_inspection_covers_every_file_and_directory_the_role_writes(tmp_path):
    """A path left out of the one-shot inspection would be written again at every run."""
    names = {"inspected": "__prometheus_inspected_paths", "jobs": "__prometheus_scrape.files.keys() | list",
             "written": "__prometheus_target_files | map(attribute='path') | list"}
    rendered = render_prometheus(tmp_path, names, {"prometheus_config_dir": "/etc/prom"}, inventory=INVENTORY, host="mon")
    inspected = set(rendered["inspected"])
    # Every job the filter returns a file for, whether it has targets or not.
    assert rendered["jobs"] == ["node-exporter", "node-exporter-tls", "falco", "falco-tls", "falco-exporter",
                                "falco-exporter-tls", "docker-exporter", "falcosidekick"]
    assert rendered["written"] == ["/etc/prom/targets/%s.json" % job for job in rendered["jobs"]]
    assert set(rendered["written"]) <= inspected
    # the files the configuration tells Prometheus to read are those
    read = [path for job in rendered["config"]["scrape_configs"] for sd in job.get("file_sd_configs", [])
            for path in sd["files"]]
    assert read == rendered["written"]
    # and the YAML target files the role wrote before, which it removes
    assert {"/etc/prom/targets/%s.yml" % job for job in rendered["jobs"]} <= inspected
    assert {"/etc/prom", "/etc/prom/rules", "/etc/prom/targets", "/var/lib/prometheus/metrics2", "/etc/prom/prometheus.yml",
            "/etc/prom/rules/falco-alerts.yml", "/etc/prom/rules/extra.yml", "/etc/prom/scrape-ca.crt",
            "/etc/prom/scrape-password"} <= inspected


def test_falco_exporter_behind_its_tls_proxy_gets_the_https_job_with_basic_auth(tmp_path):
    # Passed as extra vars, so every host has the proxy on (a string, as -e gives it).
    rendered = render(tmp_path, falco_exporter_tls_enabled="true", falco_exporter_basic_auth_users={"prometheus": "s"},
                      prometheus_scrape_ca_cert="PEM",
                      prometheus_scrape_basic_auth={"username": "prometheus", "password": "secret"})
    targets = rendered["targets"]
    assert targets["falco-exporter"] == []
    assert {h: t for h, (t, _labels) in by_host(targets["falco-exporter-tls"]).items()} == {
        "tls-agent": ["tls-agent:9376"], "old-agent": ["old-agent:9400"]}
    jobs = {j["job_name"]: j for j in rendered["config"]["scrape_configs"]}
    tls = jobs["falco-exporter-tls"]
    assert tls["scheme"] == "https"
    assert tls["tls_config"] == {"ca_file": "/etc/prometheus/scrape-ca.crt"}
    assert tls["basic_auth"] == {"username": "prometheus", "password_file": "/etc/prometheus/scrape-password"}
    assert tls["relabel_configs"] == [{"target_label": "job", "replacement": "falco-exporter"}]
    assert tls["file_sd_configs"] == [{"files": ["/etc/prometheus/targets/falco-exporter-tls.json"]}]
    assert "scheme" not in jobs["falco-exporter"]
    # tls-agent asks for basic auth twice (node_exporter and the proxy) and is named once.
    assert rendered["basic_auth_hosts"] == ["tls-agent", "old-agent"]


def test_every_job_reads_the_json_file_the_role_writes_and_the_old_yaml_files_are_retired(tmp_path):
    names = {"written": "__prometheus_target_files | map(attribute='path') | list",
             "retired": "__prometheus_retired_target_files"}
    old = {"/etc/prometheus/targets/node-exporter.yml": {"type": "regular file"},
           "/etc/prometheus/targets/falco-exporter-tls.yml": {"type": "regular file"},
           "/etc/prometheus/targets/node-exporter.json": {"type": "regular file"},
           "/etc/prometheus/targets/custom.yml": {"type": "regular file"}}
    rendered = render_prometheus(tmp_path, names, {"__prometheus_host": {"paths": old}},
                                 inventory=INVENTORY, host="mon")
    read = [path for job in rendered["config"]["scrape_configs"] for sd in job.get("file_sd_configs", [])
            for path in sd["files"]]
    assert sorted(read) == sorted(rendered["written"])
    assert all(path.endswith(".json") for path in read) and len(read) == 8
    # Only the role's own old files, and only those the host has.
    assert sorted(rendered["retired"]) == ["/etc/prometheus/targets/falco-exporter-tls.yml",
                                           "/etc/prometheus/targets/node-exporter.yml"]


def test_the_file_holds_every_section_in_order_and_the_tls_jobs_share_their_settings(tmp_path):
    extra_job = {"job_name": "blackbox", "static_configs": [{"targets": ["probe:9115"]}]}
    remote = [{"url": "https://mimir.example/api/v1/push"}]
    rendered = render(tmp_path, prometheus_scrape_ca_cert="PEM",
                      prometheus_scrape_basic_auth={"username": "prometheus", "password": "secret"},
                      prometheus_web_tls_enabled=True, prometheus_web_tls_cert="C", prometheus_web_tls_key="K",
                      prometheus_web_basic_auth_users={"prometheus": "secret"}, prometheus_alertmanagers=["am:9093"],
                      prometheus_alertmanagers_tls_enabled=True, prometheus_remote_write=remote,
                      prometheus_extra_scrape_configs=[extra_job])
    config, text = rendered["config"], rendered["config_text"]
    assert text.splitlines()[0].startswith("# ")  # ansible_managed
    assert list(config) == ["global", "scrape_configs", "rule_files", "alerting", "remote_write"]
    assert list(config["global"]) == ["scrape_interval", "scrape_timeout", "external_labels", "evaluation_interval"]
    assert [j["job_name"] for j in config["scrape_configs"]] == [
        "prometheus", "node-exporter", "node-exporter-tls", "falco", "falco-tls", "falco-exporter", "falco-exporter-tls",
        "docker-exporter", "falcosidekick", "blackbox"]
    assert config["scrape_configs"][-1] == extra_job
    tls = {"ca_file": "/etc/prometheus/scrape-ca.crt"}
    auth = {"username": "prometheus", "password_file": "/etc/prometheus/scrape-password"}
    assert config["scrape_configs"][0]["tls_config"] == tls and config["scrape_configs"][0]["basic_auth"] == auth
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["am:9093"]}], "scheme": "https",
                                                    "tls_config": tls, "basic_auth": auth}]
    assert config["remote_write"] == remote
    # The three TLS jobs' tls_config and two basic_auth are written once each and referred to (YAML anchors), the
    # self-scrape's and the alertmanagers' in full: the same text as the role wrote before the template.
    assert (text.count("&id001"), text.count("*id001"), text.count("&id002"), text.count("*id002")) == (1, 2, 1, 1)
    assert text.count("ca_file: /etc/prometheus/scrape-ca.crt") == 3
    assert "secret" not in text


def role_default(role, name):
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())[name]


def test_a_host_that_sets_nothing_is_scraped_at_the_owning_roles_defaults(tmp_path):
    """Role defaults are not in hostvars: preflight reads the exporters' roles' own defaults files."""
    targets = render(tmp_path)["targets"]
    node_port = role_default("node_exporter", "node_exporter_web_listen_address").rsplit(":", 1)[1]
    assert by_host(targets["node-exporter"])["new-agent"][0] == ["new-agent:%s" % node_port]
    assert by_host(targets["falco"])["new-agent"][0] == ["new-agent:%s" % role_default("falco", "falco_metrics_port")]
    sidekick_port = role_default("falcosidekick", "falcosidekick_listen_port")
    assert by_host(targets["falcosidekick"])["mon"][0] == ["mon:%s" % sidekick_port]
    # falco_version: a host on the default version gets native metrics, not the gRPC path.
    assert "new-agent" not in by_host(targets["falco-exporter"])


def test_the_fleet_switch_in_the_roles_defaults_puts_hosts_on_tls_without_rendering_their_certificates(tmp_path):
    """With fleetwatch_tls_enabled the exporters' defaults turn TLS and basic auth on; the same files' certificate
    lookups (meant for each role's own hosts) are never rendered here: the PKI directory is empty."""
    extra = {"prometheus_docker_groups": ["docker_hosts"], "fleetwatch_tls_enabled": True,
             "fleetwatch_scrape_password": "s3cret", "fleetwatch_pki_dir": str(tmp_path / "no-pki")}
    # The targets only: prometheus.yml itself would read the CA.
    rendered = render_role_vars(tmp_path, "prometheus", {"files": "__prometheus_scrape.files",
                                                         "basic_auth_hosts": "__prometheus_scrape.basic_auth_hosts"},
                                extra, inventory=INVENTORY, host="mon", facts=PROMETHEUS_FACTS)
    targets = target_groups(rendered["files"])
    assert "new-agent" in by_host(targets["node-exporter-tls"]) and "new-agent" in by_host(targets["falco-tls"])
    assert "new-agent" in rendered["basic_auth_hosts"]
    assert not (tmp_path / "no-pki").exists()
