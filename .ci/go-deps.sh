#!/usr/bin/env bash
# Install what tests/test_go_interop.py needs: the Go toolchain and the source
# of golang.org/x/mod (sumdb/note, sumdb/tlog), from Debian's packages:
#   golang-go                -> /usr/bin/go
#   golang-golang-x-mod-dev  -> /usr/share/gocode/src/golang.org/x/mod
# The Go checker is then built offline (GOPROXY=off); no module proxy is used.
#
# Quiet and quick (no apt-get update) when both are already installed.
# Prints apt's output only if the installation fails. Needs root or sudo.
set -euo pipefail

PKGS=(golang-go golang-golang-x-mod-dev)
XMOD=/usr/share/gocode/src/golang.org/x/mod

installed() {
    local p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
    done
    command -v go >/dev/null 2>&1 && [ -f "$XMOD/sumdb/tlog/tlog.go" ] && [ -f "$XMOD/sumdb/note/note.go" ]
}

installed && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "go-deps: apt-get not found; install ${PKGS[*]} (or Go plus golang.org/x/mod source, see GLASSLOG_XMOD_DIR) by hand" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "go-deps: need root (or sudo) to install ${PKGS[*]}" >&2
        exit 1
    fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PKGS[@]}"; } >"$log" 2>&1; then
    echo "go-deps: installing ${PKGS[*]} failed:" >&2
    cat "$log" >&2
    exit 1
fi

if ! installed; then
    echo "go-deps: ${PKGS[*]} installed, but go or $XMOD/sumdb is still missing" >&2
    exit 1
fi
