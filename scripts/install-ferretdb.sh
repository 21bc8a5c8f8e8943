#!/bin/sh
# Installs FerretDB v1.24.2, the MongoDB-compatible server the store tests
# run against (SQLite backend, loopback only, telemetry off: see
# tests/integration/ferretdb.py).  Run as root.  Prints the binary's path
# on its last line.
#
# The binary is cached in $MTAD_FERRETDB_CACHE (default
# /var/cache/mtad-test/ferretdb-v1.24.2) and reused while its --version
# says v1.24.2.  Otherwise it is built with Go: `go install` first; when
# the module proxy refuses the module's version list (it does, for this
# module: "loading deprecation ... 403 Forbidden"), the module itself is
# downloaded with `go mod download` and built from a writable copy.  The
# module zip lacks build/version/version.txt, without which the binary
# panics at start: it is written here.
set -eu

VERSION=v1.24.2
MODULE=github.com/FerretDB/FerretDB
CACHE=${MTAD_FERRETDB_CACHE:-/var/cache/mtad-test/ferretdb-$VERSION}
BIN=$CACHE/ferretdb

say() { echo "install-ferretdb: $*" >&2; }

is_good() {
	[ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "version: $VERSION\$"
}

if is_good "$BIN"; then
	echo "$BIN"
	exit 0
fi

# Go: the machine's own toolchain (/usr/local/go) before Debian's, which
# is too old for FerretDB (it needs Go >= 1.21).
PATH=/usr/local/go/bin:$PATH
export PATH
if ! command -v go >/dev/null 2>&1; then
	say "no Go toolchain: installing golang-go"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends golang-go >/dev/null
fi
say "building FerretDB $VERSION with $(go version)"

mkdir -p "$CACHE"
work=$(mktemp -d /tmp/ferretdb-build.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
export GOPATH="${GOPATH:-$work/gopath}"
export GOFLAGS="${GOFLAGS:-} -modcacherw"
export GOTOOLCHAIN=local GOTELEMETRY=off

if GOBIN="$work/bin" go install "$MODULE/cmd/ferretdb@$VERSION" \
    2>"$work/install.err" && is_good "$work/bin/ferretdb"; then
	cp "$work/bin/ferretdb" "$BIN.new"
else
	say "go install failed:"
	sed 's/^/    /' "$work/install.err" >&2
	say "building from the downloaded module instead"
	go mod download -json "$MODULE@$VERSION" >"$work/mod.json"
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' "$work/mod.json")
	[ -n "$dir" ] && [ -d "$dir" ] || {
		say "go mod download gave no module directory:"
		cat "$work/mod.json" >&2
		exit 1
	}
	cp -r "$dir" "$work/src"
	chmod -R u+w "$work/src"
	echo "$VERSION" >"$work/src/build/version/version.txt"
	(cd "$work/src" && go build -o "$BIN.new" ./cmd/ferretdb)
fi
mv -f "$BIN.new" "$BIN"
is_good "$BIN" || {
	say "$BIN does not report version $VERSION"
	exit 1
}
echo "$BIN"
