#!/bin/sh
# The test command: from a fresh Debian 12 machine, as root, installs what is
# needed, builds mtad (unit tests with ASan/UBSan), runs every test.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root" >&2; exit 1; }

scripts/install-deps.sh
scripts/create-users.sh
# The store tests run FerretDB; the path is handed to them.
MTAD_FERRETDB=$(scripts/install-ferretdb.sh | tail -n 1)
export MTAD_FERRETDB
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
rm -rf build-test
mkdir build-test
cd build-test
../configure --enable-sanitizers >/dev/null
make -j"$(nproc)" >/dev/null
status=0
make -j"$(nproc)" check || status=$?

# Show every suite's own summary, then one line for the whole run.
for log in tests/unit/*.log tests/integration/*.log; do
	[ -f "$log" ] || continue
	echo "== $log"
	grep -E '^[0-9]+%: Checks:|^integration:|^(FAIL|ERROR)' "$log" || true
done
passed=0 failed=0
for log in tests/unit/*.log; do
	[ -f "$log" ] || continue
	line=$(grep -E '^[0-9]+%: Checks:' "$log" | tail -n 1)
	[ -n "$line" ] || { failed=$((failed + 1)); continue; }
	n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
	f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
	e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
	passed=$((passed + n - f - e))
	failed=$((failed + f + e))
done
line=$(grep -hE '^integration: [0-9]+ passed' tests/integration/*.log 2>/dev/null | tail -n 1 || true)
if [ -n "$line" ]; then
	passed=$((passed + $(echo "$line" | sed -E 's/^integration: ([0-9]+) passed.*/\1/')))
	failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
else
	echo "integration suite produced no summary" >&2
	failed=$((failed + 1))
fi
[ "$failed" -eq 0 ] || status=1
echo "all: $passed passed, $failed failed"
exit $status
