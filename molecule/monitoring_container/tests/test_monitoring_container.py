"""Prometheus and Alertmanager as containers (LOCAL TEST IMAGES built from Debian's packages by lab/build-images.sh,
standing in for the official images), an agent remote-writing to a central Prometheus from Debian's package, checked
through their HTTP APIs from inside the lab hosts.
"""

import json
import sys
import time
from pathlib import Path

import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "_shared"))
from labtest import converge, failures, get_json, query, ready, wait_for  # noqa: E402

CENTRAL = testinfra.get_host("podman://monc-central")
EDGE = testinfra.get_host("podman://monc-edge")
SERVER = testinfra.get_host("podman://monc-server")
PROMETHEUS_IMAGE = "localhost/fleetwatch-test/prometheus:v2.42.0-debian12"
ALERTMANAGER_IMAGE = "localhost/fleetwatch-test/alertmanager:v0.25.0-debian12"
# node_exporter hosts and their cloud label, scraped by both container Prometheus servers.
FLEET = {("monc-edge", "cloud-edge"), ("monc-server", "cloud-dc")}


def inspect(host, name):
    return json.loads(host.check_output("podman container inspect %s" % name))[0]


def flags(host):
    return get_json(host, "http://localhost:9090/api/v1/status/flags")["data"]


def host_cloud(results):
    return {(r["metric"]["host"], r["metric"].get("cloud")) for r in results}


# --- The containers -------------------------------------------------------------------------------------------------

def test_prometheus_containers_run_the_image_as_nobody_with_host_directories():
    for host in (EDGE, SERVER):
        container = inspect(host, "prometheus")
        assert container["State"]["Running"], container["State"]
        assert container["ImageName"] == PROMETHEUS_IMAGE
        assert container["Config"]["User"] == "65534"
        assert container["HostConfig"]["NetworkMode"] == "host"
        assert container["HostConfig"]["RestartPolicy"]["Name"] == "always"
        mounts = {m["Destination"]: m for m in container["Mounts"]}
        assert mounts["/etc/prometheus"]["Source"] == "/etc/prometheus" and not mounts["/etc/prometheus"]["RW"]
        assert mounts["/var/lib/prometheus/metrics2"]["RW"]
        storage = host.file("/var/lib/prometheus/metrics2")
        assert (storage.uid, storage.mode) == (65534, 0o750)


def test_alertmanager_container_runs_the_image_as_nobody_with_a_checked_configuration():
    container = inspect(SERVER, "alertmanager")
    assert container["State"]["Running"], container["State"]
    assert container["ImageName"] == ALERTMANAGER_IMAGE
    assert container["Config"]["User"] == "65534"
    mounts = {m["Destination"]: m for m in container["Mounts"]}
    assert not mounts["/etc/alertmanager"]["RW"] and mounts["/var/lib/prometheus/alertmanager"]["RW"]
    status = get_json(SERVER, "http://localhost:9093/api/v2/status")
    assert "receiver: \"null\"" in status["config"]["original"] or "receiver: 'null'" in status["config"]["original"]
    # amtool of the image, as the role's validate runs it
    assert SERVER.run("podman run --rm --network none --user 0 --entrypoint /bin/amtool -v /etc/alertmanager:/etc/alertmanager:ro "
                      "%s check-config /etc/alertmanager/alertmanager.yml" % ALERTMANAGER_IMAGE).rc == 0


def test_agent_runs_in_agent_mode_with_its_write_ahead_log_on_the_host():
    agent = flags(EDGE)
    assert agent["enable-feature"] == "agent"  # Prometheus 2.42: the 2.x flag, chosen from the image tag
    assert agent["storage.agent.path"] == "/var/lib/prometheus/metrics2"
    assert EDGE.file("/var/lib/prometheus/metrics2/wal").is_directory
    config = get_json(EDGE, "http://localhost:9090/api/v1/status/config")["data"]["yaml"]
    assert "http://monc-central:9090/api/v1/write" in config and "rule_files" not in config


def test_server_container_scrapes_the_fleet_with_host_and_cloud_labels():
    expr = 'up{job="node-exporter"} == 1'
    got = wait_for(lambda: FLEET <= host_cloud(query(SERVER, expr)) and host_cloud(query(SERVER, expr)))
    assert got == FLEET


# --- Remote write from the agent to the central Prometheus ---------------------------------------------------------

def test_central_prometheus_runs_from_the_package_with_the_receiver_on():
    assert CENTRAL.service("prometheus").is_running
    assert flags(CENTRAL)["web.enable-remote-write-receiver"] == "true"
    assert flags(EDGE)["web.enable-remote-write-receiver"] == "false"


def test_agent_series_reach_the_central_prometheus_with_host_labels():
    expr = 'up{job="node-exporter", scraper="monc-edge"} == 1'
    got = wait_for(lambda: FLEET <= host_cloud(query(CENTRAL, expr)) and host_cloud(query(CENTRAL, expr)))
    assert got == FLEET
    # The data under each host label is that host's: node_exporter's own node name.
    uname = query(CENTRAL, 'node_uname_info{scraper="monc-edge"}')
    assert {(r["metric"]["host"], r["metric"]["nodename"]) for r in uname} == {(h, h) for h, _cloud in FLEET}
    # The central server scrapes only itself and its own node_exporter: the fleet's series came through remote write.
    own = {(r["metric"]["job"], r["metric"]["host"]) for r in query(CENTRAL, 'up{scraper!="monc-edge"}')}
    assert own == {("prometheus", "monc-central"), ("node-exporter", "monc-central")}


def test_central_prometheus_never_ran_the_packaged_example_configuration():
    # Debian's package would start Prometheus with /etc/prometheus/prometheus.yml as shipped (jobs "prometheus"
    # and "node", no host label); the role installs it with the service masked, so no such series exists.
    assert query(CENTRAL, 'up{host=""}') == []
    assert query(CENTRAL, '{job="node"}') == []
    assert query(CENTRAL, 'count_over_time(up{host=""}[1h])') == []


# --- Alerts from the container Prometheus to the container Alertmanager --------------------------------------------

def test_alerts_reach_the_alertmanager_container():
    active = get_json(SERVER, "http://localhost:9090/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
    assert [a["url"] for a in active] == ["http://localhost:9093/api/v2/alerts"]

    def fixture_alerts():
        alerts = get_json(SERVER, "http://localhost:9093/api/v2/alerts")
        return [a for a in alerts if a["labels"].get("alertname") == "LabFixtureAlwaysFiring"]
    alerts = wait_for(fixture_alerts, timeout=90)
    assert alerts, "the TEST FIXTURE rule's alert never reached Alertmanager"
    assert alerts[0]["labels"]["scraper"] == "monc-server"  # external labels travel with the alert
    assert alerts[0]["labels"]["severity"] == "info"


# --- Re-runs ---------------------------------------------------------------------------------------------------------

def test_check_mode_on_the_converged_lab_reports_no_change():
    rc, report, output = converge("--check", "--diff")
    assert rc == 0, output
    assert set(report["stats"]) == {"monc-central", "monc-edge", "monc-server"}, report["stats"]
    assert all(r["changed"] == 0 for r in report["stats"].values()), report["stats"]


def test_agent_mode_with_a_tag_without_version_is_refused_before_any_change():
    before = inspect(EDGE, "prometheus")["Id"]
    rc, report, output = converge("--limit", "monc-edge", "-e", "prometheus_container_tag=latest")
    assert rc != 0 and report["stats"]["monc-edge"]["failures"] == 1, (report["stats"], output)
    refused = [m for m in failures(report, "monc-edge") if "prometheus_container_tag" in m and "got 'latest'" in m]
    assert refused, (failures(report, "monc-edge"), output)
    assert report["stats"]["monc-edge"]["changed"] == 0, report["stats"]
    assert inspect(EDGE, "prometheus")["Id"] == before


# --- Last: a redeploy recreates the server container and keeps its data --------------------------------------------

def test_data_survives_the_container_being_recreated():
    series = 'up{job="node-exporter", host="monc-server"}'
    assert wait_for(lambda: query(SERVER, "count_over_time(%s[1m]) >= 3" % series)), "too few samples to compare"
    before_id = inspect(SERVER, "prometheus")["Id"]
    before = time.time() - 2
    samples_before = float(query(SERVER, "count_over_time(%s[5m])" % series, at=before)[0]["value"][1])

    # A changed flag is a redeploy: podman_container removes the container and creates a new one.
    rc, report, output = converge("--limit", "monc-server", "-e", "prometheus_retention_time=16d")
    assert rc == 0 and report["stats"]["monc-server"]["changed"] >= 1, (report["stats"], output)
    recreated = inspect(SERVER, "prometheus")
    assert recreated["Id"] != before_id, "the container was not recreated"
    assert "--storage.tsdb.retention.time=16d" in recreated["Config"]["Cmd"]
    assert wait_for(lambda: ready(SERVER, "http://localhost:9090/-/ready"), timeout=60)

    # Samples from before the redeploy, queried at a time before it, are all still there.
    after = query(SERVER, "count_over_time(%s[5m])" % series, at=before)
    assert after and float(after[0]["value"][1]) == samples_before, (samples_before, after)
