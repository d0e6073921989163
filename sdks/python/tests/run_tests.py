"""Runs the unit tests (`unit`) or the scenario (`scenario`) and prints `RESULT passed failed skipped` last."""

import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE)]


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 else "unit"
    loader = unittest.TestLoader()
    if which == "scenario":
        suite = loader.loadTestsFromName("test_scenario")
    else:
        suite = unittest.TestSuite(t for t in loader.discover(str(HERE), pattern="test_*.py", top_level_dir=str(HERE))
                                   if "test_scenario" not in str(t))
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = {str(t).split(" ")[0] + str(t).split(" ")[1] for t, _ in result.failures + result.errors}
    skipped = len(result.skipped)
    passed = result.testsRun - len(failed) - skipped
    print("RESULT %d %d %d" % (passed, len(failed), skipped))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
