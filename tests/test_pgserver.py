"""The throwaway PostgreSQL server of tests/pgserver.py, on a real server.

Skipped, with the reason, where the server cannot run (see ``pgserver.skip_reason``).
"""

from __future__ import annotations

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed; pip install 'psycopg[binary]'")


def test_round_trip_over_tcp_and_unix_socket(pg_server, pg_url):
    assert pg_url.startswith(f"postgresql://postgres@127.0.0.1:{pg_server.port}/t_")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
        conn.execute("CREATE TABLE entries (idx bigint PRIMARY KEY, data bytea NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO entries VALUES (%s, %s)", [(i, f"entry {i}\n".encode()) for i in range(100)])
        conn.commit()
    dbname = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server.url_for(dbname, unix_socket=True)) as conn:
        assert conn.execute("SELECT inet_server_addr()").fetchone() == (None,)  # really the unix socket
        rows = conn.execute("SELECT idx, data FROM entries ORDER BY idx").fetchall()
    assert [(i, bytes(d)) for i, d in rows] == [(i, f"entry {i}\n".encode()) for i in range(100)]


def test_databases_are_isolated(pg_server, pg_url):
    other = pg_server.create_database("t_isolation_other")
    try:
        assert other != pg_url
        with psycopg.connect(pg_url, autocommit=True) as a, psycopg.connect(other, autocommit=True) as b:
            a.execute("CREATE TABLE log (n int)")
            a.execute("INSERT INTO log VALUES (1)")
            assert b.execute("SELECT to_regclass('log')").fetchone() == (None,)
            b.execute("CREATE TABLE log (n int)")
            assert b.execute("SELECT count(*) FROM log").fetchone() == (0,)
            assert a.execute("SELECT count(*) FROM log").fetchone() == (1,)
    finally:
        pg_server.drop_database("t_isolation_other")
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 't_isolation_other'").fetchone() == (0,)


def test_kill_then_start_keeps_committed_and_loses_uncommitted(pg_server, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE log (n int PRIMARY KEY)")
        conn.execute("INSERT INTO log SELECT generate_series(1, 1000)")
    pending = psycopg.connect(pg_url)  # a transaction in flight at the crash
    pending.execute("INSERT INTO log VALUES (1001)")
    url_before = pg_server.url

    pg_server.kill()
    assert not pg_server.is_running()
    with pytest.raises(psycopg.OperationalError):
        pending.execute("SELECT 1")
    pending.close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_url, connect_timeout=2).close()

    pg_server.start()
    assert pg_server.is_running() and pg_server.url == url_before  # same port: URLs stay valid
    assert "not properly shut down; automatic recovery in progress" in pg_server.log_text()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*), min(n), max(n) FROM log").fetchone() == (1000, 1, 1000)

    pg_server.stop()  # and a clean stop / start keeps it too
    assert not pg_server.is_running()
    pg_server.start()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM log").fetchone() == (1000,)
