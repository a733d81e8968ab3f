"""TEST FIXTURE, not falco-exporter: serves a falco-exporter-style /metrics (the counter falco_events with its labels,
falco-exporter 0.8.x) on the address given, so the TLS proxy of role falco_exporter has an upstream to forward to."""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

BODY = b"""# HELP falco_events
# TYPE falco_events counter
falco_events{hostname="xp-agent",k8s_ns_name="",k8s_pod_name="",priority="4",rule="Fixture Write below etc",\
source="syscall",tags=",filesystem,fixture,"} 3
falco_events{hostname="xp-agent",k8s_ns_name="",k8s_pod_name="",priority="5",rule="Fixture Terminal shell in container",\
source="syscall",tags=",container,fixture,shell,"} 1
"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/metrics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


if __name__ == "__main__":
    HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
