#!/bin/sh
# Try mtad: from a fresh Debian 12 machine, as root, installs what is needed,
# builds, and runs mtad in the foreground on its embedded defaults (listens on
# 127.0.0.1 port 2525, spool in /var/spool/mtad, delivery to /var/mail/USER
# for local users, through /etc/aliases when it exists).  ^C stops it.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "$(id -u)" = 0 ] || { echo "scripts/run.sh: run as root" >&2; exit 1; }

scripts/install-deps.sh
scripts/create-users.sh
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p build
cd build
[ -f Makefile ] || ../configure >/dev/null
make -j"$(nproc)" >/dev/null
echo "mtad: listening on 127.0.0.1 port 2525; try:"
echo "  swaks --server 127.0.0.1:2525 --to root@localhost"
echo "  $top/build/mtactl/mtactl show queue"
if [ -e /etc/mtad/mtad.conf ]; then
	exec ./mtad -d -f /etc/mtad/mtad.conf
fi
exec ./mtad -d
