"""Reading a package file's name and version from the package itself (module_utils/package_info.py and the
package_info lookup): TEST FIXTURE .deb and .rpm files built at test time, and the real Falco 0.44.1 package from
../shared/packages when present."""

import io
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader

from ansible_collections.fleetwatch.falco_stack.plugins.lookup.package_info import LookupModule
from ansible_collections.fleetwatch.falco_stack.plugins.module_utils.package_info import (
    PackageInfoError, package_info, upstream_version)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fixture_packages import (  # noqa: E402  (tests/unit is not on sys.path for this folder)
    REAL_FALCO_DEB, REAL_FALCO_DEB_REASON, build_deb, build_rpm, rpm_bytes)

needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed (apt-get install dpkg)")
needs_rpmbuild = pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild not installed (apt-get install rpm)")


@pytest.mark.parametrize("version,upstream", [("0.44.1", "0.44.1"), ("1:0.44.1", "0.44.1"), ("0.44.1-1", "0.44.1"),
                                              ("2:0.44.1-1+deb12u1", "0.44.1"), ("0.44.1~rc1-3", "0.44.1~rc1")])
def test_upstream_version_drops_epoch_and_revision(version, upstream):
    assert upstream_version(version) == upstream


@needs_dpkg_deb
@pytest.mark.parametrize("compression", ["gzip", "xz", "none"])
def test_a_deb_is_read_whatever_its_control_compression(tmp_path, compression):
    deb = build_deb(tmp_path, "1:0.43.1-2", compression=compression)
    assert package_info(str(deb)) == {"format": "deb", "name": "falco", "version": "0.43.1",
                                      "full_version": "1:0.43.1-2", "architecture": "amd64"}


@needs_dpkg_deb
def test_a_renamed_deb_is_known_by_its_content(tmp_path):
    deb = build_deb(tmp_path, "0.43.1", filename="falco-0.44.1-x86_64.rpm")
    found = package_info(str(deb))
    assert (found["format"], found["version"]) == ("deb", "0.43.1")


@needs_dpkg_deb
def test_a_zstd_deb_without_a_zstd_module_says_what_to_install(tmp_path, monkeypatch):
    deb = build_deb(tmp_path, "0.44.1", compression="zstd")
    monkeypatch.setitem(sys.modules, "zstandard", None)
    monkeypatch.setitem(sys.modules, "compression", None)
    with pytest.raises(PackageInfoError, match=r"control.tar.zst is zstd-compressed.*pip install zstandard"):
        package_info(str(deb))


@needs_dpkg_deb
@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd command not installed (it stands in for the module)")
def test_a_zstd_deb_is_read_through_the_zstandard_module(tmp_path, monkeypatch):
    deb = build_deb(tmp_path, "0.44.1", compression="zstd")

    class Decompressor:
        """The part of zstandard's API the reader uses, backed by the zstd command."""

        def stream_reader(self, source):
            return io.BytesIO(subprocess.run(["zstd", "-dc"], input=source.read(), capture_output=True,
                                             check=True).stdout)

    monkeypatch.setitem(sys.modules, "compression", None)
    monkeypatch.setitem(sys.modules, "zstandard", types.SimpleNamespace(ZstdDecompressor=Decompressor))
    assert package_info(str(deb))["version"] == "0.44.1"


@pytest.mark.skipif(not REAL_FALCO_DEB.is_file(), reason=REAL_FALCO_DEB_REASON)
def test_the_real_falco_package_reads_as_0_44_1():
    assert package_info(str(REAL_FALCO_DEB)) == {"format": "deb", "name": "falco", "version": "0.44.1",
                                                 "full_version": "0.44.1", "architecture": "amd64"}


@pytest.mark.parametrize("epoch,full", [(None, "0.31.1-1"), (3, "3:0.31.1-1")])
def test_an_rpm_header_written_by_hand(tmp_path, epoch, full):
    rpm = tmp_path / "mirror-blob.bin"
    rpm.write_bytes(rpm_bytes(version="0.31.1", release="1", epoch=epoch))
    assert package_info(str(rpm)) == {"format": "rpm", "name": "falco", "version": "0.31.1", "full_version": full,
                                      "architecture": "x86_64"}


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm not installed (apt-get install rpm)")
def test_rpm_reads_the_hand_written_header_the_same(tmp_path):
    # The hand-written layout is what rpm itself reads, so the test above tests the format and not our own idea of it.
    rpm = tmp_path / "falco.rpm"
    rpm.write_bytes(rpm_bytes(version="0.31.1", release="7", epoch=2))
    query = subprocess.run(["rpm", "-qp", "--nosignature", "--nodigest", "--queryformat",
                            "%{NAME} %{EPOCH} %{VERSION} %{RELEASE} %{ARCH}", str(rpm)],
                           capture_output=True, text=True, check=False)
    assert query.stdout == "falco 2 0.31.1 7 x86_64", query.stderr


@needs_rpmbuild
def test_an_rpm_built_by_rpmbuild(tmp_path):
    rpm = build_rpm(tmp_path, "0.31.1", release="1", epoch=2)
    assert package_info(str(rpm)) == {"format": "rpm", "name": "falco", "version": "0.31.1", "full_version": "2:0.31.1-1",
                                      "architecture": "x86_64"}


@pytest.mark.parametrize("content,reason", [
    (b"", "neither a .deb (an ar archive) nor an .rpm"),
    (b"<html>404 Not Found</html>", "neither a .deb (an ar archive) nor an .rpm: it starts with b'<html>40'"),
    (b"!<arch>\n", "the ar archive has no control.tar member, so it is no .deb"),
    (b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n", "no control.tar member"),
    (b"!<arch>\ncontrol.tar.gz  0           0     0     100644  400       `\nxx", "the file ends inside the control.tar.gz"),
    (b"!<arch>\ncontrol.tar.gz  0           0     0     100644  2         `\nxx", "cannot be unpacked"),
    (b"!<arch>\ncontrol.tar.bz2 0           0     0     100644  2         `\nxx", "a compression dpkg does not write"),
    (b"\xed\xab\xee\xdb" + b"\0" * 92, "the file ends inside the signature header"),
    (b"\xed\xab\xee\xdb" + b"\0" * 92 + b"\0" * 16, "the signature header does not start with rpm's header magic"),
])
def test_files_that_are_no_readable_package(tmp_path, content, reason):
    path = tmp_path / "falco-0.44.1-x86_64.deb"
    path.write_bytes(content)
    with pytest.raises(PackageInfoError, match=reason.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        package_info(str(path))


def test_an_rpm_without_a_version_tag(tmp_path):
    path = tmp_path / "x.rpm"
    path.write_bytes(rpm_bytes(version=""))
    with pytest.raises(PackageInfoError, match="the rpm header has no NAME or VERSION tag"):
        package_info(str(path))


def lookup(terms, **variables):
    return LookupModule(loader=DataLoader()).run(terms, variables=variables)


@needs_dpkg_deb
def test_the_lookup_returns_one_result_per_file(tmp_path):
    deb = build_deb(tmp_path, "0.44.1")
    rpm = tmp_path / "falco-0.31.1-x86_64.rpm"
    rpm.write_bytes(rpm_bytes())
    assert [(r["format"], r["version"]) for r in lookup([str(deb), str(rpm)])] == [("deb", "0.44.1"), ("rpm", "0.31.1")]


@needs_dpkg_deb
def test_the_lookup_finds_relative_paths_like_copy(tmp_path):
    (tmp_path / "files").mkdir()
    build_deb(tmp_path / "files", "0.44.1", filename="falco.deb")
    assert lookup(["falco.deb"], ansible_search_path=[str(tmp_path)])[0]["version"] == "0.44.1"


def test_the_lookup_names_a_missing_file(tmp_path):
    with pytest.raises(AnsibleLookupError, match="package_info: no package file .*/absent.deb on the controller"):
        lookup([str(tmp_path / "absent.deb")])


def test_the_lookup_names_a_file_that_is_no_package(tmp_path):
    path = tmp_path / "falco-0.44.1-x86_64.deb"
    path.write_text("<html>")
    with pytest.raises(AnsibleLookupError, match="package_info: .*falco-0.44.1-x86_64.deb is not a package file whose "
                                                 "version can be read: neither a .deb"):
        lookup([str(path)])


def test_the_lookup_takes_no_options():
    with pytest.raises(AnsibleLookupError, match="unknown option"):
        LookupModule(loader=DataLoader()).run(["x"], variables={}, version="1")
