#!/bin/sh
# make check entry for the integration suite: it needs root (it starts the
# privilege-separated daemon and creates test accounts); 77 = skipped.
if [ "$(id -u)" != 0 ]; then
	echo "integration tests need root: skipped"
	exit 77
fi
exec /usr/bin/python3 "$MTAD_SRCDIR/tests/integration/run.py"
