"""Check that the lab's Prometheus scrapes every host the inventory says it should, with the host's labels.

For each lab host: its node-exporter target, and for each host of the Falco group its Falco target, must be up in
the monitoring host's Prometheus with labels host=<inventory name> and cloud=<the host's `cloud`>. Waits for the
first scrapes (up to --timeout seconds), prints one line per target, exits 1 when any is missing or down.
  python lab/targets_up.py --inventory inventories/lab/hosts.yml --prometheus http://ADDRESS:9090
"""

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request

from fleet import group_hosts, inventory, inventory_hosts


def up_targets(prometheus):
    """{(job, host): (cloud, value)} for every up series Prometheus has now."""
    url = "%s/api/v1/query?%s" % (prometheus, urllib.parse.urlencode({"query": "up"}))
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.load(response)["data"]["result"]
    return {(r["metric"].get("job"), r["metric"].get("host")): (r["metric"].get("cloud"), r["value"][1])
            for r in result}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--prometheus", required=True, help="the monitoring host's Prometheus URL")
    parser.add_argument("--falco-group", default="falco")
    parser.add_argument("--timeout", type=int, default=120)
    args = parser.parse_args()
    data = inventory(args.inventory)
    clouds = {name: data["_meta"]["hostvars"][name].get("cloud") for name in inventory_hosts(data)}
    wanted = [("node-exporter", name) for name in sorted(clouds)]
    wanted += [("falco", name) for name in sorted(group_hosts(data, args.falco_group) & set(clouds))]
    deadline = time.monotonic() + args.timeout
    while True:
        found = up_targets(args.prometheus)
        missing = [w for w in wanted if found.get(w) != (clouds[w[1]], "1")]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(5)
    for job, host in wanted:
        cloud, value = found.get((job, host), (None, None))
        state = "up" if value == "1" else "down" if value == "0" else "missing"
        print("%-14s %-14s cloud=%-8s %s" % (job, host, cloud, state))
    if missing:
        sys.exit("not scraped as the inventory says: %s" % ", ".join("%s on %s" % m for m in missing))
    print("every target is up with its host and cloud labels (%d targets)" % len(wanted))


if __name__ == "__main__":
    main()
