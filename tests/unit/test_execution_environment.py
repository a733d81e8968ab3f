"""execution-environment.yml: ansible-builder turns it into a build context holding this collection and its needs.

Its base image is in a registry (not reachable here); what is checked for it is everything ansible-builder does
before the image build: the definition validates, the context holds the collection tarball where the galaxy
requirements expect it, the tarball installs from there, and the introspection that runs inside the build finds the
collection's Python requirements. The air-gapped variant (execution-environment-airgapped.yml), which is built and run
with podman by scripts/ee.sh, is checked further down as far as that goes without podman.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements

from localplay import REPO

BUILDER = shutil.which("ansible-builder")
pytestmark = pytest.mark.skipif(BUILDER is None, reason="ansible-builder not installed (requirements/test.txt)")


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(REPO / "execution-environment.yml", work)
    (work / "requirements").mkdir()
    shutil.copy(REPO / "requirements" / "ee-collections.yml", work / "requirements")
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(work / "ee-build"), str(REPO)],
                   check=True, capture_output=True)
    subprocess.run([BUILDER, "create", "-f", "execution-environment.yml", "--context", "ctx"], cwd=work, check=True,
                   capture_output=True)
    return work / "ctx"


def test_the_context_pins_ansible_core_and_the_collections(context):
    containerfile = (context / "Containerfile").read_text()
    pinned = [line for line in (REPO / "requirements" / "test.txt").read_text().splitlines()
              if line.startswith("ansible-core==")]
    assert pinned and pinned[0] in containerfile
    wanted = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    for name, spec in galaxy["dependencies"].items():
        assert {"name": name, "version": spec} in wanted


def test_the_collection_tarball_installs_from_where_the_requirements_point(context, tmp_path):
    build = context / "_build"
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    local = [c for c in yaml.safe_load((build / "requirements.yml").read_text())["collections"] if c.get("type") == "file"]
    assert [c["name"] for c in local] == ["collections/fleetwatch-falco_stack-%s.tar.gz" % version]
    subprocess.run(["ansible-galaxy", "collection", "install", "--force", "--offline", "--no-deps", "-p", str(tmp_path),
                    local[0]["name"]], cwd=build, check=True, capture_output=True)
    assert (tmp_path / "ansible_collections" / "fleetwatch" / "falco_stack" / "roles" / "falco").is_dir()
    # The step the image build runs to collect the collections' Python and system needs.
    found = subprocess.run([sys.executable, str(build / "scripts" / "introspect.py"), "introspect", str(tmp_path)],
                           check=True, capture_output=True, text=True).stdout
    needs = yaml.safe_load(found)
    assert any(line.startswith("bcrypt") for line in needs["python"])
    assert not any(line.startswith("passlib") for line in needs["python"])


# ---- The air-gapped variant: execution-environment-airgapped.yml and scripts/ee_collections.py ---------------------
# The image build and the run inside it need podman and the lab (scripts/ee.sh check, docs/execution-environment.md);
# what is checked here is what they rely on: the two definitions agree where they should, the collection tarballs
# install offline with every dependency, and ansible-builder makes a context that takes nothing from a registry or
# Galaxy.

AIRGAPPED = REPO / "execution-environment-airgapped.yml"
PACKER = REPO / "scripts" / "ee_collections.py"
sys.path.insert(0, str(REPO / "scripts"))
import ee_wheelhouse  # noqa: E402


def load(path):
    return yaml.safe_load(path.read_text())


def test_the_airgapped_definition_differs_only_in_base_package_manager_and_collection_source():
    online, airgapped = load(REPO / "execution-environment.yml"), load(AIRGAPPED)
    for key in ("ansible_core", "ansible_runner", "python", "system"):
        assert airgapped["dependencies"][key] == online["dependencies"][key], key
    # The same final check; around it only the wheelhouse's set-up and removal.
    steps = airgapped["additional_build_steps"]
    assert steps["append_final"][:-1] == online["additional_build_steps"]["append_final"]
    assert steps["append_final"][-1] == "RUN rm -rf /opt/ee-wheelhouse /etc/pip.conf"
    assert set(steps) - set(online["additional_build_steps"]) == {"prepend_base"}
    assert airgapped["additional_build_files"] == online["additional_build_files"] + [{"src": "ee-wheels",
                                                                                      "dest": "wheels"}]
    # The SSH client the jobs need, for both package families.
    assert "openssh-client [platform:dpkg]" in online["dependencies"]["system"]
    assert "openssh-clients [platform:rpm]" in online["dependencies"]["system"]
    # What differs, and nothing pulled: a local base, apt through the base's wrapper, collections from tarballs.
    assert airgapped["images"]["base_image"]["name"].startswith("localhost/")
    assert airgapped["options"]["package_manager_path"] == "/usr/local/bin/ee-apt-get"
    assert (REPO / "lab" / "images" / "ee-base" / "ee-apt-get").is_file()
    assert "--offline" in airgapped["build_arg_defaults"]["ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"]
    assert airgapped["dependencies"]["galaxy"] == "ee-build/requirements.yml"


def fake_collection(root, fqcn, version, files, dependencies=None, missing=()):
    """An installed collection as the `ansible` package leaves it: FILES.json also lists files that are not there."""
    namespace, name = fqcn.split(".")
    path = root / namespace / name
    entries = [{"name": ".", "ftype": "dir", "chksum_type": None, "chksum_sha256": None, "format": 1}]
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    for rel, text in list(files.items()) + [(m, "gone") for m in missing]:
        for parent in reversed([str(p) for p in Path(rel).parents if str(p) != "."]):
            if not any(e["name"] == parent for e in entries):
                entries.append({"name": parent, "ftype": "dir", "chksum_type": None, "chksum_sha256": None,
                                "format": 1})
        entries.append({"name": rel, "ftype": "file", "chksum_type": "sha256",
                        "chksum_sha256": hashlib.sha256(text.encode()).hexdigest(), "format": 1})
    files_json = json.dumps({"files": entries, "format": 1})
    (path / "FILES.json").write_text(files_json)
    manifest = {"collection_info": {"namespace": namespace, "name": name, "version": version, "authors": ["test"],
                                    "readme": "README.md", "tags": [], "description": "test", "license": [],
                                    "license_file": None, "dependencies": dependencies or {}, "repository": None,
                                    "documentation": None, "homepage": None, "issues": None},
                "file_manifest_file": {"name": "FILES.json", "ftype": "file", "chksum_type": "sha256",
                                       "chksum_sha256": hashlib.sha256(files_json.encode()).hexdigest(), "format": 1},
                "format": 1}
    (path / "MANIFEST.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture
def installed(tmp_path):
    """Two installed collections, one depending on the other, and a galaxy.yml wanting the first."""
    source = tmp_path / "source"
    fake_collection(source, "fwtest.one", "1.4.0", {"plugins/filter/one.py": "ONE = 1\n", "README.md": "one\n"},
                    dependencies={"fwtest.two": ">=1.0.0"}, missing=("tests/unit/test_one.py",))
    fake_collection(source, "fwtest.two", "1.2.0", {"plugins/filter/two.py": "TWO = 2\n", "README.md": "two\n"})
    galaxy = tmp_path / "galaxy.yml"
    galaxy.write_text(yaml.safe_dump({"namespace": "fleetwatch", "name": "falco_stack", "version": "0.1.0",
                                      "dependencies": {"fwtest.one": ">=1.0.0"}}))
    return source, galaxy


def pack(output, source, galaxy):
    return subprocess.run([sys.executable, str(PACKER), str(output), "--source", str(source), "--galaxy", str(galaxy)],
                          capture_output=True, text=True, check=False)


def install_offline(workdir, requirements, target):
    """Install from a requirements file whose tarballs sit under workdir/collections, as in the build context."""
    return subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "--force", "-r", str(requirements),
                           "-p", str(target)], cwd=workdir, capture_output=True, text=True, check=False)


def test_the_tarballs_install_offline_with_their_dependencies_and_only_the_installed_files(installed, tmp_path):
    source, galaxy = installed
    context = tmp_path / "context"
    proc = pack(context / "collections", source, galaxy)
    assert proc.returncode == 0, proc.stderr
    requirements = load(context / "collections" / "requirements.yml")["collections"]
    assert requirements == [{"name": "collections/fwtest-one-1.4.0.tar.gz", "type": "file"},
                            {"name": "collections/fwtest-two-1.2.0.tar.gz", "type": "file"}]
    target = tmp_path / "installed"
    proc = install_offline(context, context / "collections" / "requirements.yml", target)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    one = target / "ansible_collections" / "fwtest" / "one"
    assert (one / "plugins" / "filter" / "one.py").read_text() == "ONE = 1\n"
    assert not (one / "tests").exists()
    assert json.loads((target / "ansible_collections" / "fwtest" / "two" / "MANIFEST.json").read_text())[
        "collection_info"]["version"] == "1.2.0"
    # The rewritten FILES.json and MANIFEST.json agree with what was installed.
    verify = subprocess.run(["ansible-galaxy", "collection", "verify", "--offline", "fwtest.one", "fwtest.two"],
                            env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(target)),
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_changed_file_a_missing_collection_and_a_version_out_of_range_are_refused(installed, tmp_path):
    source, galaxy = installed
    (source / "fwtest" / "two" / "plugins" / "filter" / "two.py").write_text("TWO = 3\n")
    proc = pack(tmp_path / "out", source, galaxy)
    assert proc.returncode != 0 and "plugins/filter/two.py differs" in proc.stderr
    assert not list((tmp_path / "out").glob("fwtest-two-*.tar.gz"))

    galaxy.write_text(yaml.safe_dump({"namespace": "fleetwatch", "name": "falco_stack", "version": "0.1.0",
                                      "dependencies": {"fwtest.three": "*"}}))
    proc = pack(tmp_path / "out", source, galaxy)
    assert proc.returncode != 0 and "fwtest.three: not installed" in proc.stderr

    galaxy.write_text(yaml.safe_dump({"namespace": "fleetwatch", "name": "falco_stack", "version": "0.1.0",
                                      "dependencies": {"fwtest.one": ">=2.0.0"}}))
    proc = pack(tmp_path / "out", source, galaxy)
    assert proc.returncode != 0 and "fwtest.one: 1.4.0 is installed" in proc.stderr and ">=2.0.0" in proc.stderr


def test_the_airgapped_context_holds_every_collection_as_a_tarball(tmp_path):
    """The real packing, from the `ansible` package of the test venv, into the context ansible-builder makes."""
    shutil.copy(AIRGAPPED, tmp_path)
    build = tmp_path / "ee-build"
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(build), str(REPO)],
                   check=True, capture_output=True)
    proc = subprocess.run([sys.executable, str(PACKER), str(build)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "ee-wheels").mkdir()
    subprocess.run([BUILDER, "create", "-f", AIRGAPPED.name, "--context", "ctx"], cwd=tmp_path, check=True,
                   capture_output=True)
    context = tmp_path / "ctx"
    containerfile = (context / "Containerfile").read_text()
    # Every pip step reads the wheelhouse only: its configuration comes before the first pip install, and each package
    # a pip step of ansible-builder's own names is one scripts/ee_wheelhouse.py downloads.
    lines = containerfile.splitlines()
    pip_lines = [i for i, line in enumerate(lines) if "-m pip install" in line]
    assert pip_lines and lines.index("COPY _build/wheels/ /opt/ee-wheelhouse/") < pip_lines[0]
    assert any("no-index = true" in line for line in lines[:pip_lines[0]])
    builder_tools = {name.strip("'\"") for i in pip_lines for name in lines[i].split("--no-cache-dir", 1)[1].split()
                     if not name.startswith("$")}
    assert builder_tools == set(ee_wheelhouse.BUILDER_TOOLS), "ansible-builder's own pip steps changed"
    assert 'ARG EE_BASE_IMAGE="localhost/fleetwatch-lab/ee-base:debian12"' in containerfile
    assert 'ARG PKGMGR="/usr/local/bin/ee-apt-get"' in containerfile
    assert 'ARG ANSIBLE_GALAXY_CLI_COLLECTION_OPTS="--offline"' in containerfile
    assert "openssh-client [platform:dpkg]" in (context / "_build" / "bindep.txt").read_text()
    wanted = load(context / "_build" / "requirements.yml")["collections"]
    assert all(c["type"] == "file" and (context / "_build" / c["name"]).is_file() for c in wanted)
    names = {c["name"].split("/")[-1].rsplit("-", 1)[0] for c in wanted}
    galaxy = load(REPO / "galaxy.yml")
    assert names >= {"fleetwatch-falco_stack"} | {d.replace(".", "-") for d in galaxy["dependencies"]}
    # community.docker's own dependency comes along.
    assert "community-library_inventory_filtering_v1" in names
    # Everything installs from the context alone, as the galaxy stage of the build does.
    proc = install_offline(context / "_build", context / "_build" / "requirements.yml", tmp_path / "installed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for dep, spec in galaxy["dependencies"].items():
        manifest = tmp_path / "installed" / "ansible_collections" / dep.replace(".", "/") / "MANIFEST.json"
        assert meets_requirements(json.loads(manifest.read_text())["collection_info"]["version"], spec), dep


def test_the_wheelhouse_pins_ansible_core_and_runner_as_both_definitions_do():
    online = load(REPO / "execution-environment.yml")["dependencies"]
    assert ee_wheelhouse.pinned_packages(AIRGAPPED) == [online["ansible_core"]["package_pip"],
                                                        online["ansible_runner"]["package_pip"]]
