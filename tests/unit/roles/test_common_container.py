"""_common's container tasks: every container role runs its container through them, and what they hand to the real
podman on this machine (a container defined, never started, from a local TEST IMAGE: a re-tag of the lab's Debian
base image), read back with `podman container inspect`; their argument specs refuse a malformed container."""

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from localplay import NEEDS_ANSIBLE_PLAYBOOK, ansible_playbook, failures  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
LAB_BASE_IMAGE = "localhost/fleetwatch-lab/debian12-base:latest"
TEST_IMAGE = "localhost/fleetwatch-test/common-container"
# The task files of each container role that install the image and run the container.
CONTAINER_ROLES = {
    "prometheus": ("install_container.yml", "run_container.yml"),
    "alertmanager": ("install_container.yml", "run_container.yml"),
    "grafana": ("install_container.yml", "run_container.yml"),
    "node_exporter": ("install_container.yml", "run_container.yml"),
    "falco_exporter": ("install.yml", "run.yml"),
    "falcosidekick": ("install.yml", "run.yml"),
}
CONTAINER_MODULES = {"containers.podman.podman_container", "community.docker.docker_container",
                     "containers.podman.podman_image", "community.docker.docker_image_pull"}


class VarsLoader(yaml.SafeLoader):
    """vars/main.yml files mark some strings !unsafe (Alertmanager's own templates); read as plain strings here."""


VarsLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def tasks_of(path):
    """Every task of a task file, blocks flattened."""
    pending, found = list(yaml.safe_load(path.read_text()) or []), []
    while pending:
        task = pending.pop(0)
        found.append(task)
        for key in ("block", "rescue", "always"):
            pending.extend(task.get(key) or [])
    return found


def common_includes(path, tasks_from):
    return [t for t in tasks_of(path) if (t.get("ansible.builtin.include_role") or {}).get("tasks_from") == tasks_from
            and t["ansible.builtin.include_role"]["name"] == "fleetwatch.falco_stack._common"]


def test_no_role_but_common_calls_the_container_modules_in_its_tasks():
    """Handlers (a restart) and _common itself aside, no role pulls an image or defines a container on its own."""
    offenders = []
    for path in sorted(REPO.glob("roles/*/tasks/*.yml")):
        if path.parts[-3] == "_common":
            continue
        offenders += ["%s: %s" % (path.relative_to(REPO), m) for t in tasks_of(path) for m in CONTAINER_MODULES & set(t)]
    assert not offenders


@pytest.mark.parametrize("role", sorted(CONTAINER_ROLES))
def test_each_container_role_includes_the_common_tasks_with_its_own_tags(role):
    install, run = (REPO / "roles" / role / "tasks" / name for name in CONTAINER_ROLES[role])
    pulls = common_includes(install, "container_image")
    runs = common_includes(run, "container")
    assert pulls and runs
    for task in pulls:
        assert set(task["ansible.builtin.include_role"]["apply"]["tags"]) == {role + "_install", role + "_download"}
        assert role + "_download" in task["tags"]
        assert task["when"] == role + "_container_pull | bool"
    for task in runs:
        assert task["ansible.builtin.include_role"]["apply"]["tags"] == [role + "_run"]
    # The include reads the role's container definition, whose keys the argument specs of _common declare.
    spec = yaml.safe_load((REPO / "roles/_common/meta/argument_specs.yml").read_text())["argument_specs"]
    keys = set(spec["container"]["options"]["__common_container"]["options"])
    definition = yaml.load((REPO / "roles" / role / "vars" / "main.yml").read_text(), Loader=VarsLoader)["__%s_container" % role]
    assert {"engine", "docker_host", "name", "image"} <= set(definition) <= keys


@pytest.fixture(scope="module")
def test_image():
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    if subprocess.run(["podman", "image", "exists", LAB_BASE_IMAGE], check=False).returncode != 0:
        pytest.skip("lab image %s absent (scripts/test.sh setup builds it)" % LAB_BASE_IMAGE)
    ref = "%s:%s" % (TEST_IMAGE, uuid.uuid4().hex[:8])
    subprocess.run(["podman", "tag", LAB_BASE_IMAGE, ref], check=True)
    yield ref
    # Name the tag twice: "podman untag IMAGE" alone would strip every tag of the image, the lab's included.
    subprocess.run(["podman", "untag", ref, ref], check=False, capture_output=True)


def container_play(container, pull=False):
    tasks = []
    if pull:
        tasks.append({"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack._common",
                                                       "tasks_from": "container_image"},
                      "vars": {"__common_container_engine": "podman", "__common_container_image": container["image"]}})
    tasks.append({"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack._common", "tasks_from": "container"},
                  "vars": {"__common_container": container}})
    return [{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]


def inspect(name):
    proc = subprocess.run(["podman", "container", "inspect", name], capture_output=True, text=True, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


@NEEDS_ANSIBLE_PLAYBOOK
def test_container_with_the_hosts_pids_defined_once_then_left_alone(test_image, tmp_path):
    name = "fleetwatch-test-common-%s" % uuid.uuid4().hex[:8]
    container = {"engine": "podman", "name": name, "image": test_image, "command": ["--flag=1", 9100],
                 "pid": "host", "volumes": ["%s:/data:ro" % tmp_path], "env": {"SECRET": "fixture-%s" % name},
                 "state": "created", "no_log": True}
    try:
        rc, output, recap = ansible_playbook(tmp_path, container_play(container, pull=True), {}, "--check")
        assert rc == 0, output
        assert inspect(name) is None, "check mode defined the container"

        rc, output, recap = ansible_playbook(tmp_path, container_play(container, pull=True), {})
        assert rc == 0, output
        assert recap["changed"] == 1, output  # the image is present: only the container is new
        assert container["env"]["SECRET"] not in output
        created = inspect(name)
        assert created["State"]["Status"] == "created"
        assert created["HostConfig"]["PidMode"] == "host"
        assert created["HostConfig"]["NetworkMode"] == "host"
        assert created["HostConfig"]["RestartPolicy"]["Name"] == "always"
        assert created["Config"]["Cmd"] == ["--flag=1", "9100"]
        assert "SECRET=" + container["env"]["SECRET"] in created["Config"]["Env"]
        assert {m["Destination"]: m["RW"] for m in created["Mounts"]} == {"/data": False}

        rc, output, recap = ansible_playbook(tmp_path, container_play(container, pull=True), {})
        assert rc == 0, output
        assert recap["changed"] == 0, output
        assert inspect(name)["Id"] == created["Id"]

    finally:
        subprocess.run(["podman", "rm", "--force", name], check=False, capture_output=True)


@NEEDS_ANSIBLE_PLAYBOOK
def test_no_pull_is_tried_when_the_caller_found_the_image(test_image, tmp_path):
    """An image no registry has: the pull fails, unless the caller's own inspection says the host has it."""
    absent = "localhost/fleetwatch-test/absent-%s:1" % uuid.uuid4().hex[:8]
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "fleetwatch.falco_stack._common", "tasks_from": "container_image"},
         "vars": {"__common_container_engine": "podman", "__common_container_image": absent,
                  "__common_container_image_present": "{{ found }}"}}]}]
    rc, output, recap = ansible_playbook(tmp_path, play, {"found": True})
    assert rc == 0 and recap["changed"] == 0, output
    rc, output, recap = ansible_playbook(tmp_path, play, {"found": False})
    assert rc != 0 and recap["failed"] == 1, output


@NEEDS_ANSIBLE_PLAYBOOK
@pytest.mark.parametrize("change,needle", [
    ({"pid": "container:other"}, "pid"),
    ({"image": None}, "image"),
    ({"engine": "lxc"}, "engine"),
    ({"volume": ["/a:/b"]}, "volume"),
    ({"state": "running"}, "state"),
])
def test_a_malformed_container_is_refused_before_any_change(tmp_path, change, needle):
    container = {"engine": "podman", "name": "fleetwatch-test-never-%s" % uuid.uuid4().hex[:8],
                 "image": "localhost/fleetwatch-test/never:1"}
    container.update(change)
    container = {k: v for k, v in container.items() if v is not None}
    rc, failed = failures(tmp_path, container_play(container), {})
    assert rc != 0
    assert len(failed) == 1 and needle in failed[0]["msg"], failed
    assert "argument" in failed[0]["msg"].lower() or "__common_container" in failed[0]["msg"], failed
    assert inspect(container["name"]) is None
