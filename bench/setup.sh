#!/bin/sh
# Puts on this machine what bench/bench.py measures, as root, idempotently:
#   - mtad's build and test dependencies (scripts/install-deps.sh), which
#     include Postfix (its smtp-source and smtp-sink drive the loads; its
#     system instance is stopped and disabled there);
#   - OpenSMTPD, unpacked from Debian's .deb into WORK/opensmtpd (the
#     package conflicts with postfix, so it cannot be installed), with the
#     accounts its postinst would create;
#   - mtad's accounts, and mtad built with -O2 and without sanitizers in
#     WORK/build.
# Usage: bench/setup.sh SRC WORK
set -eu
src=$1
work=$2
export DEBIAN_FRONTEND=noninteractive

say() { printf 'setup: %s\n' "$*"; }

say "packages (scripts/install-deps.sh)"
"$src/scripts/install-deps.sh"
# What the unpacked smtpd links against; all in Debian 12, none conflicts.
apt-get install -y -qq --no-install-recommends libevent-2.1-7 libssl3 \
	libdb5.3 libpam0g zlib1g libcrypt1 >/dev/null
# The system Postfix must not answer on any port while we measure.
postfix stop >/dev/null 2>&1 || true

say "accounts"
"$src/scripts/create-users.sh"
for u in opensmtpd opensmtpq; do
	getent group "$u" >/dev/null || groupadd --system "$u"
	getent passwd "$u" >/dev/null ||
		useradd --system --gid "$u" --home-dir /var/lib/opensmtpd/empty \
			--no-create-home --shell /usr/sbin/nologin "$u"
done
mkdir -p /var/lib/opensmtpd/empty

say "OpenSMTPD (unpacked in $work/opensmtpd)"
mkdir -p "$work"
version=$(apt-cache policy opensmtpd | sed -n 's/^ *Candidate: //p')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
	echo "setup: apt knows no opensmtpd package" >&2
	exit 1
fi
if [ "$(cat "$work/opensmtpd/VERSION" 2>/dev/null)" != "$version" ]; then
	rm -rf "$work/opensmtpd" "$work/deb"
	mkdir -p "$work/deb"
	(cd "$work/deb" && apt-get download -q "opensmtpd=$version" >/dev/null)
	dpkg -x "$work"/deb/opensmtpd_*.deb "$work/opensmtpd"
	echo "$version" >"$work/opensmtpd/VERSION"
	rm -rf "$work/deb"
fi
if ldd "$work/opensmtpd/usr/sbin/smtpd" | grep -q 'not found'; then
	echo "setup: smtpd misses libraries:" >&2
	ldd "$work/opensmtpd/usr/sbin/smtpd" | grep 'not found' >&2
	exit 1
fi

say "mtad (-O2, no sanitizers, in $work/build)"
if [ ! -x "$src/configure" ]; then
	(cd "$src" && autoreconf -fi >/dev/null 2>&1)
fi
mkdir -p "$work/build"
cd "$work/build"
if [ ! -f Makefile ] || [ "$src/configure" -nt Makefile ]; then
	"$src/configure" CFLAGS="-O2 -g" >configure.log 2>&1 || {
		tail -20 configure.log >&2
		exit 1
	}
fi
make -j"$(nproc)" >make.log 2>&1 || {
	tail -30 make.log >&2
	exit 1
}
# Which source the binary was built from, for the report.
git -C "$src" describe --always --dirty >version 2>/dev/null ||
	echo "source $src, not a git checkout" >version
say "done"
