#!/bin/sh
# Installs what building and testing mtad needs on Debian 12 (run as root).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential autoconf automake libtool pkg-config bison \
	libevent-dev libssl-dev libbsd-dev libseccomp-dev libcrypt-dev check \
	python3 swaks procps passwd ca-certificates >/dev/null
