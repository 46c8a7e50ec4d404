"""Offline Go build environment shared by the Go interoperability tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


def _build_module_mode(go: str, xmod: Path, source: Path, name: str, tmp: Path) -> subprocess.CompletedProcess:
    """Module mode: a go.mod whose replace directive points at the local x/mod source."""
    src = tmp / "module-src"
    src.mkdir()
    shutil.copy(source / "main.go", src / "main.go")
    (src / "go.mod").write_text(
        f"module glasslog.example/{name}\n\ngo 1.17\n\n"
        "require golang.org/x/mod v0.7.0\n\n"
        f"replace golang.org/x/mod => {xmod}\n"
    )
    env = go_env(tmp, {"GO111MODULE": "on", "GOFLAGS": "-mod=mod", "GOPATH": str(tmp / "gopath")})
    return subprocess.run([go, "build", "-o", str(tmp / name), "."], check=False, cwd=src, env=env,
                          capture_output=True, text=True, timeout=600)


def _build_gopath_mode(go: str, xmod: Path, source: Path, name: str, tmp: Path) -> subprocess.CompletedProcess:
    """GOPATH mode: works when x/mod sits at <GOPATH>/src/golang.org/x/mod (Debian's layout)."""
    if xmod.parts[-4:] != ("src", "golang.org", "x", "mod"):
        return subprocess.CompletedProcess([], 1, "", f"{xmod} is not laid out as <GOPATH>/src/golang.org/x/mod")
    src = tmp / "gopath-src"
    src.mkdir()
    shutil.copy(source / "main.go", src / "main.go")
    env = go_env(tmp, {"GO111MODULE": "off", "GOPATH": str(xmod.parents[3])})
    return subprocess.run([go, "build", "-o", str(tmp / name), "."], check=False, cwd=src, env=env,
                          capture_output=True, text=True, timeout=600)


def build_go_program(source: Path, tmp: Path) -> Path:
    """Build the one-file Go program in ``source`` (its ``main.go``) offline against Debian's golang.org/x/mod.

    Tries module mode (a replace directive to the local x/mod source), then GOPATH mode. Returns the binary's
    path, named after ``source``'s folder. Skips the calling test when Go or x/mod is absent (saying how to
    install them); fails it, with both build logs, when they are present but the build fails.
    """
    name = source.name
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go toolchain not found on PATH ('go'); install it with .ci/go-deps.sh "
                    "(Debian packages golang-go and golang-golang-x-mod-dev)")
    xmod = xmod_dir()
    for rel in ("go.mod", "sumdb/note/note.go", "sumdb/tlog/tlog.go", "sumdb/tlog/tile.go"):
        if not (xmod / rel).is_file():
            pytest.skip(f"golang.org/x/mod source not found at {xmod} (missing {rel}); install Debian's "
                        "golang-golang-x-mod-dev (.ci/go-deps.sh) or set GLASSLOG_XMOD_DIR")
    errors = []
    for mode, build in (("module mode", _build_module_mode), ("GOPATH mode", _build_gopath_mode)):
        attempt = tmp / mode.split()[0].lower()
        attempt.mkdir()
        proc = build(go, xmod, source, name, attempt)
        if proc.returncode == 0 and (attempt / name).is_file():
            return attempt / name
        errors.append(f"--- {mode} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    pytest.fail(f"could not build {source} offline against {xmod}\n" + "\n".join(errors))
