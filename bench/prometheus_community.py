"""prometheus.prometheus's node_exporter role, made runnable offline for node_exporter_bench.py --prometheus-community.

Its install downloads a release tarball and sha256sums.txt from GitHub on the controller (ansible.builtin.uri,
delegated to localhost). Here the tarball holds Debian's node_exporter binary (package prometheus-node-exporter,
fetched with `apt-get download`, the version of the package) in the release's layout, and both files are served on
127.0.0.1 only. The collection comes from a git clone of prometheus-community/ansible (`git archive HEAD`).
"""

import contextlib
import functools
import hashlib
import http.server
import subprocess
import tarfile
import threading
from pathlib import Path


def install_collection(gitdir, collections_dir):
    """Unpack the clone's HEAD as ansible_collections/prometheus/prometheus; return its galaxy.yml version."""
    dest = Path(collections_dir, "ansible_collections", "prometheus", "prometheus")
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(gitdir), "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    galaxy = (dest / "galaxy.yml").read_text()
    return next(line.split(":", 1)[1].strip() for line in galaxy.splitlines() if line.startswith("version:"))


def debian_node_exporter(workdir):
    """Debian's node_exporter binary and its versions: (path, upstream version, Debian version)."""
    subprocess.run(["apt-get", "download", "-q", "prometheus-node-exporter"], cwd=workdir, check=True,
                   capture_output=True)
    deb = next(Path(workdir).glob("prometheus-node-exporter_*.deb"))
    debian_version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                                    check=True).stdout.strip()
    subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(workdir, "deb"))], check=True)
    upstream = debian_version.split(":")[-1].rsplit("-", 1)[0]
    return Path(workdir, "deb", "usr", "bin", "prometheus-node-exporter"), upstream, debian_version


def release_files(directory, binary, version):
    """Write node_exporter-VERSION.linux-amd64.tar.gz and sha256sums.txt as a GitHub release holds them."""
    name = "node_exporter-%s.linux-amd64" % version
    tarball = Path(directory, name + ".tar.gz")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(binary, arcname="%s/node_exporter" % name)
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    Path(directory, "sha256sums.txt").write_text("%s  %s\n" % (digest, tarball.name))
    return tarball.name


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory without a log line per request (the role's re-run asks with If-Modified-Since)."""

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


@contextlib.contextmanager
def serve(directory):
    """Serve DIRECTORY on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
