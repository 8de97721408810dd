"""check(cond, msg): count and report a failed check without stopping the
test (the Python side of expect.h); `checks.failures` is the count and
`finish(seconds)` prints the verdict and exits with it. Shared by
test_search.py, test_slurm.py and test_study.py."""
import sys

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg, flush=True)
    return cond


def finish(seconds=None):
    took = f" ({seconds:.0f} s)" if seconds is not None else ""
    print(f"{'FAILED' if failures else 'PASSED'}: {failures} failed checks{took}")
    sys.exit(1 if failures else 0)
