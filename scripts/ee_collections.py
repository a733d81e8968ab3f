"""Collection tarballs for an execution environment built without Galaxy (execution-environment-airgapped.yml).

Packs the collections this one depends on (galaxy.yml `dependencies`, and theirs in turn) from a directory where they
are already installed, such as the `ansible` package from PyPI in the test venv, into the tarballs ansible-galaxy
installs, and writes a requirements file naming each tarball:

  python scripts/ee_collections.py OUTPUT_DIR [--source DIR ...] [--prefix collections]

OUTPUT_DIR gets NAMESPACE-NAME-VERSION.tar.gz per collection and requirements.yml (tarballs as `type: file`, paths
starting with --prefix, where ansible-builder puts them in the build context). This collection's own tarball is
built by `ansible-galaxy collection build` beside them (scripts/ee.sh); requirements.yml names it too when it is
in OUTPUT_DIR. Every installed file is checked against the collection's FILES.json before it is packed: a tarball
holds what the collection's publisher released (less the development files the `ansible` package leaves out), or the
script stops and says which file differs.
"""

import argparse
import gzip
import hashlib
import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path

import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements

REPO = Path(__file__).resolve().parents[1]


def default_sources():
    """The ansible_collections directories the running Python imports from (the `ansible` package's)."""
    spec = importlib.util.find_spec("ansible_collections")
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def find_installed(fqcn, sources):
    """The installed directory of a collection (the first source holding it with a MANIFEST.json)."""
    namespace, name = fqcn.split(".", 1)
    for source in sources:
        path = Path(source) / namespace / name
        if (path / "MANIFEST.json").is_file() and (path / "FILES.json").is_file():
            return path
    return None


def collection_info(path):
    return json.loads((path / "MANIFEST.json").read_text())["collection_info"]


def pack(path, output_dir):
    """Write the tarball of an installed collection; returns its path.

    The `ansible` package leaves out what a collection's FILES.json lists for development only (tests, CI
    configuration); the tarball holds the files that are installed, each checked against FILES.json, and a FILES.json
    (and MANIFEST.json's checksum of it) listing exactly those. A file that differs from its checksum stops the script.
    """
    info = collection_info(path)
    manifest = json.loads((path / "MANIFEST.json").read_text())
    listing = json.loads((path / "FILES.json").read_text())
    target = Path(output_dir) / ("%s-%s-%s.tar.gz" % (info["namespace"], info["name"], info["version"]))
    kept, contents = [], {}
    for entry in listing["files"]:
        item = path / entry["name"]
        if entry["ftype"] == "dir":
            if entry["name"] == "." or item.is_dir():
                kept.append(entry)
            continue
        if not item.is_file():
            continue
        data = item.read_bytes()
        if hashlib.new(entry["chksum_type"], data).hexdigest() != entry["chksum_sha256"]:
            sys.exit("%s: %s differs from the collection's FILES.json (changed after install?); reinstall it"
                     % (path, entry["name"]))
        kept.append(entry)
        contents[entry["name"]] = data
    files_json = json.dumps(dict(listing, files=kept), indent=4).encode()
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()

    def add(tar, arcname, data=None):
        member = tarfile.TarInfo(arcname)
        # Fixed owner and time: the same installed collection gives the same tarball.
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        member.mtime = 0
        if data is None:
            member.type, member.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(member)
        else:
            member.size, member.mode = len(data), 0o644
            tar.addfile(member, io.BytesIO(data))

    # gzip without a time stamp either: an unchanged collection gives the same bytes, and the image build its cache.
    with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        add(tar, "MANIFEST.json", json.dumps(manifest, indent=4).encode())
        add(tar, "FILES.json", files_json)
        for entry in kept:
            if entry["name"] != ".":
                add(tar, entry["name"], contents.get(entry["name"]))
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--source", action="append", default=[],
                        help="an ansible_collections directory to pack from (default: the running Python's)")
    parser.add_argument("--prefix", default="collections",
                        help="directory of the tarballs as the requirements file names them (build context)")
    parser.add_argument("--galaxy", default=str(REPO / "galaxy.yml"))
    args = parser.parse_args()
    sources = [Path(s) for s in args.source] or default_sources()
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    galaxy = yaml.safe_load(Path(args.galaxy).read_text())

    wanted = dict(galaxy.get("dependencies") or {})
    packed = {}
    while wanted:
        fqcn, spec = wanted.popitem()
        path = find_installed(fqcn, sources)
        if path is None:
            sys.exit("%s: not installed under %s; install it there (pip install ansible, or ansible-galaxy "
                     "collection install on a machine with Galaxy) or name its directory with --source"
                     % (fqcn, ", ".join(str(s) for s in sources) or "any source"))
        info = collection_info(path)
        if not meets_requirements(info["version"], spec):
            sys.exit("%s: %s is installed at %s, and %s wants %s" % (fqcn, info["version"], path, args.galaxy, spec))
        if fqcn in packed:
            continue
        packed[fqcn] = pack(path, output)
        print("%s %s: %s" % (fqcn, info["version"], packed[fqcn].name))
        for dep, dep_spec in (info.get("dependencies") or {}).items():
            if dep not in packed:
                wanted[dep] = dep_spec

    own = sorted(output.glob("%s-%s-%s.tar.gz" % (galaxy["namespace"], galaxy["name"], galaxy["version"])))
    requirements = {"collections": [{"name": "%s/%s" % (args.prefix, t.name), "type": "file"}
                                    for t in own + sorted(packed.values())]}
    (output / "requirements.yml").write_text(
        "---\n# Written by scripts/ee_collections.py: every collection of the execution environment as a local "
        "tarball.\n" + yaml.safe_dump(requirements, sort_keys=False))


if __name__ == "__main__":
    main()
