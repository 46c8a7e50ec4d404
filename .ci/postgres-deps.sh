#!/usr/bin/env bash
# Install what the PostgreSQL tests need (tests/pgserver.py, the pg_server / pg_url
# fixtures of tests/conftest.py): Debian's PostgreSQL server binaries and the
# unprivileged `postgres` system user, from Debian's package:
#   postgresql  -> /usr/lib/postgresql/<version>/bin/{initdb,pg_ctl,postgres}
#                  and the `postgres` user (initdb and pg_ctl refuse to run as root,
#                  so under root the tests run them as that user)
# The tests start their own throwaway server in a temporary directory on a free
# port; the package's own cluster and service are not used.
#
# Quiet and quick (no apt-get update) when both are already there.
# Prints apt's output only if the installation fails. Needs root or sudo; fails soft:
# .ci/run goes on, and the PostgreSQL tests skip saying why.
set -euo pipefail

PKGS=(postgresql)

installed() {
    local initdb
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        if [ -x "$initdb" ] && id -u postgres >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

installed && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "postgres-deps: apt-get not found; install the PostgreSQL server by hand (tests/pgserver.py looks in /usr/lib/postgresql/*/bin, \$GLASSLOG_PG_BIN or PATH; under root it also needs a 'postgres' user)" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "postgres-deps: need root (or sudo) to install ${PKGS[*]}" >&2
        exit 1
    fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PKGS[@]}" || \
       { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PKGS[@]}"; }; } >"$log" 2>&1; then
    echo "postgres-deps: installing ${PKGS[*]} failed:" >&2
    cat "$log" >&2
    exit 1
fi

if ! installed; then
    echo "postgres-deps: ${PKGS[*]} installed, but /usr/lib/postgresql/*/bin/initdb or the 'postgres' user is still missing" >&2
    exit 1
fi
