#!/bin/sh
# Before FerretDB is built: when Go is missing or older than its go.mod asks,
# say so in one line, with where to get it, rather than fail with a compiler error.
# Usage: tools/require_go.sh tools/ferretdb/go.mod
set -eu
need=$(sed -n 's/^go \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' "$1")
get="install Go $need or newer from https://go.dev/dl/ and put its bin/ first on PATH (Debian 12's golang-go is 1.19)"
if ! command -v go >/dev/null 2>&1; then
    echo "make setup needs Go to build FerretDB, and there is no go on PATH: $get" >&2
    exit 1
fi
version=$(go version 2>/dev/null | sed -n 's/^go version go\([^ ]*\).*/\1/p')
have=$(echo "$version" | sed -n 's/^\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
# Major and minor compared as numbers: 1.100 is newer than 1.24.
if [ -z "$have" ] || [ "${have%%.*}" -lt "${need%%.*}" ] ||
    { [ "${have%%.*}" -eq "${need%%.*}" ] && [ "${have#*.}" -lt "${need#*.}" ]; }; then
    echo "make setup needs Go $need or newer to build FerretDB, and $(command -v go) is ${version:-of an unknown version}: $get" >&2
    exit 1
fi
