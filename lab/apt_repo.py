"""A signed apt repository for the lab and the Molecule scenarios: the way an air-gapped site mirrors Falco's.

Layout in REPO: deb/{dists/stable,pool} (suite stable, component main; InRelease and Release.gpg signed with a key
generated here, valid one day), falco-packages.asc (that key) and fingerprint (its fingerprint, for
falco_repo_key_fingerprint).

Usage: python3 lab/apt_repo.py REPO LABEL DEB [DEB ...]
"""

import gzip
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def build_repo(debs, repo, arch, label):
    """A signed apt repository in REPO (deb/, falco-packages.asc, fingerprint) holding DEBS; returns the key's fingerprint."""
    pool = repo / "deb" / "pool"
    binary = repo / "deb" / "dists" / "stable" / "main" / ("binary-%s" % arch)
    pool.mkdir(parents=True)
    binary.mkdir(parents=True)
    for deb in debs:
        shutil.copyfile(deb, pool / deb.name)
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "pool"], cwd=repo / "deb", check=True,
                              capture_output=True, text=True).stdout
    (binary / "Packages").write_text(packages)
    with gzip.open(binary / "Packages.gz", "wt") as handle:
        handle.write(packages)
    dist = repo / "deb" / "dists" / "stable"
    lines = ["Origin: fleetwatch-test", "Label: %s" % label, "Suite: stable", "Codename: stable",
             "Architectures: %s" % arch, "Components: main", "SHA256:"]
    for name in ("main/binary-%s/Packages" % arch, "main/binary-%s/Packages.gz" % arch):
        data = (dist / name).read_bytes()
        lines.append(" %s %d %s" % (hashlib.sha256(data).hexdigest(), len(data), name))
    (dist / "Release").write_text("\n".join(lines) + "\n")
    home = Path(tempfile.mkdtemp(prefix="fleetwatch-apt-repo-gpg-"))
    try:
        gpg = ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback", "--passphrase", ""]
        subprocess.run(gpg + ["--quick-gen-key", "fleetwatch lab repository key <lab@example.invalid>",
                              "ed25519", "sign", "1d"], check=True, capture_output=True)
        colons = subprocess.run(gpg + ["--with-colons", "--list-keys"], check=True, capture_output=True, text=True).stdout
        fingerprint = [l.split(":")[9] for l in colons.splitlines() if l.startswith("fpr:")][0]
        key = subprocess.run(gpg + ["--armor", "--export", fingerprint], check=True, capture_output=True, text=True).stdout
        (repo / "falco-packages.asc").write_text(key)
        (repo / "fingerprint").write_text(fingerprint + "\n")
        subprocess.run(gpg + ["--yes", "--clearsign", "-o", str(dist / "InRelease"), str(dist / "Release")],
                       check=True, capture_output=True)
        subprocess.run(gpg + ["--yes", "--armor", "--detach-sign", "-o", str(dist / "Release.gpg"), str(dist / "Release")],
                       check=True, capture_output=True)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    return fingerprint


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__.strip().splitlines()[-1])
    repo, label, debs = Path(sys.argv[1]), sys.argv[2], [Path(d) for d in sys.argv[3:]]
    if repo.exists():
        shutil.rmtree(repo)
    arch = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True, text=True).stdout.strip()
    print("repository key %s" % build_repo(debs, repo, arch, label))


if __name__ == "__main__":
    main()
