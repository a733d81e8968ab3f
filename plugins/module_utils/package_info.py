# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name and version of a .deb or .rpm package file, read from the package itself in pure Python.

Mirrors rename package files, so a file name says nothing reliable about what is inside. This reads what dpkg and
rpm read: for a .deb, the ``control`` file in the ``control.tar.*`` member of the ar archive; for an .rpm, the NAME,
VERSION, RELEASE, EPOCH and ARCH tags of the header that follows the lead and the signature header. Only the first
kilobytes of either are read, never the payload. No dpkg or rpm tools are needed, so it runs on any controller.
"""

from __future__ import annotations

__metaclass__ = type

import gzip
import io
import lzma
import struct
import tarfile

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
RPM_LEAD_MAGIC = b"\xed\xab\xee\xdb"
RPM_LEAD_SIZE = 96
RPM_HEADER_MAGIC = b"\x8e\xad\xe8\x01"
# Header tags (rpm's rpmtag.h) and the data types they are stored as.
RPM_TAGS = {1000: "name", 1001: "version", 1002: "release", 1003: "epoch", 1022: "architecture"}
RPM_STRING, RPM_INT32, RPM_I18NSTRING = 6, 4, 9
# A control member or a header bigger than this is not a package's metadata; refuse it rather than read it all.
MAX_METADATA_BYTES = 64 * 1024 * 1024


class PackageInfoError(Exception):
    """The file is not a package this module can read; the message says why."""


def upstream_version(version):
    """The upstream part of a Debian version: no epoch ("1:") and no Debian revision ("-1")."""
    version = version.split(":", 1)[1] if ":" in version else version
    return version.rsplit("-", 1)[0] if "-" in version else version


def _read_exact(handle, size, what):
    data = handle.read(size)
    if len(data) != size:
        raise PackageInfoError("the file ends inside %s (truncated download?)" % what)
    return data


def _decompress_zstd(data):
    """zstd is in the standard library from Python 3.14; before, the zstandard module provides it."""
    try:
        from compression import zstd  # pylint: disable=import-error

        return zstd.decompress(data)
    except ImportError:
        pass
    try:
        import zstandard  # pylint: disable=import-error
    except ImportError:
        raise PackageInfoError("the control.tar.zst is zstd-compressed, which this controller's Python cannot read: "
                               "install the zstandard module (pip install zstandard) or use Python 3.14 or newer")
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    return reader.read(MAX_METADATA_BYTES + 1)


def _control_tar(member_name, data):
    if member_name == "control.tar":
        return data
    if member_name == "control.tar.gz":
        return gzip.decompress(data)
    if member_name == "control.tar.xz":
        return lzma.decompress(data)
    if member_name == "control.tar.zst":
        return _decompress_zstd(data)
    raise PackageInfoError("the control member %s uses a compression dpkg does not write (gz, xz, zst or none)"
                           % member_name)


def _parse_control(text):
    """The fields of a Debian control paragraph (continuation lines folded)."""
    fields = {}
    key = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
        elif not line.strip():
            break
    return fields


def read_deb(handle):
    if _read_exact(handle, len(AR_MAGIC), "the ar signature") != AR_MAGIC:
        raise PackageInfoError("not an ar archive, as a .deb is")
    while True:
        header = handle.read(AR_HEADER)
        if not header:
            raise PackageInfoError("the ar archive has no control.tar member, so it is no .deb")
        if len(header) != AR_HEADER or header[58:60] != b"`\n":
            raise PackageInfoError("the ar archive is damaged (a member header is cut short or malformed)")
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise PackageInfoError("the ar archive is damaged (member %s has no size)" % name)
        if name.startswith("control.tar"):
            if size > MAX_METADATA_BYTES:
                raise PackageInfoError("the %s member is %d bytes, too big for package metadata" % (name, size))
            try:
                tar_bytes = _control_tar(name, _read_exact(handle, size, "the %s member" % name))
                with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
                    member = next((m for m in tar.getmembers() if m.name in ("./control", "control") and m.isfile()),
                                  None)
                    if member is None:
                        raise PackageInfoError("the %s holds no control file" % name)
                    text = tar.extractfile(member).read().decode("utf-8", "replace")
            except (OSError, EOFError, lzma.LZMAError, tarfile.TarError) as error:
                raise PackageInfoError("the %s member cannot be unpacked (%s)" % (name, error))
            fields = _parse_control(text)
            if not fields.get("package") or not fields.get("version"):
                raise PackageInfoError("the control file has no Package or Version field")
            return {"format": "deb", "name": fields["package"], "version": upstream_version(fields["version"]),
                    "full_version": fields["version"], "architecture": fields.get("architecture", "")}
        handle.seek(size + (size % 2), io.SEEK_CUR)  # members start on even offsets


def _rpm_header(handle, what):
    intro = _read_exact(handle, 16, "the %s" % what)
    if intro[:4] != RPM_HEADER_MAGIC:
        raise PackageInfoError("the %s does not start with rpm's header magic" % what)
    entries, store_size = struct.unpack(">II", intro[8:16])
    if entries * 16 + store_size > MAX_METADATA_BYTES:
        raise PackageInfoError("the %s claims %d entries and %d bytes, too big for package metadata" % (
            what, entries, store_size))
    index = _read_exact(handle, entries * 16, "the %s index" % what)
    store = _read_exact(handle, store_size, "the %s data" % what)
    return index, store, entries, store_size


def read_rpm(handle):
    lead = _read_exact(handle, RPM_LEAD_SIZE, "the rpm lead")
    if lead[:4] != RPM_LEAD_MAGIC:
        raise PackageInfoError("no rpm lead magic at its start, as an .rpm has")
    _index, _store, entries, store_size = _rpm_header(handle, "signature header")
    # The signature header is padded so that the main header starts on an 8-byte boundary.
    handle.seek((8 - (16 + entries * 16 + store_size) % 8) % 8, io.SEEK_CUR)
    index, store, entries, _size = _rpm_header(handle, "main header")
    found = {}
    for number in range(entries):
        tag, kind, offset, count = struct.unpack(">iiii", index[number * 16:number * 16 + 16])
        if tag not in RPM_TAGS or not 0 <= offset < len(store):
            continue
        if kind in (RPM_STRING, RPM_I18NSTRING):
            end = store.find(b"\0", offset)
            found[RPM_TAGS[tag]] = store[offset:end if end >= 0 else len(store)].decode("utf-8", "replace")
        elif kind == RPM_INT32 and count >= 1 and offset + 4 <= len(store):
            found[RPM_TAGS[tag]] = "%d" % struct.unpack(">i", store[offset:offset + 4])[0]
    if not found.get("name") or not found.get("version"):
        raise PackageInfoError("the rpm header has no NAME or VERSION tag")
    full = found["version"] + ("-" + found["release"] if found.get("release") else "")
    if found.get("epoch"):
        full = found["epoch"] + ":" + full
    return {"format": "rpm", "name": found["name"], "version": found["version"], "full_version": full,
            "architecture": found.get("architecture", "")}


def package_info(path):
    """{format, name, version, full_version, architecture} of the .deb or .rpm at path (by content, not name).

    ``version`` is the upstream version ("0.44.1" for a deb's "1:0.44.1-2" or an rpm's VERSION tag), comparable with
    a release number; ``full_version`` is what the package states, epoch and revision or release included.
    """
    try:
        with open(path, "rb") as handle:
            start = handle.read(8)
            handle.seek(0)
            if start == AR_MAGIC:
                return read_deb(handle)
            if start[:4] == RPM_LEAD_MAGIC:
                return read_rpm(handle)
    except (IOError, OSError) as error:
        raise PackageInfoError("the file cannot be read (%s)" % (error.strerror or error))
    raise PackageInfoError("neither a .deb (an ar archive) nor an .rpm: it starts with %r" % (start,))
