"""Offline Go build environment shared by the Go interoperability tests."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_XMOD = Path("/usr/share/gocode/src/golang.org/x/mod")


def xmod_dir() -> Path:
    """Where golang.org/x/mod's source is (Debian's package, or $GLASSLOG_XMOD_DIR)."""
    return Path(os.environ.get("GLASSLOG_XMOD_DIR") or DEFAULT_XMOD)


def go_env(tmp: Path, extra: dict[str, str]) -> dict[str, str]:
    """Environment for `go build` that never reaches for the network or a newer toolchain."""
    env = dict(os.environ)
    env.update(GOPROXY="off", GOSUMDB="off", GONOSUMDB="*", GOTOOLCHAIN="local", GOWORK="off", GOFLAGS="", CGO_ENABLED="0")
    if not env.get("GOCACHE") and not (env.get("HOME") or env.get("XDG_CACHE_HOME")):
        env["GOCACHE"] = str(tmp / "gocache")
    env.update(extra)
    return env
