#!/usr/bin/python3
"""Runs the mtad integration suite.

    MTAD_BUILDDIR=... MTAD_SRCDIR=... \
        /usr/bin/python3 tests/integration/run.py [-k PATTERN]...

Prints one line per test and ends with
    integration: N passed, N failed[, N skipped]
Exit status 0 only if nothing failed.  Must run as root.
"""

import argparse
import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True      # nothing written into the source tree

import mtadtest  # noqa: E402


class Result(unittest.TestResult):
    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.passed = 0
        self.failed_tests = []
        self.skipped_n = 0
        self.t0 = 0.0
        self.current = None

    def _name(self, test):
        return test.id().replace("__main__.", "")

    def _line(self, status, test, extra=""):
        # class and module fixtures (setUpClass...) have no start time
        dt = (" (%.1fs)" % (time.monotonic() - self.t0)
              if test is self.current else "")
        self.stream.write("%-4s %s%s%s\n" % (status, self._name(test), dt,
                                             extra))
        self.stream.flush()

    def startTest(self, test):
        super().startTest(test)
        del mtadtest.CURRENT_DAEMONS[:]
        self.t0 = time.monotonic()
        self.current = test

    def stopTest(self, test):
        super().stopTest(test)
        self.current = None

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line("PASS", test)

    def _fail(self, kind, test, err):
        self.failed_tests.append(test)
        self._line("FAIL", test, " [%s]" % kind)
        self.stream.write(self._exc_info_to_string(err, test))
        for d in list(mtadtest.CURRENT_DAEMONS):
            self.stream.write("---- log of mtad in %s (last lines) ----\n%s\n"
                              % (d.dir, d.log_tail(30)))
        self.stream.write("\n")
        self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail("failure", test, err)

    def addError(self, test, err):
        super().addError(test, err)
        # Errors of setUpClass/tearDownClass come as _ErrorHolder objects.
        self._fail("error", test, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.skipped_n += 1
        self._line("SKIP", test, " (%s)" % reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.skipped_n += 1
        self._line("XFAIL", test)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed_tests.append(test)
        self._line("FAIL", test, " [unexpected success]")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = ("failure" if issubclass(err[0], test.failureException)
                    else "error")
            self._fail(kind, subtest, err)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-k", action="append", default=[],
                    help="only tests whose name contains this (repeatable)")
    args = ap.parse_args()

    loader = unittest.TestLoader()
    if args.k:
        loader.testNamePatterns = ["*%s*" % k for k in args.k]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)

    # SIGTERM/SIGHUP to the runner: still stop every daemon (finally below)
    def terminate(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    t0 = time.monotonic()
    result = Result(sys.stdout)
    try:
        mtadtest.suite_setup()
        suite.run(result)
    except unittest.SkipTest as e:
        print("integration: cannot run: %s" % e)
        print("integration: 0 passed, 1 failed")
        return 1
    finally:
        mtadtest.suite_teardown()
    # A test that failed in several subtests counts once.
    failed = len({id(t) if not hasattr(t, "test_case") else id(t.test_case)
                  for t in result.failed_tests})
    summary = "integration: %d passed, %d failed" % (result.passed, failed)
    if result.skipped_n:
        summary += ", %d skipped" % result.skipped_n
    print("(%.0fs)" % (time.monotonic() - t0))
    print(summary)
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
