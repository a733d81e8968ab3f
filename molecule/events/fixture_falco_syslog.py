"""TEST FIXTURE: write Falco JSON alerts to syslog exactly the way Falco's syslog output does.

Falco (userspace/falco/outputs_syslog.cpp, 0.31 to 0.44) calls ``syslog(priority, "%s", msg)`` without
``openlog()``: glibc then uses the program name (``falco``) as identifier, facility LOG_USER, no pid, and sends the
datagram to /dev/log, which journald owns on systemd hosts (SYSLOG_IDENTIFIER=falco, _TRANSPORT=syslog).
Python's ``syslog`` module is a thin wrapper over the same glibc calls, so this script produces the same journal
entries; ``logger`` would cut lines at 1 KiB by default and ``systemd-cat`` uses the stdout transport instead.
Falco's priority is its own level number (0 emergency ... 7 debug), which is also the syslog level.

Usage: fixture_falco_syslog.py FILE   (one alert per line; the priority is read from each line)
"""

import json
import sys
import syslog

LEVELS = {"emergency": 0, "alert": 1, "critical": 2, "error": 3, "warning": 4, "notice": 5,
          "informational": 6, "info": 6, "debug": 7}


def main(path):
    syslog.openlog("falco", 0, syslog.LOG_USER)
    count = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                continue
            level = LEVELS.get(str(json.loads(line).get("priority", "")).lower(), syslog.LOG_INFO)
            syslog.syslog(level, line)
            count += 1
    print(count)


if __name__ == "__main__":
    main(sys.argv[1])
