# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQLite engine: refusing databases that are not ours, invariants its schema enforces even against direct SQL,
its files (WAL, permissions, creation beside the final name) and its migration steps.

What every store must do (operations, transactions, concurrency, migrating from the oldest schema, integrity) is in
test_contract.py, which runs against this engine too.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CAError, StoreError
from ansible_collections.certfleet.pki.plugins.module_utils.store import sqlite as sqlite_store
from ansible_collections.certfleet.pki.plugins.module_utils.store.sqlite import (
    APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SQLiteStore, _split_sql,
)


def _replace_state(ca, data: bytes | None = None, source: str | None = None) -> None:
    for suffix in ('-wal', '-shm'):
        if os.path.exists(ca.state_path + suffix):
            os.unlink(ca.state_path + suffix)
    if source is not None:
        shutil.copyfile(source, ca.state_path)
    else:
        with open(ca.state_path, 'wb') as handle:
            handle.write(data)


def _raw(path):
    return sqlite3.connect(path, isolation_level=None)


# -- databases that are not (or no longer) ours -----------------------------------------------------------------

def test_random_bytes_state_db(ca):
    _replace_state(ca, os.urandom(8192))
    with pytest.raises(StoreError) as err:
        ca.open()
    assert err.value.field == 'ca_path'
    assert 'corrupted or not an SQLite database' in str(err.value)
    assert ca.state_path in str(err.value)


def test_empty_state_db(ca):
    _replace_state(ca, b'')
    with pytest.raises(StoreError, match='corrupted'):
        ca.open()


def test_damaged_pages_behind_a_valid_header(ca):
    ca.ensure('alice')
    data = open(ca.state_path, 'rb').read()
    _replace_state(ca, data[:100] + os.urandom(len(data) - 100))
    with pytest.raises(StoreError) as err:
        ca.open()
    assert err.value.field == 'ca_path'
    assert err.value.code == 'store_damaged'
    assert ca.state_path in str(err.value) and 'is damaged' in str(err.value)


def test_foreign_sqlite_database(ca, tmp_path):
    foreign = str(tmp_path / 'other-app.db')
    conn = _raw(foreign)
    conn.execute('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)')
    conn.execute('CREATE TABLE certificates (serial TEXT)')
    conn.execute("INSERT INTO meta VALUES ('owner', 'someone else')")
    conn.close()
    _replace_state(ca, source=foreign)
    with pytest.raises(StoreError) as err:
        ca.open()
    assert 'another application' in str(err.value)
    # and nothing was added to it
    conn = _raw(ca.state_path)
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")} == {'meta', 'certificates'}
    assert conn.execute('PRAGMA application_id').fetchone()[0] == 0
    conn.close()


def test_our_application_id_without_schema(tmp_path):
    path = str(tmp_path / 'state.db')
    conn = _raw(path)
    conn.execute('PRAGMA application_id=%d' % APPLICATION_ID)
    conn.execute('CREATE TABLE t (x)')
    conn.close()
    with pytest.raises(StoreError, match='holds no certfleet schema'):
        SQLiteStore(path)


def test_state_db_of_another_ca(make_ca):
    first, second = make_ca('first'), make_ca('second')
    second.ensure('bob')
    _replace_state(first, source=second.state_path)
    with pytest.raises(StoreError) as err:
        first.open()
    assert 'belongs to another CA' in str(err.value)
    assert err.value.field == 'ca_path'
    with pytest.raises(StoreError):
        first.ensure('alice')


def test_missing_state_db(ca):
    os.unlink(ca.state_path)
    with pytest.raises(CAError, match='holds no certfleet CA'):
        ca.open()
    with pytest.raises(StoreError, match='does not exist'):
        SQLiteStore(ca.state_path)


def test_newer_schema_version_is_refused(ca):
    conn = _raw(ca.state_path)
    conn.execute('PRAGMA user_version=%d' % (SCHEMA_VERSION + 1))
    conn.close()
    before = os.stat(ca.state_path).st_size
    with pytest.raises(StoreError) as err:
        ca.open()
    assert 'schema version %d, newer than' % (SCHEMA_VERSION + 1) in str(err.value)
    assert 'upgrade' in str(err.value)
    assert os.stat(ca.state_path).st_size == before


def test_missing_table_is_damage(ca):
    conn = _raw(ca.state_path)
    conn.execute('DROP TABLE held_keys')
    conn.close()
    with pytest.raises(StoreError, match='lacks the tables held_keys'):
        ca.open()


# -- invariants the schema enforces -----------------------------------------------------------------------------

def test_audit_log_is_append_only(ca):
    ca.ensure('alice')
    conn = _raw(ca.state_path)
    try:
        rows = conn.execute('SELECT COUNT(*) FROM audit').fetchone()[0]
        assert rows == 2
        with pytest.raises(sqlite3.DatabaseError, match='append-only'):
            conn.execute("UPDATE audit SET outcome = 'forged'")
        with pytest.raises(sqlite3.DatabaseError, match='append-only'):
            conn.execute('DELETE FROM audit')
        with pytest.raises(sqlite3.DatabaseError, match='never deleted'):
            conn.execute('DELETE FROM certificates')
        assert conn.execute('SELECT COUNT(*) FROM audit').fetchone()[0] == rows
        assert conn.execute("SELECT COUNT(*) FROM audit WHERE outcome = 'forged'").fetchone()[0] == 0
    finally:
        conn.close()
    with ca.open() as managed:
        with pytest.raises(StoreError, match='append-only'):
            with managed.store.write():
                managed.store._exec('DELETE FROM audit')
    assert len(ca.audit()) == 2


def test_revoked_cannot_be_unrevoked(ca):
    serial = ca.ensure('alice')['serial']
    ca.revoke(serial=serial, reason='key_compromise')
    with ca.open() as managed:
        with pytest.raises(StoreError, match='stays revoked'):
            with managed.store.write():
                managed.store._exec("UPDATE certificates SET status = 'valid' WHERE serial = ?", (serial,))
    # that the store's own revoke() does not rewrite an existing revocation is in test_contract.py
    record = ca.record(serial)
    assert record.status == 'revoked' and record.revocation_reason == 'key_compromise'
    assert record.revoked_at == ca.clock()


def test_state_files_are_private(ca):
    ca.ensure('alice')
    with ca.open() as managed, managed.store.read():
        for name in os.listdir(ca.path):
            if name.startswith('state.db'):
                assert stat.S_IMODE(os.stat(os.path.join(ca.path, name)).st_mode) == 0o600, name


# -- schema and migrations --------------------------------------------------------------------------------------

def test_fresh_store_is_current_schema_in_wal_mode(tmp_path):
    path = str(tmp_path / 'state.db')
    store = SQLiteStore(path, create=True)
    try:
        assert store.schema_version == SCHEMA_VERSION
    finally:
        store.close()
    conn = _raw(path)
    try:
        assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
        assert conn.execute('PRAGMA application_id').fetchone()[0] == APPLICATION_ID
        assert conn.execute('PRAGMA user_version').fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_split_sql_keeps_triggers_whole():
    statements = _split_sql(MIGRATIONS[1])
    creates = [line for line in MIGRATIONS[1].splitlines() if line.startswith('CREATE ')]
    assert len(statements) == len(creates)
    triggers = [s for s in statements if s.startswith('CREATE TRIGGER')]
    assert triggers and all(s.rstrip().endswith('END;') for s in triggers)


def test_migrations_are_applied_once(ca, monkeypatch):
    serial = ca.ensure('alice')['serial']
    step = ('CREATE TABLE notes (serial TEXT NOT NULL REFERENCES certificates(serial), note TEXT NOT NULL);\n'
            "INSERT INTO meta (key, value) VALUES ('migrated_to_2', '\"yes\"');\n")
    monkeypatch.setattr(sqlite_store, 'MIGRATIONS', {**MIGRATIONS, SCHEMA_VERSION + 1: step})
    monkeypatch.setattr(sqlite_store, 'SCHEMA_VERSION', SCHEMA_VERSION + 1)
    with ca.open() as managed:
        assert managed.store.schema_version == SCHEMA_VERSION + 1
        with managed.store.read():
            assert managed.store.get_meta('migrated_to_2') == 'yes'
            assert managed.store.get(serial).identity == 'alice'  # data survived
    # opening again does not run the step again (it would fail: the table exists, the meta key is unique)
    with ca.open() as managed, managed.store.read():
        assert managed.store.schema_version == SCHEMA_VERSION + 1
    conn = _raw(ca.state_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM meta WHERE key = 'migrated_to_2'").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'notes'").fetchone()[0] == 1
    finally:
        conn.close()
    assert ca.ensure('bob')['action'] == 'issued'


def test_failed_migration_rolls_back(ca, monkeypatch):
    ca.ensure('alice')
    before = ca.snapshot()
    step = 'CREATE TABLE half_done (x);\nTHIS IS NOT SQL;\n'
    monkeypatch.setattr(sqlite_store, 'MIGRATIONS', {**MIGRATIONS, SCHEMA_VERSION + 1: step})
    monkeypatch.setattr(sqlite_store, 'SCHEMA_VERSION', SCHEMA_VERSION + 1)
    with pytest.raises(StoreError):
        ca.open()
    monkeypatch.undo()
    assert ca.snapshot() == before


# -- creation beside the final name -----------------------------------------------------------------------------

def _names(folder) -> list:
    return sorted(os.listdir(str(folder)))


def test_create_new_builds_beside_and_activate_renames_without_wal(tmp_path):
    path = str(tmp_path / 'state.db')
    store = SQLiteStore.create_new(path)
    with store.write():
        store.set_meta('created_at', 'now')
    assert 'state.db' not in _names(tmp_path) and 'state.db.new' in _names(tmp_path)
    store.activate()
    assert _names(tmp_path) == ['state.db']  # the WAL was folded in: no -wal, -shm or .new left
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    conn = _raw(path)
    try:
        assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
        assert conn.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()[0] == '"now"'
    finally:
        conn.close()


def test_create_new_removes_what_an_unfinished_creation_left(tmp_path):
    for name in ('state.db', 'state.db-wal', 'state.db-shm', 'state.db-journal', 'state.db.new',
                 'state.db.new-wal', 'state.db.new-journal'):
        (tmp_path / name).write_bytes(b'left over')
    store = SQLiteStore.create_new(str(tmp_path / 'state.db'))
    store.activate()
    assert _names(tmp_path) == ['state.db']


def test_discard_removes_the_new_files_and_keeps_the_state(tmp_path):
    store = SQLiteStore.create_new(str(tmp_path / 'state.db'))
    with store.write():
        store.set_meta('created_at', 'now')
    store.discard()
    assert _names(tmp_path) == []
    kept = SQLiteStore(str(tmp_path / 'kept.db'), create=True)
    kept.activate()  # created in place: activating only closes it
    assert _names(tmp_path) == ['kept.db']
    opened = SQLiteStore(str(tmp_path / 'kept.db'))
    with pytest.raises(StoreError, match='only a store being created'):
        opened.discard()
    opened.close()
    assert _names(tmp_path) == ['kept.db']


def test_a_lock_held_past_the_timeout_is_a_store_error(tmp_path):
    """Whoever waits longer than the busy timeout gets a StoreError naming the file, never sqlite3's own error."""
    path = str(tmp_path / 'state.db')
    SQLiteStore(path, create=True).close()
    holder = _raw(path)
    holder.execute('BEGIN IMMEDIATE')
    store = SQLiteStore(path, timeout=0.3)
    try:
        with pytest.raises(StoreError) as err:
            with store.write():
                pass
        assert path in err.value.message and 'locked' in err.value.message
    finally:
        store.close()
        holder.execute('ROLLBACK')
        holder.close()
