"""Role falcosidekick: its configuration checked against falcosidekick 2.34.1's own key list, its preflight, and its
container definition created (never started) by the real podman on this machine.

falcosidekick itself cannot run here (no image can be pulled). The container test gives podman a local TEST IMAGE
(a re-tag of the lab's Debian base image under localhost/fleetwatch-test/...) and only creates the containers, so
what is checked is the definition the role hands to podman (image, command, user, mounts, network, restart policy),
read back with `podman container inspect`, not falcosidekick's behaviour. See docs/falcosidekick.md.
"""

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from localplay import ansible_playbook

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "falcosidekick"
UPSTREAM_EXAMPLE = REPO.parent / "shared" / "upstream" / "falco" / "falcosidekick-2.34.1_config_example.yaml"
LAB_BASE_IMAGE = "localhost/fleetwatch-lab/debian12-base:latest"
TEST_IMAGES = {"sidekick": "localhost/fleetwatch-test/falcosidekick", "ui": "localhost/fleetwatch-test/falcosidekick-ui",
               "redis": "localhost/fleetwatch-test/redis-stack-server"}
# Keys in the upstream example, commented out or not: "key:" at two spaces per level, after an optional "# ".
KEY_LINE = re.compile(r"^( *)(?:# ?)?( *)([A-Za-z][A-Za-z0-9_]*):(?:\s|$)")


def upstream_keys():
    """{top-level key: set of its sub-keys} from falcosidekick's config example (keys compared case-insensitively)."""
    if not UPSTREAM_EXAMPLE.exists():
        pytest.skip("reference data absent: %s (falcosidekick 2.34.1 config example)" % UPSTREAM_EXAMPLE)
    keys, current = {}, None
    for line in UPSTREAM_EXAMPLE.read_text().splitlines():
        match = KEY_LINE.match(line)
        if not match:
            continue
        depth = len(match.group(1)) + len(match.group(2))
        name = match.group(3).lower()
        if depth == 0:
            current = name
            keys.setdefault(current, set())
        elif depth == 2 and current is not None:
            keys[current].add(name)
    return keys


def role_vars():
    return yaml.safe_load((ROLE / "vars" / "main.yml").read_text())


def render(tmp_path, extra_vars, names):
    """The role's defaults and vars as its tasks see them, with extra_vars as inventory values."""
    out = tmp_path / ("render-%s.json" % uuid.uuid4().hex[:8])
    listing = ", ".join("%s: %s" % (json.dumps(key), var) for key, var in names.items())
    tasks = [{"ansible.builtin.include_vars": {"file": str(ROLE / path)}} for path in ("defaults/main.yml", "vars/main.yml")]
    tasks.append({"ansible.builtin.copy": {"dest": str(out), "mode": "0600", "content": "{{ {%s} | to_json }}" % listing}})
    # Inventory-level values go in as a second include right after the defaults (an include outranks play vars).
    overrides = tmp_path / ("overrides-%s.yml" % uuid.uuid4().hex[:8])
    overrides.write_text(yaml.safe_dump(extra_vars))
    tasks.insert(1, {"ansible.builtin.include_vars": {"file": str(overrides)}})
    rc, output = ansible_playbook(tmp_path, [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], {})[:2]
    assert rc == 0, output
    return json.loads(out.read_text())


def test_supported_outputs_and_keys_exist_in_falcosidekick_2_34_1():
    upstream = upstream_keys()
    supported = role_vars()
    for output, keys in supported["__falcosidekick_supported_outputs"].items():
        assert output in upstream, "output %s is not in falcosidekick's config example" % output
        unknown = {k.lower() for k in keys} - upstream[output]
        assert not unknown, "keys of %s unknown to falcosidekick 2.34.1: %s" % (output, unknown)
        assert supported["__falcosidekick_output_switch"][output] in keys
    unknown = {k.lower() for k in supported["__falcosidekick_supported_settings"]} - set(upstream)
    assert not unknown, unknown
    assert {"listenaddress", "listenport", "webui", "prometheus"} <= set(upstream)


def test_the_parser_finds_commented_and_live_keys():
    """Guards the test above: the parser must see both forms, or every check above would pass vacuously."""
    upstream = upstream_keys()
    assert {"hostport", "endpoint", "minimumpriority", "customheaders"} <= upstream["alertmanager"]
    assert {"webhookurl", "minimumpriority", "outputformat"} <= upstream["slack"]
    assert "nosuchkey" not in upstream["slack"] and "key" not in upstream["alertmanager"]


def assert_keys_known(config, upstream):
    for key, value in config.items():
        assert key.lower() in upstream, key
        if isinstance(value, dict) and key.lower() not in ("customfields", "templatedfields"):
            for sub in value:
                assert sub.lower() in upstream[key.lower()], "%s.%s" % (key, sub)


# config.yaml as the role's template writes it, read back as data.
CONFIG = "lookup('ansible.builtin.template', '%s')" % (ROLE / "templates" / "config.yaml.j2")


def test_default_config_posts_warning_and_above_to_this_hosts_alertmanager(tmp_path):
    config = yaml.safe_load(render(tmp_path, {}, {"text": CONFIG})["text"])
    assert config == {"listenaddress": "0.0.0.0", "listenport": 2801,
                      "alertmanager": {"hostport": "http://127.0.0.1:9093", "endpoint": "/api/v2/alerts",
                                       "extralabels": "alertname:FalcoEvent", "minimumpriority": "warning"}}
    assert_keys_known(config, upstream_keys())


def test_outputs_as_data_and_alertmanager_address_from_its_role(tmp_path):
    outputs = {"alertmanager": {"minimumpriority": "error", "expiresafter": 900},
               "loki": {"hostport": "http://loki.example:3100", "minimumpriority": "notice", "tenant": "secops"},
               "slack": {"webhookurl": "https://hooks.slack.example/services/T/B/X", "minimumpriority": "critical",
                         "outputformat": "all"},
               "webhook": {"address": "https://soar.example/falco", "minimumpriority": "warning",
                           "customHeaders": {"Authorization": "Basic c2VjOnJldA=="}}}
    rendered = render(tmp_path, {"falcosidekick_outputs": outputs, "alertmanager_web_listen_address": "10.1.2.3:9193",
                                 "falcosidekick_ui_enabled": True, "falcosidekick_listen_address": "127.0.0.1",
                                 "falcosidekick_settings": {"customfields": {"site": "eu-west"}}},
                      {"outputs": "__falcosidekick_outputs", "text": CONFIG})
    config = yaml.safe_load(rendered["text"])
    assert config["alertmanager"] == {"hostport": "http://10.1.2.3:9193", "endpoint": "/api/v2/alerts",
                                      "extralabels": "alertname:FalcoEvent", "minimumpriority": "error",
                                      "expiresafter": 900}
    for name in ("loki", "slack", "webhook"):
        assert config[name] == outputs[name]
    assert config["webui"] == {"url": "http://127.0.0.1:2802"}
    assert config["customfields"] == {"site": "eu-west"}
    assert config["listenaddress"] == "127.0.0.1"
    assert_keys_known(config, upstream_keys())
    # Preflight checks the outputs the file holds.
    assert {name: config[name] for name in rendered["outputs"]} == rendered["outputs"]


@pytest.fixture(scope="module")
def engine_ready():
    if not shutil.which("ansible-playbook"):
        pytest.skip("ansible-playbook not on PATH (activate the venv: . scripts/lib.sh; activate_venv)")
    if not shutil.which("podman"):
        pytest.skip("podman is not installed: preflight checks the container engine")


def preflight(tmp_path, extra_vars):
    """Only the always-tagged phase (preflight) runs with a tag no task has."""
    play = [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "fleetwatch.falco_stack.falcosidekick"}]}]
    return ansible_playbook(tmp_path, play, extra_vars, "--tags", "falcosidekick_preflight_only")


@pytest.mark.parametrize("outputs,expected", [
    ({"slakc": {"webhookurl": "https://x"}}, "unknown outputs: slakc"),
    ({"slack": {"webhook_url": "https://x", "webhookurl": "https://x"}}, "Unknown keys in falcosidekick_outputs: slack.webhook_url"),
    ({"loki": {"minimumpriority": "error"}}, "Outputs without their address, so falcosidekick would leave them off: loki.hostport"),
    ({"webhook": {"address": "https://x", "minimumpriority": "warn"}}, "minimumpriority must be one of"),
], ids=["unknown output", "unknown key", "output without its switch", "bad priority"])
def test_preflight_refuses_what_falcosidekick_would_ignore(engine_ready, tmp_path, outputs, expected):
    rc, output, recap = preflight(tmp_path, {"falcosidekick_outputs": outputs,
                                             "falcosidekick_config_dir": str(tmp_path / "etc-falcosidekick")})
    assert rc != 0 and recap.get("failed") == 1, output
    assert expected in output
    assert not (tmp_path / "etc-falcosidekick").exists()


def test_preflight_refuses_an_alertmanager_address_without_port_unless_the_output_has_its_own(engine_ready, tmp_path):
    rc, output, recap = preflight(tmp_path, {"alertmanager_web_listen_address": "10.0.0.5"})
    assert rc != 0 and recap.get("failed") == 1, output
    assert "alertmanager_web_listen_address, which must be HOST:PORT, port 1-65535 (got '10.0.0.5')" in output
    assert "falcosidekick_outputs.alertmanager.hostport" in output
    rc, output, recap = preflight(tmp_path, {"alertmanager_web_listen_address": "10.0.0.5", "falcosidekick_outputs": {
        "alertmanager": {"hostport": "http://10.0.0.5:9093", "minimumpriority": "warning"}}})
    assert rc == 0 and recap["failed"] == 0, output


@pytest.mark.parametrize("address", ["10.0.0.5:0", "10.0.0.5:65536"])
def test_preflight_refuses_an_alertmanager_port_out_of_range(engine_ready, tmp_path, address):
    rc, output, recap = preflight(tmp_path, {"alertmanager_web_listen_address": address})
    assert rc != 0 and recap.get("failed") == 1, output
    assert "alertmanager_web_listen_address, which must be HOST:PORT, port 1-65535 (got '%s')" % address in output


def test_preflight_refuses_a_misspelt_variable_and_an_ui_without_password(engine_ready, tmp_path):
    rc, output = preflight(tmp_path, {"falcosidekick_listen_prot": 2801})[:2]
    assert rc != 0 and "falcosidekick_listen_prot" in output and "falcosidekick_listen_port" in output
    rc, output = preflight(tmp_path, {"falcosidekick_ui_enabled": True})[:2]
    assert rc != 0 and "falcosidekick_ui_password is empty" in output


def test_preflight_passes_the_defaults(engine_ready, tmp_path):
    rc, output, recap = preflight(tmp_path, {})
    assert rc == 0 and recap["failed"] == 0, output


@pytest.fixture(scope="module")
def test_images(engine_ready):
    """Local TEST IMAGES under localhost/fleetwatch-test/ (re-tags of the lab's base image), never started."""
    if subprocess.run(["podman", "image", "exists", LAB_BASE_IMAGE], check=False).returncode != 0:
        pytest.skip("lab image %s absent (scripts/test.sh setup builds it)" % LAB_BASE_IMAGE)
    tags = {"sidekick": "2.34.1", "ui": "2.2.0", "redis": "7.2.0-v11"}
    refs = ["%s:%s" % (TEST_IMAGES[k], tags[k]) for k in TEST_IMAGES]
    for ref in refs:
        subprocess.run(["podman", "tag", LAB_BASE_IMAGE, ref], check=True)
    yield tags
    for ref in refs:
        # Name the tag twice: "podman untag IMAGE" alone would strip every tag of the image, the lab's included.
        subprocess.run(["podman", "untag", ref, ref], check=False, capture_output=True)


def inspect(name):
    proc = subprocess.run(["podman", "container", "inspect", name], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)[0]


def test_container_definition_created_by_podman(test_images, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    names = {k: "fleetwatch-test-%s-%s" % (k, suffix) for k in TEST_IMAGES}
    config_dir = tmp_path / "etc-falcosidekick"
    password = "fixture-ui-password-%s" % suffix
    slack_url = "https://hooks.slack.example/services/FIXTURE/%s" % suffix
    extra = {"falcosidekick_container_image": TEST_IMAGES["sidekick"], "falcosidekick_container_name": names["sidekick"],
             "falcosidekick_ui_container_image": TEST_IMAGES["ui"], "falcosidekick_ui_container_name": names["ui"],
             "falcosidekick_ui_redis_image": TEST_IMAGES["redis"], "falcosidekick_ui_redis_container_name": names["redis"],
             "falcosidekick_ui_redis_data_dir": str(tmp_path / "redis-data"),
             "falcosidekick_container_pull": False, "falcosidekick_config_dir": str(config_dir),
             "falcosidekick_ui_enabled": True, "falcosidekick_ui_password": password,
             "falcosidekick_outputs": {"alertmanager": {}, "slack": {"webhookurl": slack_url, "minimumpriority": "error"}},
             # Define the containers without starting them (nothing could run in the test images).
             "__falcosidekick_container_state": "created"}
    play = [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "fleetwatch.falco_stack.falcosidekick"}]}]
    try:
        rc, output, recap = ansible_playbook(tmp_path, play, extra)
        assert rc == 0, output
        assert recap["changed"] >= 4, output
        assert password not in output and slack_url not in output

        sidekick = inspect(names["sidekick"])
        assert sidekick["State"]["Status"] == "created"
        assert sidekick["ImageName"] == TEST_IMAGES["sidekick"] + ":2.34.1"
        assert sidekick["Config"]["Cmd"] == ["--config-file=%s/config.yaml" % config_dir]
        assert sidekick["Config"]["User"] == "1234"
        assert sidekick["HostConfig"]["NetworkMode"] == "host"
        assert sidekick["HostConfig"]["RestartPolicy"]["Name"] == "always"
        mounts = {m["Destination"]: m for m in sidekick["Mounts"]}
        assert mounts[str(config_dir)]["Source"] == str(config_dir) and mounts[str(config_dir)]["RW"] is False

        ui = inspect(names["ui"])
        assert ui["ImageName"] == TEST_IMAGES["ui"] + ":2.2.0"
        assert ui["Config"]["Cmd"] == ["-a", "0.0.0.0", "-p", "2802", "-r", "127.0.0.1:6379", "-t", "7d"]
        assert "FALCOSIDEKICK_UI_USER=admin:%s" % password in ui["Config"]["Env"]
        redis = inspect(names["redis"])
        assert "REDIS_ARGS=--bind 127.0.0.1 --port 6379" in redis["Config"]["Env"]
        assert {m["Destination"]: m["Source"] for m in redis["Mounts"]}["/data"] == str(tmp_path / "redis-data")

        config_file = config_dir / "config.yaml"
        assert oct(config_file.stat().st_mode & 0o777) == "0o640" and config_file.stat().st_gid == 1234
        assert oct(config_dir.stat().st_mode & 0o777) == "0o750"
        config = yaml.safe_load(config_file.read_text())
        assert config["slack"] == {"webhookurl": slack_url, "minimumpriority": "error"}
        assert config["webui"] == {"url": "http://127.0.0.1:2802"}
        assert config["listenport"] == 2801

        # A second run and a check-mode run change nothing.
        rc, output, recap = ansible_playbook(tmp_path, play, extra)
        assert rc == 0 and recap["changed"] == 0, output
        rc, output, recap = ansible_playbook(tmp_path, play, extra, "--check")
        assert rc == 0 and recap["changed"] == 0, output
    finally:
        for name in names.values():
            subprocess.run(["podman", "rm", "--force", name], check=False, capture_output=True)
