#!/usr/bin/env bash
# Install what tests/test_web.py needs: Debian's Chromium (/usr/bin/chromium), driven
# headless by the Python playwright package (from the test extra) through
# executable_path. No browser is ever downloaded by playwright.
#
# Quiet and quick (no apt-get update) when Chromium is already installed.
# Prints apt's output only if the installation fails. Needs root or sudo; fails soft:
# .ci/run goes on, and tests/test_web.py skips saying why.
set -euo pipefail

PKGS=(chromium)

installed() {
    dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed' && [ -x /usr/bin/chromium ]
}

installed && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser-deps: apt-get not found; install Chromium by hand (tests/test_web.py looks for /usr/bin/chromium or \$GLASSLOG_CHROMIUM)" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "browser-deps: need root (or sudo) to install ${PKGS[*]}" >&2
        exit 1
    fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PKGS[@]}" || \
       { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PKGS[@]}"; }; } >"$log" 2>&1; then
    echo "browser-deps: installing ${PKGS[*]} failed:" >&2
    cat "$log" >&2
    exit 1
fi

if ! installed; then
    echo "browser-deps: ${PKGS[*]} installed, but /usr/bin/chromium is still missing" >&2
    exit 1
fi
