#!/bin/sh
# Creates the unprivileged accounts mtad's processes run as, and the group
# whose members may use mtactl.  Idempotent; run as root.
set -e
for u in mtad-smtp mtad-queue mtad-deliver mtad-policy; do
	if ! getent passwd "$u" >/dev/null; then
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --user-group "$u"
	fi
done
getent group mtactl >/dev/null || groupadd --system mtactl
