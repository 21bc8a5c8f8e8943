#!/bin/sh
# The store benchmark (see bench.py): store deliveries per second beside
# the raw libmongoc insert rate of the same documents.  As root, after a
# build:
#
#	MTAD_BUILDDIR=/path/to/build bench/store/run.sh [bench.py options]
#
# e.g. --messages 5000 --rcpts 3 --size 20000, or --uri
# mongodb://127.0.0.1:27017/ for a real MongoDB on this machine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
: "${MTAD_BUILDDIR:=$top}"
export MTAD_BUILDDIR MTAD_SRCDIR="$top"

[ "$(id -u)" = 0 ] || { echo "bench/store/run.sh: run as root" >&2; exit 1; }
[ -x "$MTAD_BUILDDIR/mtad" ] || {
	echo "bench/store/run.sh: no mtad in $MTAD_BUILDDIR (set MTAD_BUILDDIR)" >&2
	exit 1
}
case " $* " in
*" --uri"*) ;;
*)	MTAD_FERRETDB=${MTAD_FERRETDB:-$("$top/scripts/install-ferretdb.sh" | tail -n 1)}
	export MTAD_FERRETDB ;;
esac

out=$(mktemp -d /tmp/mtad-bench-store.XXXXXX)
trap 'rm -rf "$out"' EXIT INT TERM
cc -O2 -Wall -Wextra -o "$out/rawinsert" "$here/rawinsert.c" \
	$(pkg-config --cflags --libs libmongoc-1.0)
/usr/bin/python3 "$here/bench.py" --rawinsert "$out/rawinsert" "$@"
