"""What only the PostgreSQL back end has: URLs without passwords, the shared pool, the server being away
(unreachable, restarted, busy), and the schema it creates. Run on the throwaway server of ``tests/pgserver.py``."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from glasslog.ledger import Ledger, LedgerError, canonical_json, merkle
from glasslog.storage import StorageError, StorageUnavailable
from glasslog.storage.postgres import pool as pgpool
from glasslog.storage.postgres import store as pgstore
from glasslog.storage.postgres.url import redact
from glasslog.verify import audit_log

from .test_behaviour import decision, leaves_of, model_entry, observe

ORIGIN = "test.example/postgres"


@pytest.fixture
def short_waits(monkeypatch):
    """Waits of 2 s instead of 30 (pools made after this use them: each test's database has a new URL)."""
    monkeypatch.setattr(pgpool, "WAIT_SECONDS", 2.0)  # the pools, lock timeout and store all read it there


def test_redact_removes_the_password_and_nothing_else():
    assert redact("postgresql://app:s3cr@t@db.example:5432/log") == "postgresql://app@db.example:5432/log"
    assert redact("postgres://app:pw@db/log?sslmode=require&password=pw") == "postgres://app@db/log?sslmode=require"
    assert redact("postgresql://:pw@db/log") == "postgresql://db/log"
    assert redact("postgresql://app@/log?host=/run/pg&port=5433") == "postgresql://app@/log?host=/run/pg&port=5433"
    assert redact("postgresql://db.example/log") == "postgresql://db.example/log"


def test_an_unreachable_server_is_unavailable_and_named_without_password(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    url = f"postgresql://app:hunter2@127.0.0.1:{port}/log"
    for attempt in (lambda: Ledger.open(tmp_path, store=url), lambda: Ledger.create(tmp_path / "new", ORIGIN, store=url)):
        with pytest.raises(StorageUnavailable) as info:
            attempt()
        assert f"postgresql://app@127.0.0.1:{port}/log" in str(info.value)
        assert "hunter2" not in str(info.value)
    assert not (tmp_path / "new" / "log.key").exists()


def _tables(pg_server, url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


def test_opening_a_database_without_a_log_changes_nothing(pg_server, pg_url, tmp_path):
    with pytest.raises(LedgerError, match="holds no glasslog log"):
        Ledger.open(tmp_path, store=pg_url)
    assert _tables(pg_server, pg_url) == []
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:  # another application's meta table: still no log
        conn.execute("CREATE TABLE meta (key text PRIMARY KEY, value text)")
    with pytest.raises(LedgerError, match="no origin recorded"):
        Ledger.open(tmp_path, store=pg_url)
    assert _tables(pg_server, pg_url) == ["meta"]


def test_schema_types(pg_server, pg_url, tmp_path):
    Ledger.create(tmp_path / "log", ORIGIN, store=pg_url).close()
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        types = dict(((t, c), d) for t, c, d in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"))
    assert types[("entries", "idx")] == "bigint" and types[("entries", "data")] == "bytea"
    assert types[("hashes", "id")] == "bigint" and types[("hashes", "strip")] == "bytea"
    assert types[("private_values", "salt")] == "bytea" and types[("checkpoints", "tree_size")] == "bigint"
    assert set(pgstore._TABLES) <= set(_tables(pg_server, pg_url))


def test_concurrent_creates_one_wins(pg_url, tmp_path):
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def create(k: int) -> None:
        barrier.wait()
        try:
            Ledger.create(tmp_path / f"dir{k}", f"test.example/log{k}", store=pg_url).close()
            outcomes.append(k)
        except LedgerError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=create, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if isinstance(o, int)]
    assert len(winners) == 1, outcomes
    assert all("already holds" in str(o) for o in outcomes if not isinstance(o, int))
    with Ledger.open(tmp_path / f"dir{winners[0]}", store=pg_url) as lg:
        assert lg.origin == f"test.example/log{winners[0]}" and lg.signed_size() == 0


def test_stores_share_one_pool_per_url(pg_url, tmp_path):
    a = Ledger.create(tmp_path / "log", ORIGIN, store=pg_url)
    b = Ledger.open(tmp_path / "log", store=pg_url)
    assert a.store._pool is b.store._pool
    a.append([decision(0)])
    b.close()  # does not close the shared pool
    assert a.size == 1
    pgstore.close_pools()  # a store made before gets a new pool
    a.append([decision(1)])
    assert a.size == 2 and not a.store._pool.closed
    a.close()
    with pytest.raises(StorageError, match="closed"):
        a.store.size()


def test_a_held_write_lock_times_out_as_unavailable_and_leaves_nothing(short_waits, pg_url, tmp_path):
    import psycopg

    lg = Ledger.create(tmp_path / "log", ORIGIN, store=pg_url)
    lg.append([decision(0)])
    before = observe(lg)
    holder = psycopg.connect(pg_url)  # another host's writer, stuck inside its transaction
    holder.execute("SELECT tree_size FROM log_state WHERE id = 1 FOR UPDATE")
    t = time.monotonic()
    with pytest.raises(StorageUnavailable, match="busy") as info:
        lg.append([decision(1)])
    assert 1.5 < time.monotonic() - t < 15
    assert redact(pg_url) in str(info.value)
    holder.rollback()
    holder.close()
    assert observe(lg) == before
    conn = lg.store._getconn()  # the connection went back to the pool clean
    try:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        lg.store._pool.putconn(conn)
    assert lg.append([decision(2)]).first_index == 1
    lg.close()


def test_a_refused_write_swallowed_inside_the_batch_commits_nothing(pg_url, tmp_path):
    """PostgreSQL ends the transaction at a refused statement: a batch that swallows the error fails as a whole
    (never a partial commit); one that wraps the write in a savepoint goes on."""
    from glasslog.access.keys import new_receipt_token, store_receipt_tokens
    from glasslog.storage import StorageConflict

    lg = Ledger.create(tmp_path / "log", ORIGIN, store=pg_url)
    lg.append([decision(0)], within=lambda tx, first: store_receipt_tokens(tx, [new_receipt_token(first)]))
    before = observe(lg)

    def swallow(tx, first):
        try:
            store_receipt_tokens(tx, [new_receipt_token(0)])  # entry 0 has a token already
        except StorageConflict:
            pass

    with pytest.raises(StorageError):
        lg.append([decision(1)], within=swallow)
    assert observe(lg) == before

    def in_savepoint(tx, first):
        try:
            with tx.savepoint():
                store_receipt_tokens(tx, [new_receipt_token(0)])
        except StorageConflict:
            store_receipt_tokens(tx, [new_receipt_token(first)])

    assert lg.append([decision(1)], within=in_savepoint).first_index == 1
    assert lg.store.receipt_token_hash(1) is not None
    assert lg.root() == merkle.root_from_leaf_hashes(leaves_of(lg))
    lg.close()


def test_a_missing_stored_hash_is_reported_as_damage(pg_url, tmp_path):
    import psycopg

    lg = Ledger.create(tmp_path / "log", ORIGIN, store=pg_url)
    lg.append([decision(k) for k in range(100)])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM hashes WHERE id = 0")  # level 0, leaves 0..31
    reader = Ledger.open(tmp_path / "log", store=pg_url)
    with pytest.raises(StorageError, match=r"level 0, index \d+ is missing: the database is damaged"):
        reader.inclusion_proof(5, 100)
    with pytest.raises(LedgerError, match="missing"):
        reader.leaf_hash(3)
    assert len(reader.inclusion_proof(40, 100)) == 7  # the rest of the tree still answers
    lg.close()
    reader.close()


def test_side_tables_added_later_are_made_on_first_write(pg_url, tmp_path):
    """A log created before the cosignatures and ingested tables existed reads them as empty and gets them on first write."""
    import psycopg

    lg = Ledger.create(tmp_path / "log", ORIGIN, store=pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE cosignatures")
        conn.execute("DROP TABLE ingested")
    lg = Ledger.open(tmp_path / "log", store=pg_url)
    s = lg.store
    assert (s.cosignatures(0), s.witness_sizes(), s.latest_cosigned_size(0), s.cosigned_sizes()) == ([], {}, None, [])
    assert s.ingested("d", [b"k" * 24]) == {} and list(s.ingested_rows()) == []
    s.put_cosignature(0, "w+00000000+k", "— w sig", "2026-12-05T10:00:00Z")
    lg.append([decision(0)], within=lambda tx, first: tx.put_ingested([("d", b"k" * 24, first)]))
    assert s.cosigned_sizes() == [0] and s.ingested("d", [b"k" * 24]) == {b"k" * 24: 0}
    lg.close()


def test_entries_without_their_checkpoint_are_refused(pg_url, tmp_path):
    lg = Ledger.create(tmp_path / "log", ORIGIN, store=pg_url)
    before = observe(lg)
    entry = canonical_json(decision(0))
    with pytest.raises(StorageError, match="without a checkpoint"):
        with lg.store.write() as tx:
            step = merkle.integrate(0, [], [merkle.leaf_hash(entry)])
            tx.write_batch(0, [("decision", entry)], step.levels, step.first, [])
    assert observe(lg) == before
    lg.close()


def test_a_server_restart_is_survived(short_waits, pg_server, pg_url, tmp_path):
    lg = Ledger.create(tmp_path / "log", ORIGIN, store=pg_url)
    lg.append([model_entry(), decision(0)])
    lg.store._pool.resize(min_size=3, max_size=8)  # several pooled connections, all of which the crash breaks
    time.sleep(0.5)
    pg_server.kill()
    try:
        with pytest.raises(StorageUnavailable) as info:
            lg.append([decision(1)])
        assert redact(pg_url) in str(info.value)
        with pytest.raises(StorageUnavailable):
            lg.size  # noqa: B018 - a read
    finally:
        pg_server.start()  # crash recovery
    assert lg.size == 2  # stale pooled connections are replaced
    with Ledger.open(tmp_path / "log", store=pg_url) as other:  # proofs read through a statement prepared anew
        merkle.verify_inclusion(1, 2, other.leaf_hash(1), other.inclusion_proof(1, 2), other.root())
    assert lg.append([decision(2)]).first_index == 2
    assert lg.root() == merkle.root_from_leaf_hashes(leaves_of(lg))
    assert audit_log(lg).ok
    lg.close()
