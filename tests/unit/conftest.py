"""Terminal summary of the adversarial input suite (tests/unit/test_adversarial_inputs.py)."""

import sys


def pytest_terminal_summary(terminalreporter):
    module = sys.modules.get("test_adversarial_inputs")
    results = getattr(module, "RESULTS", None)
    if not results:
        return
    behaved = [r for r in results if r[2]]
    terminalreporter.section("adversarial inputs")
    terminalreporter.write_line("adversarial inputs: %d cases tried, %d behaved" % (len(results), len(behaved)))
    for role, case, ok, detail in results:
        if not ok:
            terminalreporter.write_line("  MISBEHAVED %s / %s: %s" % (role, case, detail.splitlines()[0][:200]))
