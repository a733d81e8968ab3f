"""execution-environment.yml: ansible-builder turns it into a build context holding this collection and its needs.

The image build itself needs a registry for the base image (not reachable here); what is checked is everything
ansible-builder does before that: the definition validates, the context holds the collection tarball where the
galaxy requirements expect it, the tarball installs from there, and the introspection that runs inside the build
finds the collection's Python requirements.
"""

import shutil
import subprocess
import sys

import pytest
import yaml

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
