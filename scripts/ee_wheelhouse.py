"""Download every Python wheel the air-gapped execution environment's build installs, on this machine.

The build (execution-environment-airgapped.yml) runs pip with no package index: its base stage gets a pip
configuration that points at these wheels only. Which wheels: ansible-core and ansible-runner as the EE definition
pins them, the Python requirements that ansible-builder's introspection finds in the collections, and the tools
ansible-builder's own build steps install (BUILDER_TOOLS). Binary wheels only, so nothing is compiled in the image.
Usage: python scripts/ee_wheelhouse.py EE_DEFINITION COLLECTIONS_DIR OUTPUT_DIR
  COLLECTIONS_DIR holds ansible_collections/ as the EE installs them.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# What ansible-builder 3.x's generated Containerfile installs with pip besides the definition's packages: bindep,
# pyyaml and packaging in the builder stage (introspection), dumb-init 1.2.5 in the final stage (the entrypoint).
BUILDER_TOOLS = ["bindep", "pyyaml", "packaging", "dumb-init==1.2.5"]


def pinned_packages(definition):
    dependencies = yaml.safe_load(Path(definition).read_text())["dependencies"]
    return [dependencies[name]["package_pip"] for name in ("ansible_core", "ansible_runner")]


def introspected_requirements(collections_dir):
    with tempfile.TemporaryDirectory() as work:
        requirements = Path(work) / "requirements.txt"
        subprocess.run(["ansible-builder", "introspect", "--sanitize", "--write-pip", str(requirements),
                        str(collections_dir)], check=True, stdout=subprocess.DEVNULL)
        lines = requirements.read_text().splitlines() if requirements.exists() else []
    # Lines look like "docker  # from collection community.docker".
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("definition")
    parser.add_argument("collections_dir")
    parser.add_argument("output_dir")
    args = parser.parse_args(argv)
    packages = pinned_packages(args.definition) + introspected_requirements(args.collections_dir) + BUILDER_TOOLS
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
                    "--dest", args.output_dir] + packages, check=True)
    wheels = sorted(path.name for path in Path(args.output_dir).glob("*.whl"))
    print("%d wheels for: %s" % (len(wheels), " ".join(packages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
