# -*- coding: utf-8 -*-
# Copyright: fleetwatch engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only inspection of a host: what the host_inspect module reports, one function per kind of question.

Every function only reads. Commands are run through ``run(argv) -> (rc, stdout, stderr)`` (AnsibleModule's
run_command in the module, a fake in tests), and a missing command or a failing one is an answer ("not installed",
"not running"), never an error: the roles decide what an answer means.
"""

from __future__ import annotations

__metaclass__ = type

import grp
import os
import pwd
import socket
import stat

# os-release IDs (ID, then ID_LIKE) by the os_family the roles know, as Ansible's own fact names them.
OS_FAMILIES = (("Debian", ("debian", "ubuntu")), ("RedHat", ("rhel", "fedora", "centos", "rocky", "almalinux")))

# stat(1)'s %F names, which the differing_paths filter and the roles read.
FILE_TYPES = ((stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symbolic link"), (stat.S_ISSOCK, "socket"),
              (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "character special file"), (stat.S_ISBLK, "block special file"))

# systemctl is-enabled exits 0 for these unit file states (systemctl(1)); is-active for these active states.
ENABLED_STATES = frozenset(("enabled", "enabled-runtime", "alias", "static", "indirect", "generated", "transient"))
ACTIVE_STATES = frozenset(("active", "reloading", "refreshing"))

# Files named like the files module's candidates are being written, not written: never counted as unloaded.
CANDIDATE_PREFIX = ".fleetwatch-"


def os_release(path="/etc/os-release"):
    """The IDs of /etc/os-release (ID first, then ID_LIKE), lower case; empty when it cannot be read."""
    values = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep:
                    values[key] = value.strip().strip("\"'")
    except OSError:
        return []
    return [word.lower() for word in (values.get("ID", "") + " " + values.get("ID_LIKE", "")).split()]


def os_family(ids):
    """The os_family of the first ID the roles know, or '' (the scripts this replaces read os-release the same way)."""
    for word in ids:
        for family, members in OS_FAMILIES:
            if word in members:
                return family
    return ""


def _file_type(mode):
    for test, name in FILE_TYPES:
        if test(mode):
            return name
    return "regular file" if stat.S_ISREG(mode) else "unknown"


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def path_state(path, sha1):
    """The state of one path (not following a last symbolic link), or None when it does not exist (or is a broken
    link). Mode is octal without leading zeros, uid and gid are strings, as stat(1) prints them; files get the SHA-1
    of what they hold (through a link too) from sha1 (the module's AnsibleModule.sha1, as the files module compares)."""
    if not os.path.exists(path):
        return None
    info = os.lstat(path)
    state = {"type": _file_type(info.st_mode), "mode": "%o" % stat.S_IMODE(info.st_mode),
             "user": _name(pwd.getpwuid, info.st_uid), "uid": str(info.st_uid),
             "group": _name(grp.getgrgid, info.st_gid), "gid": str(info.st_gid)}
    if state["type"] == "regular file" and info.st_size == 0:
        state["type"] = "regular empty file"
    if os.path.isfile(path):
        state["sha1"] = sha1(path)
    return state


def path_states(paths, sha1):
    """Path -> state for each path that exists."""
    states = {}
    for path in paths:
        state = path_state(path, sha1)
        if state is not None:
            states[path] = state
    return states


def listing(directory):
    """The regular files in a directory (hidden ones included, links to files too), sorted; [] when it is missing."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, name) for name in names if os.path.isfile(os.path.join(directory, name)))


def unloaded(stamp, paths):
    """The paths (files or directories) holding a file newer than the stamp, or every existing one when there is no
    stamp yet. A directory counts by the files directly in it, not by its own time, which also changes when a
    candidate is written and removed."""
    try:
        since = os.stat(stamp).st_mtime
    except OSError:
        since = None
    found = []
    for path in paths:
        if not os.path.exists(path):
            continue
        if since is None:
            found.append(path)
            continue
        if os.path.isdir(path):
            files = [os.path.join(path, name) for name in os.listdir(path) if not name.startswith(CANDIDATE_PREFIX)]
            files = [name for name in files if os.path.isfile(name) or os.path.islink(name)]
        else:
            files = [path]
        if any(os.lstat(name).st_mtime > since for name in files):
            found.append(path)
    return found


def _lines(text):
    return [line.strip() for line in text.splitlines() if line.strip()]


def unit_states(run, systemctl, units):
    """Unit -> {enabled, active, unit_file_state, active_state}, with one systemctl is-enabled and one is-active call
    for all of them. is-enabled stops at the first unit it cannot find (systemd 252), so the units after it are asked
    one by one. Without systemctl, or where systemd does not run, a unit is neither enabled nor active."""
    file_states, active_states = {}, {}
    if systemctl and units:
        remaining = list(units)
        while remaining:
            _rc, out, _err = run([systemctl, "is-enabled"] + remaining)
            answers = _lines(out)
            file_states.update(zip(remaining, answers))
            if len(answers) >= len(remaining):
                break
            # The next unit is the one systemctl stopped at (or every one, when it could not answer at all).
            if answers:
                file_states[remaining[len(answers)]] = "not-found"
                remaining = remaining[len(answers) + 1:]
            else:
                for unit in remaining[1:]:
                    _rc, out, _err = run([systemctl, "is-enabled", unit])
                    file_states[unit] = (_lines(out) or ["not-found"])[0]
                file_states.setdefault(remaining[0], "not-found")
                break
        _rc, out, _err = run([systemctl, "is-active"] + list(units))
        answers = _lines(out)
        if len(answers) == len(units):
            active_states.update(zip(units, answers))
    return {unit: {"unit_file_state": file_states.get(unit, "not-found"),
                   "enabled": file_states.get(unit) in ENABLED_STATES,
                   "active_state": active_states.get(unit, "unknown"),
                   "active": active_states.get(unit) in ACTIVE_STATES} for unit in units}


def package_versions(run, dpkg_query, rpm, packages):
    """Package -> the versions a wanted version may be written as ([] when not installed): dpkg's full version on
    the Debian family; rpm's VERSION and VERSION-RELEASE of each installed one on the RedHat family."""
    versions = {name: [] for name in packages}
    if not packages:
        return versions
    if dpkg_query:
        # One call; a package dpkg does not know makes it exit 1 after printing the others.
        _rc, out, _err = run([dpkg_query, "-W", "-f", "${Package}\t${db:Status-Status}\t${Version}\n"] + list(packages))
        for line in out.splitlines():
            fields = line.split("\t")
            name = fields[0].split(":")[0]
            if len(fields) == 3 and fields[1] == "installed" and name in versions:
                versions[name].append(fields[2])
    elif rpm:
        _rc, out, _err = run([rpm, "-q", "--qf", "%{NAME}\t%{VERSION}\t%{RELEASE}\n"] + list(packages))
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) == 3 and fields[0] in versions:
                versions[fields[0]] += [fields[1], "%s-%s" % (fields[1], fields[2])]
    return versions


def is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def resolve(names):
    """Name -> its addresses as this host resolves them (getaddrinfo, as getent ahosts), in that order; [] when it
    does not resolve."""
    resolved = {}
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            infos = []
        addresses = []
        for info in infos:
            if info[4][0] not in addresses:
                addresses.append(info[4][0])
        resolved[name] = addresses
    return resolved


def firewall_state(run, ufw, firewall_cmd, zone):
    """ufw's status and the rules added through it, firewalld's state and the rich rules of a zone (its default zone
    when zone is empty), each empty when that firewall is not installed."""
    state = {"ufw": "", "ufw_added": [], "firewalld": "", "rich_rules": []}
    if ufw:
        _rc, out, _err = run([ufw, "status"])
        state["ufw"] = next((line[len("Status: "):].strip() for line in out.splitlines()
                             if line.startswith("Status: ")), "")
        _rc, out, _err = run([ufw, "show", "added"])
        state["ufw_added"] = [line for line in _lines(out) if line.startswith("ufw ")]
    if firewall_cmd:
        rc, out, _err = run([firewall_cmd, "--state"])
        state["firewalld"] = (_lines(out) or ["not running"])[0] if rc == 0 else "not running"
        if rc == 0:
            args = [firewall_cmd, "--permanent"] + (["--zone=" + zone] if zone else []) + ["--list-rich-rules"]
            _rc, out, _err = run(args)
            state["rich_rules"] = _lines(out)
    return state
