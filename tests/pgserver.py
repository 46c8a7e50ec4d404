"""A throwaway real PostgreSQL server for the tests, from the distribution's binaries.

``PgServer`` runs ``initdb`` and ``pg_ctl start`` in a temporary directory: trust
authentication, superuser ``postgres``, listening on 127.0.0.1 on a free TCP port
and on a unix socket in the temporary directory, ``fsync`` on (the tests check
durability), ``max_connections=200``. Nothing outside the temporary directory
is touched: no system cluster, no service, no configuration in /etc.

The binaries are looked up in ``$GLASSLOG_PG_BIN`` (a directory holding
``initdb``, ``pg_ctl`` and ``postgres``), then Debian's
``/usr/lib/postgresql/<version>/bin`` (newest first), then ``PATH``
(``.ci/postgres-deps.sh`` installs Debian's package). initdb and pg_ctl refuse
to run as root, so under root they run as the ``postgres`` system user (created
by that package) through ``runuser`` (or ``su``), and the temporary directory
is given to that user; without such a user the tests skip. ``skip_reason()``
says why the server cannot run here, or None.

    server = PgServer()
    server.start()
    url = server.create_database("t_example")   # postgresql://postgres@127.0.0.1:PORT/t_example
    server.kill()      # SIGKILL the postmaster and its children: a crash
    server.start()     # crash recovery from the WAL; same port, same data
    server.close()     # stop and remove the temporary directory (also at exit)

The pytest fixtures ``pg_server`` (one per session) and ``pg_url`` (a fresh
database per test) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

SUPERUSER = "postgres"  # the database superuser made by initdb (-U); trust auth, no password
SYSTEM_USER = "postgres"  # the unprivileged OS user initdb / pg_ctl run as when we are root
_TOOLS = ("initdb", "pg_ctl", "postgres")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_START_TIMEOUT_S = 60


class PgServerError(RuntimeError):
    """The server could not be initialised, started or stopped (the message ends with its log)."""


# ------------------------------------------------------------------ discovery
def _has_tools(d: Path) -> bool:
    return all(os.access(d / t, os.X_OK) for t in _TOOLS)


def _version_key(d: Path):
    # /usr/lib/postgresql/15/bin -> (15,); "9.6" -> (9, 6); unparsable versions sort first
    try:
        return tuple(int(x) for x in d.parent.name.split("."))
    except ValueError:
        return (-1,)


def find_pg_bin() -> Path | None:
    """The directory with initdb, pg_ctl and postgres, or None.

    ``$GLASSLOG_PG_BIN`` if set (None when it lacks the tools: an explicit choice is
    not second-guessed), else the newest ``/usr/lib/postgresql/*/bin``, else ``PATH``.
    """
    env = os.environ.get("GLASSLOG_PG_BIN")
    if env:
        d = Path(env)
        return d if _has_tools(d) else None
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True):
        if _has_tools(d):
            return d
    found = shutil.which("pg_ctl")
    if found and _has_tools(Path(found).resolve().parent):
        return Path(found).resolve().parent
    return None


def _system_user():
    """(uid, gid) of the unprivileged user to run the server as when we are root, else None."""
    import pwd

    try:
        pw = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        return None
    return (pw.pw_uid, pw.pw_gid) if pw.pw_uid != 0 else None


def _as_root() -> bool:
    return os.geteuid() == 0


def skip_reason() -> str | None:
    """Why a PgServer cannot run here (a sentence for pytest.skip), or None when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError as e:
        return f"psycopg is not installed ({e}); pip install 'psycopg[binary]' (a main dependency in pyproject.toml)"
    bin_dir = find_pg_bin()
    if bin_dir is None:
        env = os.environ.get("GLASSLOG_PG_BIN")
        where = f"$GLASSLOG_PG_BIN={env}" if env else "/usr/lib/postgresql/*/bin or PATH"
        return (f"PostgreSQL server binaries ({', '.join(_TOOLS)}) not found in {where}; "
                "install Debian's postgresql package with .ci/postgres-deps.sh, or set GLASSLOG_PG_BIN")
    if _as_root():
        if _system_user() is None:
            return (f"running as root, and initdb/pg_ctl refuse root, but there is no unprivileged "
                    f"'{SYSTEM_USER}' system user to run them as; install Debian's postgresql package "
                    "(.ci/postgres-deps.sh creates it) or run the tests as a normal user")
        if not (shutil.which("runuser") or shutil.which("su")):
            return f"running as root and neither runuser nor su is available to run PostgreSQL as '{SYSTEM_USER}'"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _world_traversable(path: Path) -> bool:
    """Whether another user can reach entries below ``path`` (every ancestor has o+x)."""
    p = path.resolve()
    for d in (p, *p.parents):
        try:
            if not d.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    """A live process (zombies, which no one may reap in a container, count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except (OSError, ValueError, IndexError):
        return True


def _descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (from /proc; empty where /proc is absent)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


# ------------------------------------------------------------------ the server
_LIVE: set[PgServer] = set()  # strong references: a server nobody closed is still stopped at exit


@atexit.register
def _close_all() -> None:
    for server in list(_LIVE):
        try:
            server.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


class PgServer:
    """One PostgreSQL server in its own temporary directory; see the module docstring."""

    def __init__(self, bin_dir: Path | str | None = None, *, max_connections: int = 200,
                 settings: dict[str, str] | None = None):
        reason = None if bin_dir else skip_reason()
        if reason:
            raise PgServerError(reason)
        self.bin_dir = Path(bin_dir) if bin_dir else find_pg_bin()
        self.max_connections = max_connections
        self.extra_settings = dict(settings or {})
        self._owner = _system_user() if _as_root() else None
        base = None
        tmp = Path(tempfile.gettempdir())
        if len(str(tmp)) > 60 or (self._owner is not None and not _world_traversable(tmp)):
            base = "/tmp"  # unix socket paths are limited to 107 bytes; the postgres user must reach the directory
        self.root = Path(tempfile.mkdtemp(prefix="glasslog-pg-", dir=base))
        if self._owner is not None:
            os.chown(self.root, *self._owner)
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "postgres.log"
        self.port: int | None = None
        self._initialised = False
        self._closed = False
        self._lock = threading.Lock()
        _LIVE.add(self)

    # -------------------------------------------------------------- URLs
    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres`` (the maintenance database)."""
        return self.url_for("postgres")

    def url_for(self, dbname: str, *, unix_socket: bool = False) -> str:
        """The URL of database ``dbname``: over TCP on 127.0.0.1, or over the unix socket."""
        if self.port is None:
            raise PgServerError("the server has not been started")
        if unix_socket:
            return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={self.port}"
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    # -------------------------------------------------------------- commands
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}  # no PGDATA, PGPORT, ... leaking in
        env["LC_ALL"] = "C"
        return env

    def _run(self, tool: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / tool), *args]
        if self._owner is not None:
            if shutil.which("runuser"):
                cmd = ["runuser", "-u", SYSTEM_USER, "--", *cmd]
            else:
                cmd = ["su", SYSTEM_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]
        proc = subprocess.run(cmd, cwd=self.root, env=self._env(), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise PgServerError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n"
                                f"{proc.stdout}{proc.stderr}{self._log_tail()}")
        return proc

    def log_text(self) -> str:
        """The server's log so far (pg_ctl -l), e.g. to check that a start ran crash recovery."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def _log_tail(self, lines: int = 30) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- postgres log ---\n" + "\n".join(tail)

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", SUPERUSER,
                  "--encoding=UTF8", "--locale=C")
        self.socket_dir.mkdir(mode=0o700)
        if self._owner is not None:
            os.chown(self.socket_dir, *self._owner)
        self._initialised = True

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": str(self.max_connections),
            "fsync": "on",  # durability is under test: never turn these off for speed
            "synchronous_commit": "on",
            "full_page_writes": "on",
            **self.extra_settings,
        }
        # A separate file included last, rewritten on each start with a new port.
        conf = self.data_dir / "glasslog-test.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        main = self.data_dir / "postgresql.conf"
        text = main.read_text()
        if "include 'glasslog-test.conf'" not in text:
            main.write_text(text + "\ninclude 'glasslog-test.conf'\n")
        if self._owner is not None:
            os.chown(conf, *self._owner)

    # -------------------------------------------------------------- lifecycle
    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and _pid_alive(pid)

    def start(self) -> PgServer:
        """Start (or restart after stop/kill) the server; initdb on first use. Keeps its port once it has one."""
        with self._lock:
            if self._closed:
                raise PgServerError("the server was closed")
            if not self._initialised:
                self._initdb()
            if self.is_running():
                return self
            self._remove_stale_lock_files()
            keep_port = self.port is not None
            for attempt in range(5):
                if not keep_port or attempt > 0:
                    self.port = _free_port()  # a race with another process for the port: retry on a new one
                self._write_settings()
                log_from = self.log_file.stat().st_size if self.log_file.exists() else 0
                proc = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file),
                                 "-w", "-t", str(_START_TIMEOUT_S), check=False, timeout=_START_TIMEOUT_S + 30)
                if proc.returncode == 0:
                    return self
                with open(self.log_file, "rb") as f:
                    f.seek(log_from)
                    new_log = f.read().decode(errors="replace")
                if "could not bind" not in new_log and "already in use" not in new_log:
                    break
            raise PgServerError(f"pg_ctl start failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{self._log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server cleanly (pg_ctl stop -m fast); the data stays, start() again to resume."""
        with self._lock:
            if not self._initialised or not self.is_running():
                return
            proc = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60",
                             check=False, timeout=90)
            if proc.returncode != 0 and self.is_running():
                self._kill_locked()

    def kill(self) -> None:
        """SIGKILL the postmaster and every server process: a crash. start() runs crash recovery."""
        with self._lock:
            self._kill_locked()

    def _kill_locked(self) -> None:
        pid = self.postmaster_pid()
        if pid is None or not _pid_alive(pid):
            return
        victims = [pid, *_descendants(pid)]  # taken before the kill: orphans are re-parented after it
        try:
            if os.getpgid(pid) == pid:  # pg_ctl starts the postmaster in its own session
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while any(_pid_alive(p) for p in victims):
            if time.monotonic() > deadline:
                raise PgServerError(f"server processes {victims} still alive 30 s after SIGKILL")
            time.sleep(0.02)

    def _remove_stale_lock_files(self) -> None:
        # After a kill the postmaster lingers as a zombie where no one reaps orphans (PID 1 of many
        # containers); postgres takes a zombie for a live server still holding the data directory
        # and the socket. The files of a dead postmaster are removed here, as a reboot would.
        pid = self.postmaster_pid()
        if pid is not None and not _pid_alive(pid):
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        for lock in self.socket_dir.glob(".s.PGSQL.*.lock"):
            try:
                owner = int(lock.read_text().split("\n", 1)[0])
            except (OSError, ValueError):
                continue
            if not _pid_alive(owner):
                lock.unlink(missing_ok=True)
                Path(str(lock)[: -len(".lock")]).unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the server (killing it if a clean stop fails) and remove the temporary directory. Idempotent."""
        if self._closed:
            return
        try:
            self.stop(mode="immediate")
        finally:
            try:
                self.kill()
            finally:
                self._closed = True
                shutil.rmtree(self.root, ignore_errors=True)
                _LIVE.discard(self)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- databases
    def connect(self, dbname: str = "postgres", **kwargs):
        """A psycopg connection (autocommit unless told otherwise) to ``dbname``."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.url_for(dbname), **kwargs)

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (a plain identifier) and return its URL."""
        from psycopg import sql

        if not _DB_NAME.match(name):
            raise ValueError(f"database name {name!r}: letters, digits and _, at most 63, not starting with a digit")
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, name: str, *, missing_ok: bool = True) -> None:
        """Drop database ``name``, disconnecting its sessions (DROP DATABASE ... WITH (FORCE))."""
        from psycopg import sql

        if not _DB_NAME.match(name):
            raise ValueError(f"database name {name!r}")
        stmt = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if missing_ok else "DROP DATABASE {} WITH (FORCE)"
        with self.connect() as conn:
            conn.execute(sql.SQL(stmt).format(sql.Identifier(name)))

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._initialised and self.is_running() else "stopped")
        return f"<PgServer {self.bin_dir} port={self.port} {state} at {self.root}>"
