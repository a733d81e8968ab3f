"""TEST FIXTURE package files for the tests of the package_info lookup and the falco role's package checks.

Tiny .deb files are built with dpkg-deb and .rpm files with rpmbuild at test time (the helpers return None when the
tool is missing, and the tests skip); ``rpm_bytes`` writes an .rpm's lead and headers by hand, the layout rpm's
lib/header.c reads, for machines without rpmbuild. None of them holds a program: only metadata.
"""

import shutil
import struct
import subprocess
from pathlib import Path

REAL_FALCO_DEB = Path(__file__).resolve().parents[2].parent / "shared" / "packages" / "falco_0.44.1_amd64.deb"
REAL_FALCO_DEB_REASON = "the real Falco package not found at %s (needs ../shared next to the repo)" % REAL_FALCO_DEB


def build_deb(directory, version, name="falco", compression="gzip", filename=None):
    """A .deb whose control file says Package: name and Version: version; None without dpkg-deb."""
    if shutil.which("dpkg-deb") is None:
        return None
    root = Path(directory) / ("root-%s-%s-%s" % (name, version.replace(":", "_"), compression))
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: fleetwatch tests <tests@example.invalid>\n"
        "Description: TEST FIXTURE package\n metadata only, for the falco role's tests\n" % (name, version))
    deb = Path(directory) / (filename or "%s_%s_amd64.deb" % (name, version.replace(":", "_")))
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Z" + compression, "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


def build_rpm(directory, version, name="falco", release="1", epoch=None):
    """An .rpm built with rpmbuild (no files, metadata only); None without rpmbuild."""
    if shutil.which("rpmbuild") is None:
        return None
    top = Path(directory) / ("rpmbuild-%s-%s" % (name, version))
    (top / "SPECS").mkdir(parents=True)
    spec = top / "SPECS" / "fixture.spec"
    spec.write_text("Name: %s\nVersion: %s\nRelease: %s\n%sSummary: TEST FIXTURE package\nLicense: Apache-2.0\n"
                    "BuildArch: x86_64\n%%description\nmetadata only, for the falco role's tests\n%%files\n" % (
                        name, version, release, "Epoch: %s\n" % epoch if epoch is not None else ""))
    subprocess.run(["rpmbuild", "-bb", "--quiet", "--define", "_topdir %s" % top, "--define", "_build_id_links none",
                    "--target", "x86_64", str(spec)], check=True, capture_output=True)
    return next((top / "RPMS").glob("*/*.rpm"))


def _header(entries):
    """An rpm header: magic, index of (tag, type, offset, count) and the data store. entries: (tag, type, bytes)."""
    index, store = b"", b""
    for tag, kind, data in entries:
        if kind == 4:  # INT32 data is 4-byte aligned in the store
            store += b"\0" * (-len(store) % 4)
        index += struct.pack(">iiii", tag, kind, len(store), 1)
        store += data
    return b"\x8e\xad\xe8\x01\0\0\0\0" + struct.pack(">II", len(entries), len(store)) + index + store


def rpm_bytes(name="falco", version="0.31.1", release="1", epoch=None, arch="x86_64"):
    """The start of an .rpm (lead, signature header padded to 8 bytes, main header), written by hand."""
    lead = b"\xed\xab\xee\xdb\x03\x00\x00\x00\x00\x01" + ("%s-%s-%s" % (name, version, release)).encode()[:65].ljust(66, b"\0")
    lead += struct.pack(">hh", 1, 5) + b"\0" * 16
    assert len(lead) == 96
    signature = _header([(1000, 4, struct.pack(">i", 4242))])  # RPMSIGTAG_SIZE; 36 bytes, so 4 of padding follow
    signature += b"\0" * (-len(signature) % 8)
    tags = [(1000, 6, name.encode() + b"\0"), (1001, 6, version.encode() + b"\0"), (1002, 6, release.encode() + b"\0")]
    if epoch is not None:
        tags.append((1003, 4, struct.pack(">i", epoch)))
    tags.append((1022, 6, arch.encode() + b"\0"))
    return lead + signature + _header(tags)
