"""Evaluate every panel query of the Falco fleet dashboard against a live Prometheus (the lab's, fed by real Falco).

Each query runs twice, as Grafana would: with every host, cloud and rule selected, and with only the given host
selected.
A panel that returns nothing for a host that has events is reported and makes the exit status 1. Panels that read
falcosidekick's metrics are listed as skipped when no falcosidekick target is up (its image cannot be had here).
The annotation queries (rules and configuration changes) run over the same window and list the changes they mark; a
lab whose files did not change in that window rightly has none, so only a query Prometheus refuses fails the run.
The Loki panel's LogQL is not run (no Loki in the lab).

Usage: lab/dashboards.py --prometheus http://ADDRESS:9090 --host lab-agent-1 [--dashboard FILE]
"""
import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import promlab  # noqa: E402  (Grafana's variable interpolation and panel walk, shared with the tests)

DEFAULT_DASHBOARD = ROOT / "roles" / "grafana" / "files" / "dashboards" / "falco-fleet.json"
SIDEKICK = "falcosecurity_falcosidekick_"


# Every dashboard variable at "All".
EVERYTHING = {"host": ".*", "cloud": ".*", "rule": ".*"}


def query(prometheus, expr, instant, seconds=600, step=15):
    """The result of an instant query, or of a range query over the last `seconds`."""
    if instant:
        path, params = "/api/v1/query", {"query": expr}
    else:
        end = time.time()
        path, params = "/api/v1/query_range", {"query": expr, "start": end - seconds, "end": end, "step": step}
    with urllib.request.urlopen(prometheus + path + "?" + urllib.parse.urlencode(params), timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError("%s: %s" % (expr, body))
    return body["data"]["result"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://10.88.0.5:9090")
    parser.add_argument("--host", required=True, help="a host that has had Falco events in the last 10 minutes")
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD)
    args = parser.parse_args(argv)
    prometheus = args.prometheus.rstrip("/")
    dashboard = json.loads(args.dashboard.read_text())
    sidekick_up = query(prometheus, 'up{job=~".*sidekick.*"} == 1', instant=True)

    empty = []
    print("%-44s %-5s %8s %8s  %s" % ("PANEL", "REF", "ALL", args.host, "HOSTS IN THE HOST'S ANSWER"))
    for panel, target in promlab.dashboard_queries(dashboard):
        name = "%s/%s" % (panel["title"], target.get("refId", "?"))
        if SIDEKICK in target["expr"] and not sidekick_up:
            print("%-44s %-5s %8s %8s  (no falcosidekick target up)"
                  % (panel["title"][:44], target.get("refId", "?"), "skipped", "skipped"))
            continue
        counts = []
        hosts = set()
        for selection in (dict(EVERYTHING), dict(EVERYTHING, host=args.host)):
            result = query(prometheus, promlab.interpolate(target["expr"], selection), target.get("instant", False))
            counts.append(len(result))
            if selection["host"] == args.host:
                hosts = {series["metric"].get("host", "-") for series in result}
        print("%-44s %-5s %8d %8d  %s" % (panel["title"][:44], target.get("refId", "?"), counts[0], counts[1],
                                          ",".join(sorted(hosts)) or "-"))
        if 0 in counts or hosts - {args.host, "-"}:
            empty.append(name)
    print("\n%-44s %s" % ("ANNOTATION", "CHANGES MARKED IN THE LAST 10 MINUTES (host: file)"))
    for annotation in promlab.dashboard_annotations(dashboard):
        result = query(prometheus, promlab.interpolate(annotation["expr"], EVERYTHING), instant=False)
        marked = sorted("%s: %s" % (r["metric"].get("host", "-"), r["metric"].get("file_name", "-")) for r in result)
        print("%-44s %s" % (annotation["name"][:44], ", ".join(marked) or "none"))
    if empty:
        print("\nPanels with no data (or another host's data) for %s: %s" % (args.host, ", ".join(empty)))
        return 1
    print("\nEvery panel returned data, for the whole fleet and for %s alone." % args.host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
