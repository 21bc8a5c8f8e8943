#!/bin/sh
# Installs what building and testing mtad needs on Debian 12 (run as root).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential autoconf automake libtool pkg-config bison \
	libevent-dev libssl-dev libbsd-dev libseccomp-dev libcrypt-dev check \
	python3 swaks procps passwd ca-certificates >/dev/null

# Remote delivery: libunbound; its tests run a DNS server (dnsmasq), SMTP
# peers (Postfix's smtp-sink, python3-aiosmtpd) and make a CA (openssl).
# Those packages start services of their own: stopped and disabled, so that
# nothing but the tests listens (Postfix would take port 25).
apt-get install -y -qq --no-install-recommends \
	libunbound-dev dnsmasq python3-aiosmtpd postfix openssl >/dev/null
for svc in postfix dnsmasq; do
	systemctl disable --now "$svc" >/dev/null 2>&1 || true
	service "$svc" stop >/dev/null 2>&1 || true
done
postfix stop >/dev/null 2>&1 || true

# The MongoDB store (libmongoc, GMime) and TLS/AUTH tests (testssl.sh);
# the store tests read back with pymongo and run FerretDB, installed by
# scripts/install-ferretdb.sh with Go (golang-go when no Go is present).
apt-get install -y -qq --no-install-recommends \
	libmongoc-dev libbson-dev libgmime-3.0-dev testssl.sh \
	python3-pymongo >/dev/null
