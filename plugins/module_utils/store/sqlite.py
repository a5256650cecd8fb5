# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The embedded store: SQLite in WAL mode, one BEGIN IMMEDIATE transaction per change (private module_utils).

Concurrency: every write takes the database's write lock up front (BEGIN IMMEDIATE), so a transaction never has
to upgrade a read lock, which is what makes SQLite fail with "database is locked" under load. Waiting writers
sleep in SQLite's busy handler, and a bounded retry covers the moments the busy handler does not (WAL recovery,
first open). Invariants the schema enforces whatever the caller does: one current certificate per identity,
unique serials and fingerprints, a revoked certificate stays revoked, certificates are never deleted, and the
audit log is append-only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import sqlite3
import time

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import StoreDamagedError, StoreError
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import writing
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import from_iso, to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import (
    CertificateRecord, CertificateStore, KEY_HELD, KEY_PURGED, PICKUP_COLUMNS, PickupRecord, RevokedEntry,
    pickup_changes, pickup_from_row, pickup_row,
)

APPLICATION_ID = 0x43464B49  # 'CFKI': marks the file as a certfleet state database
BUSY_TIMEOUT_SECONDS = 120.0

_SCHEMA_V1 = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    subject TEXT NOT NULL,
    subject_json TEXT NOT NULL,
    sans_json TEXT NOT NULL,
    profile TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_status TEXT NOT NULL CHECK (key_status IN ('held', 'purged', 'endpoint')),
    public_key_sha256 TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL UNIQUE,
    fingerprint_sha1 TEXT NOT NULL,
    pem TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked')),
    is_current INTEGER NOT NULL DEFAULT 0 CHECK (is_current IN (0, 1)),
    pending_revocation INTEGER NOT NULL DEFAULT 0 CHECK (pending_revocation IN (0, 1)),
    revoked_at TEXT,
    revocation_reason TEXT,
    renews TEXT REFERENCES certificates(serial),
    renewed_by TEXT REFERENCES certificates(serial),
    key_retain_until TEXT,
    key_purged_at TEXT
);
CREATE UNIQUE INDEX certificates_one_current ON certificates(identity) WHERE is_current = 1;
CREATE INDEX certificates_identity ON certificates(identity, issued_at);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE INDEX certificates_revoked ON certificates(status) WHERE status = 'revoked';
CREATE TABLE held_keys (
    serial TEXT PRIMARY KEY REFERENCES certificates(serial),
    wrapped BLOB NOT NULL,
    retain_until TEXT NOT NULL
);
CREATE INDEX held_keys_retain_until ON held_keys(retain_until);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    identity TEXT,
    serials TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER certificates_never_deleted BEFORE DELETE ON certificates
BEGIN SELECT RAISE(ABORT, 'certificates are never deleted from the store'); END;
CREATE TRIGGER certificates_stay_revoked BEFORE UPDATE OF status ON certificates
WHEN OLD.status = 'revoked' AND NEW.status <> 'revoked'
BEGIN SELECT RAISE(ABORT, 'a revoked certificate stays revoked'); END;
"""

# Version 2: where each identity's certificate is installed, per host (written by the deploy role).
_SCHEMA_V2 = """
CREATE TABLE deployments (
    identity TEXT NOT NULL,
    host TEXT NOT NULL,
    serial TEXT NOT NULL REFERENCES certificates(serial),
    stores TEXT NOT NULL DEFAULT '[]',
    deployed_at TEXT NOT NULL,
    PRIMARY KEY (identity, host)
);
CREATE INDEX deployments_serial ON deployments(serial);
"""

# Version 3: the bulk request lines already carried out, so that running a request file again changes nothing.
_SCHEMA_V3 = """
CREATE TABLE request_rows (
    digest TEXT NOT NULL,
    action TEXT NOT NULL,
    identity TEXT,
    serial TEXT NOT NULL REFERENCES certificates(serial),
    previous_serial TEXT,
    batch TEXT NOT NULL,
    line INTEGER NOT NULL,
    processed_at TEXT NOT NULL
);
CREATE INDEX request_rows_digest ON request_rows(digest);
"""

# Version 4: what the last drift audit found on each host (certfleet.pki.audit), for the report.
_SCHEMA_V4 = """
CREATE TABLE host_audits (
    host TEXT PRIMARY KEY,
    audited_at TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}',
    findings TEXT NOT NULL DEFAULT '[]'
);
"""

# Version 5: pickup credentials (certfleet.pki.client_certificate_pickup): a retrieval URL and a PIN per pickup,
# both kept only as slow hashes, with the pickup's window and counters.
_SCHEMA_V5 = """
CREATE TABLE pickups (
    pickup_id TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    serial TEXT NOT NULL REFERENCES certificates(serial),
    token_hash TEXT NOT NULL,
    pin_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('pkcs12-modern', 'pkcs12-legacy', 'mobileconfig')),
    lock_after_first_days INTEGER CHECK (lock_after_first_days > 0),
    expires_at TEXT,
    max_downloads INTEGER NOT NULL DEFAULT 1 CHECK (max_downloads > 0),
    downloads INTEGER NOT NULL DEFAULT 0 CHECK (downloads >= 0),
    first_pickup_at TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    max_attempts INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    locked_at TEXT,
    closed_at TEXT,
    close_reason TEXT,
    renewal_of TEXT REFERENCES certificates(serial),
    confirmed_at TEXT
);
CREATE INDEX pickups_identity ON pickups(identity, created_at);
CREATE INDEX pickups_serial ON pickups(serial);
CREATE INDEX pickups_open ON pickups(created_at) WHERE closed_at IS NULL;
"""

# version -> SQL that brings the previous version to it. Append only; never edit a released step.
MIGRATIONS = {
    1: _SCHEMA_V1,
    2: _SCHEMA_V2,
    3: _SCHEMA_V3,
    4: _SCHEMA_V4,
    5: _SCHEMA_V5,
}
SCHEMA_VERSION = max(MIGRATIONS)
REQUIRED_TABLES = {'meta', 'certificates', 'held_keys', 'audit', 'deployments', 'request_rows', 'host_audits',
                   'pickups'}

_COLUMNS = ('serial, identity, subject, subject_json, sans_json, profile, key_type, key_status, public_key_sha256, '
            'not_before, not_after, fingerprint_sha256, fingerprint_sha1, pem, issued_at, status, is_current, '
            'pending_revocation, revoked_at, revocation_reason, renews, renewed_by, key_retain_until, key_purged_at')


RECOVERY_HINT = 'see "Backup and recovery" in the certfleet.pki README'

# The files of one database: the database, its write-ahead log and shared memory, a rollback journal.
_FILE_SUFFIXES = ('', '-wal', '-shm', '-journal')

# SQLite's primary result codes that mean the file itself is damaged: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGE_CODES = {11, 26}


def _is_busy(exc: Exception) -> bool:
    text = str(exc).lower()
    return 'locked' in text or 'busy' in text


def _is_damage(exc: Exception) -> bool:
    code = getattr(exc, 'sqlite_errorcode', None)
    if code is not None and code & 0xFF in _DAMAGE_CODES:
        return True
    text = str(exc).lower()
    return 'malformed' in text or 'not a database' in text or 'corrupt' in text


def damaged_error(path: str, exc: object) -> StoreDamagedError:
    """The one wording for a damaged state database: which file, that it is damaged, and what to do."""
    return StoreDamagedError('the state database %s is damaged (SQLite: %s); stop using this CA and restore '
                             'state.db from a backup, %s' % (path, exc, RECOVERY_HINT), 'ca_path')


class _Rows:
    """A statement's rows, fetched at once so that a damaged page fails inside the translated call, not later in
    whoever iterates."""

    def __init__(self, cursor):
        self.rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if cursor.description is not None else []

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return list(self._rows)

    def __iter__(self):
        return iter(self._rows)


def _record(row) -> CertificateRecord:
    return CertificateRecord(
        serial=row[0], identity=row[1], subject_text=row[2], subject=json.loads(row[3]), sans=json.loads(row[4]),
        profile=row[5], key_type=row[6], key_status=row[7], public_key_sha256=row[8],
        not_before=from_iso(row[9]), not_after=from_iso(row[10]), fingerprint_sha256=row[11],
        fingerprint_sha1=row[12], pem=row[13], issued_at=from_iso(row[14]), status=row[15],
        is_current=bool(row[16]), pending_revocation=bool(row[17]), revoked_at=from_iso(row[18]),
        revocation_reason=row[19], renews=row[20], renewed_by=row[21], key_retain_until=from_iso(row[22]),
        key_purged_at=from_iso(row[23]),
    )


class SQLiteStore(CertificateStore):
    """One state database file. ``create=True`` creates it in place; :meth:`create_new` builds it beside its final
    name and renames it there on :meth:`activate`."""

    def __init__(self, path: str, create: bool = False, timeout: float = BUSY_TIMEOUT_SECONDS):
        self.path = path
        self.timeout = timeout
        self._created = create
        self._final_path: str | None = None
        if not create:
            self._check_file()
        old_umask = os.umask(0o077)  # state.db, -wal and -shm are born 0600
        try:
            self._conn = self._retry(lambda: sqlite3.connect(path, timeout=timeout, isolation_level=None))
            self._configure()
            if create:
                self._retry(lambda: self._conn.execute('PRAGMA journal_mode=WAL'))
            self._migrate(create)
        except StoreError:
            self._close_quietly()
            raise
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            if _is_busy(exc):
                raise StoreError('%s stayed locked for more than %d seconds' % (path, timeout))
            if _is_damage(exc):
                raise damaged_error(path, exc)
            if getattr(exc, 'sqlite_errorcode', 0) & 0xFF in (8, 14):  # SQLITE_READONLY, SQLITE_CANTOPEN
                raise StoreError('cannot open %s for writing (SQLite: %s): the CA folder and state.db must be '
                                 'writable, SQLite keeps state.db-wal and state.db-shm beside it'
                                 % (path, exc), 'ca_path', code='store_unwritable')
            raise StoreError('%s is not a usable certfleet state database (%s)' % (path, exc), 'ca_path')
        finally:
            os.umask(old_umask)
        self._in_transaction = False

    @classmethod
    def create_new(cls, path: str, timeout: float = BUSY_TIMEOUT_SECONDS) -> SQLiteStore:
        """A new store that becomes ``path`` on :meth:`activate`. Whatever an unfinished creation left at ``path``
        (the database, its -wal, -shm or -journal, or a half-built one beside it) is removed first."""
        staging = path + '.new'
        with writing(os.path.dirname(path), 'ca_path', 'clean up old files in'):
            for name in (path, staging):
                for suffix in _FILE_SUFFIXES:
                    if os.path.exists(name + suffix):
                        os.unlink(name + suffix)
        store = cls(staging, create=True, timeout=timeout)
        store._final_path = path
        return store

    @property
    def location(self) -> str:
        return self.path

    def activate(self) -> None:
        """Fold the WAL into the file, close it, and rename it to its final name (one atomic step)."""
        self._require_created('activate')
        try:
            self._exec('PRAGMA wal_checkpoint(TRUNCATE)')
        finally:
            self.close()
        self._created = False  # from now on it is the CA's state: never discarded
        if self._final_path is None:
            return
        with writing(self._final_path, 'ca_path'):
            for suffix in ('-wal', '-shm'):
                if os.path.exists(self.path + suffix):
                    os.unlink(self.path + suffix)
            os.replace(self.path, self._final_path)
        self.path = self._final_path

    def discard(self) -> None:
        """Close the new store and remove its files."""
        self._require_created('discard')
        self.close()
        with writing(self.path, 'ca_path', 'remove'):
            for suffix in _FILE_SUFFIXES:
                if os.path.exists(self.path + suffix):
                    os.unlink(self.path + suffix)

    def _require_created(self, action: str) -> None:
        if not self._created:
            raise StoreError('cannot %s %s: only a store being created can be' % (action, self.path))

    # -- opening ----------------------------------------------------------------------------------------------
    def _check_file(self) -> None:
        try:
            with open(self.path, 'rb') as handle:
                header = handle.read(100)
        except FileNotFoundError:
            raise StoreError('%s does not exist' % self.path, 'ca_path')
        if len(header) < 100 or not header.startswith(b'SQLite format 3\x00'):
            raise StoreError('%s is corrupted or not an SQLite database (bad header); restore it from a backup'
                             % self.path, 'ca_path')
        application_id = int.from_bytes(header[68:72], 'big')
        if application_id != APPLICATION_ID:
            raise StoreError('%s is an SQLite database of another application, not a certfleet state database'
                             % self.path, 'ca_path')

    def _configure(self) -> None:
        conn = self._conn
        conn.execute('PRAGMA busy_timeout=%d' % int(self.timeout * 1000))
        conn.execute('PRAGMA foreign_keys=ON')
        conn.execute('PRAGMA synchronous=FULL')   # a CA must not lose a revocation to a power cut
        conn.execute('PRAGMA secure_delete=ON')   # purged keys are overwritten, not just unlinked
        # Up to 64 MiB of pages (allocated as read): with a million certificates the indexes' inner pages alone
        # outgrow the 2 MiB default, and every lookup would go back to the file.
        conn.execute('PRAGMA cache_size=-65536')

    def _retry(self, action):
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)

    def _migrate(self, create: bool) -> None:
        conn = self._conn
        version = conn.execute('PRAGMA user_version').fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError('%s has schema version %d, newer than this certfleet.pki supports (%d); upgrade the '
                             'collection' % (self.path, version, SCHEMA_VERSION), 'ca_path')
        if version == SCHEMA_VERSION:
            self._check_tables()
            return
        if version == 0 and not create:
            raise StoreError('%s holds no certfleet schema' % self.path, 'ca_path')
        self._retry(lambda: conn.execute('BEGIN IMMEDIATE'))
        try:
            version = conn.execute('PRAGMA user_version').fetchone()[0]  # another process may have migrated
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _split_sql(MIGRATIONS[target]):
                    conn.execute(statement)
                conn.execute('PRAGMA user_version=%d' % target)
            conn.execute('PRAGMA application_id=%d' % APPLICATION_ID)
            conn.execute('COMMIT')
        except BaseException:
            self._rollback_quietly()
            raise
        self._check_tables()

    def _check_tables(self) -> None:
        tables = {row[0] for row in self._exec("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = REQUIRED_TABLES - tables
        if missing:
            raise StoreError('%s lacks the tables %s; it is damaged' % (self.path, ', '.join(sorted(missing))),
                             'ca_path')

    def _rollback_quietly(self) -> None:
        """End a failed transaction without hiding why it failed: on a damaged file ROLLBACK can fail too."""
        try:
            self._conn.execute('ROLLBACK')
        except sqlite3.Error:
            pass

    def _close_quietly(self) -> None:
        conn = getattr(self, '_conn', None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._close_quietly()
        self._conn = None

    @property
    def schema_version(self) -> int:
        return self._exec('PRAGMA user_version').fetchone()[0]

    # -- transactions -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self):
        if self._in_transaction:
            raise StoreError('nested write transaction')
        self._begin('BEGIN IMMEDIATE')
        self._in_transaction = True
        try:
            yield self
            self._end('COMMIT')
        except BaseException:
            self._rollback_quietly()
            raise
        finally:
            self._in_transaction = False

    @contextlib.contextmanager
    def exclusive(self):
        """An flock on ``state.db.lock`` beside the database: the processes of this host are the only ones."""
        if self._in_transaction:
            raise StoreError('exclusive() is taken outside transactions')
        with writing(self.path + '.lock', 'ca_path'):
            fd = os.open(self.path + '.lock', os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def read(self):
        if self._in_transaction:
            yield self
            return
        self._begin('BEGIN')
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._rollback_quietly()
            raise
        else:
            self._end('COMMIT')
        finally:
            self._in_transaction = False

    def _begin(self, statement: str) -> None:
        self._translated(lambda sql, params: self._retry(lambda: self._conn.execute(sql, params)), statement, ())

    def _end(self, statement: str) -> None:
        try:
            self._translated(lambda sql, params: self._retry(lambda: self._conn.execute(sql, params)), statement, ())
        except BaseException:
            self._rollback_quietly()
            raise

    def _exec(self, sql: str, params=()) -> _Rows:
        return self._translated(lambda statement, values: _Rows(self._conn.execute(statement, values)), sql, params)

    def _exec_many(self, sql: str, rows: list) -> None:
        self._translated(self._conn.executemany, sql, rows)

    def _translated(self, call, sql: str, params):
        """Run a statement; SQLite errors become StoreError. "Busy" reaches here only once the busy handler and
        _retry gave up (the timeout passed)."""
        try:
            return call(sql, params)
        except sqlite3.IntegrityError as exc:
            raise StoreError('the store refused a change: %s' % exc)
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise StoreError('%s stayed locked for more than %g seconds (SQLite: %s)'
                                 % (self.path, self.timeout, exc), 'ca_path')
            if _is_damage(exc):
                raise damaged_error(self.path, exc)
            raise StoreError('%s: %s' % (self.path, exc), 'ca_path')

    def check_integrity(self) -> None:
        """Read every page (PRAGMA quick_check): for the rare operations that must not act on a damaged store."""
        problems = [row[0] for row in self._exec('PRAGMA quick_check(5)')]
        if problems != ['ok']:
            raise damaged_error(self.path, '; '.join(problems))

    # -- meta -------------------------------------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self._exec('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def get_meta_many(self, keys) -> dict:
        keys = list(keys)
        values = dict.fromkeys(keys)
        if keys:
            rows = self._exec('SELECT key, value FROM meta WHERE key IN (%s)' % ','.join('?' * len(keys)), keys)
            values.update((key, json.loads(value)) for key, value in rows)
        return values

    def set_meta(self, key: str, value) -> None:
        self._exec('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
                   (key, json.dumps(value, sort_keys=True)))

    # -- certificates -----------------------------------------------------------------------------------------
    def current(self, identity: str) -> CertificateRecord | None:
        row = self._exec('SELECT %s FROM certificates WHERE identity = ? AND is_current = 1' % _COLUMNS,
                         (identity,)).fetchone()
        return _record(row) if row else None

    def get(self, serial: str) -> CertificateRecord | None:
        row = self._exec('SELECT %s FROM certificates WHERE serial = ?' % _COLUMNS, (serial,)).fetchone()
        return _record(row) if row else None

    def find(self, identity: str | None = None, serials: list | None = None, identities: list | None = None) -> list:
        if identities is not None and len(identities) > 500:  # stay below SQLite's bound-parameter limit
            return [record for start in range(0, len(identities), 500)
                    for record in self.find(identity, serials, identities[start:start + 500])]
        sql = 'SELECT %s FROM certificates' % _COLUMNS
        clauses, params = [], []
        if identity is not None:
            clauses.append('identity = ?')
            params.append(identity)
        if identities is not None:
            if not identities:
                return []
            clauses.append('identity IN (%s)' % ','.join('?' * len(identities)))
            params.extend(identities)
        if serials is not None:
            if not serials:
                return []
            clauses.append('serial IN (%s)' % ','.join('?' * len(serials)))
            params.extend(serials)
        if clauses:
            sql += ' WHERE ' + ' AND '.join(clauses)
        sql += ' ORDER BY identity, issued_at, serial'
        return [_record(row) for row in self._exec(sql, params)]

    def serial_exists(self, serial: str) -> bool:
        return self._exec('SELECT 1 FROM certificates WHERE serial = ?', (serial,)).fetchone() is not None

    def identity_has_history(self, identity: str) -> bool:
        return self._exec('SELECT 1 FROM certificates WHERE identity = ? LIMIT 1', (identity,)).fetchone() is not None

    def current_with_history(self, identity: str) -> tuple:
        row = self._exec('SELECT %s FROM certificates WHERE identity = ? ORDER BY is_current DESC LIMIT 1' % _COLUMNS,
                         (identity,)).fetchone()
        record = _record(row) if row else None
        return (record if record is not None and record.is_current else None), row is not None

    def insert(self, record: CertificateRecord, wrapped_key: bytes | None = None) -> None:
        self._exec(
            'INSERT INTO certificates (%s) VALUES (%s)' % (_COLUMNS, ','.join('?' * 24)),
            (record.serial, record.identity, record.subject_text, json.dumps(record.subject, sort_keys=True),
             json.dumps(record.sans), record.profile, record.key_type, record.key_status, record.public_key_sha256,
             to_iso(record.not_before), to_iso(record.not_after), record.fingerprint_sha256, record.fingerprint_sha1,
             record.pem, to_iso(record.issued_at), record.status, int(record.is_current),
             int(record.pending_revocation), to_iso(record.revoked_at), record.revocation_reason, record.renews,
             record.renewed_by, to_iso(record.key_retain_until), to_iso(record.key_purged_at)))
        if wrapped_key is not None:
            self._exec('INSERT INTO held_keys (serial, wrapped, retain_until) VALUES (?, ?, ?)',
                       (record.serial, wrapped_key, to_iso(record.key_retain_until)))

    def supersede(self, old_serial: str, new_serial: str) -> None:
        """The old certificate stops being current, stays valid, and waits for revocation."""
        self._exec('UPDATE certificates SET is_current = 0, pending_revocation = 1 WHERE serial = ?', (old_serial,))

    def link_renewal(self, old_serial: str, new_serial: str) -> None:
        self._exec('UPDATE certificates SET renewed_by = ? WHERE serial = ?', (new_serial, old_serial))

    def revoke(self, serial: str, at, reason: str) -> None:
        rows = self._exec("UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?, "
                          "is_current = 0, pending_revocation = 0 WHERE serial = ? AND status = 'valid'",
                          (to_iso(at), reason, serial))
        if rows.rowcount:
            # In the same transaction as the revocation: a CRL published at this generation lists it.
            self._exec("INSERT INTO meta (key, value) VALUES ('revocation_generation', '1') ON CONFLICT(key) "
                       "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)")

    def revocation_generation(self) -> int:
        return int(self.get_meta('revocation_generation', 0))

    def revoked_entries(self) -> list:
        rows = self._exec("SELECT serial, revoked_at, revocation_reason FROM certificates WHERE status = 'revoked' "
                          "ORDER BY revoked_at, serial")
        return [RevokedEntry(serial=row[0], revoked_at=from_iso(row[1]), reason=row[2]) for row in rows]

    def counts(self, now) -> dict:
        now_text = to_iso(now)
        row = self._exec(
            "SELECT COUNT(*), "
            "SUM(status = 'valid' AND not_after > ?), "
            "SUM(status = 'revoked'), "
            "SUM(status = 'valid' AND not_after <= ?), "
            "SUM(pending_revocation = 1 AND status = 'valid'), "
            "COUNT(DISTINCT identity) FROM certificates", (now_text, now_text)).fetchone()
        return {'total': row[0], 'valid': row[1] or 0, 'revoked': row[2] or 0, 'expired': row[3] or 0,
                'pending_revocation': row[4] or 0, 'identities': row[5]}

    # -- deployments ------------------------------------------------------------------------------------------
    def record_deployment(self, identity: str, host: str, serial: str, stores: list, at) -> bool:
        """Remember that ``host`` carries ``serial`` for ``identity``; returns True when that is news."""
        row = self._exec('SELECT serial, stores FROM deployments WHERE identity = ? AND host = ?',
                         (identity, host)).fetchone()
        stores_text = json.dumps(sorted(stores or []))
        if row and row[0] == serial and row[1] == stores_text:
            return False
        self._exec('INSERT INTO deployments (identity, host, serial, stores, deployed_at) VALUES (?, ?, ?, ?, ?) '
                   'ON CONFLICT(identity, host) DO UPDATE SET serial = excluded.serial, stores = excluded.stores, '
                   'deployed_at = excluded.deployed_at', (identity, host, serial, stores_text, to_iso(at)))
        return True

    def remove_deployment(self, identity: str, host: str) -> bool:
        return bool(self._exec('DELETE FROM deployments WHERE identity = ? AND host = ?', (identity, host)).rowcount)

    def deployments(self, identities: list | None = None) -> list:
        sql = 'SELECT identity, host, serial, stores, deployed_at FROM deployments'
        params: list = []
        if identities is not None:
            if not identities:
                return []
            if len(identities) > 500:
                return [d for start in range(0, len(identities), 500)
                        for d in self.deployments(identities[start:start + 500])]
            sql += ' WHERE identity IN (%s)' % ','.join('?' * len(identities))
            params = list(identities)
        sql += ' ORDER BY identity, host'
        return [{'identity': row[0], 'host': row[1], 'serial': row[2], 'stores': json.loads(row[3]),
                 'deployed_at': row[4]} for row in self._exec(sql, params)]

    # -- drift audits --------------------------------------------------------------------------------------------
    def record_host_audit(self, host: str, at, summary: dict, findings: list) -> None:
        self._exec('INSERT INTO host_audits (host, audited_at, summary, findings) VALUES (?, ?, ?, ?) '
                   'ON CONFLICT(host) DO UPDATE SET audited_at = excluded.audited_at, summary = excluded.summary, '
                   'findings = excluded.findings',
                   (host, to_iso(at), json.dumps(summary, sort_keys=True), json.dumps(findings, sort_keys=True)))

    def host_audits(self) -> list:
        return [{'host': row[0], 'audited_at': row[1], 'summary': json.loads(row[2]), 'findings': json.loads(row[3])}
                for row in self._exec('SELECT host, audited_at, summary, findings FROM host_audits ORDER BY host')]

    # -- bulk request lines -------------------------------------------------------------------------------------
    def record_request_rows(self, rows: list) -> None:
        self._exec_many('INSERT INTO request_rows (digest, action, identity, serial, previous_serial, batch, line, '
                        'processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                        [(r['digest'], r['action'], r['identity'], r['serial'], r['previous_serial'], r['batch'],
                          r['line'], to_iso(r['processed_at'])) for r in rows])

    def request_rows(self, digests: list) -> list:
        found = []
        for start in range(0, len(digests), 500):
            part = digests[start:start + 500]
            found += [{'digest': row[0], 'action': row[1], 'identity': row[2], 'serial': row[3],
                       'previous_serial': row[4], 'batch': row[5], 'line': row[6], 'processed_at': from_iso(row[7])}
                      for row in self._exec('SELECT digest, action, identity, serial, previous_serial, batch, line, '
                                            'processed_at FROM request_rows WHERE digest IN (%s) ORDER BY rowid'
                                            % ','.join('?' * len(part)), part)]
        return found

    # -- pickups ----------------------------------------------------------------------------------------------
    def insert_pickup(self, pickup: PickupRecord) -> None:
        self._exec('INSERT INTO pickups (%s) VALUES (%s)'
                   % (', '.join(PICKUP_COLUMNS), ','.join('?' * len(PICKUP_COLUMNS))), pickup_row(pickup))

    def get_pickup(self, pickup_id: str) -> PickupRecord | None:
        row = self._exec('SELECT %s FROM pickups WHERE pickup_id = ?' % ', '.join(PICKUP_COLUMNS),
                         (pickup_id,)).fetchone()
        return pickup_from_row(row) if row else None

    def find_pickups(self, identity: str | None = None, serial: str | None = None, open_only: bool = False) -> list:
        clauses, params = [], []
        if identity is not None:
            clauses.append('identity = ?')
            params.append(identity)
        if serial is not None:
            clauses.append('serial = ?')
            params.append(serial)
        if open_only:
            clauses.append('closed_at IS NULL')
        sql = 'SELECT %s FROM pickups' % ', '.join(PICKUP_COLUMNS)
        if clauses:
            sql += ' WHERE ' + ' AND '.join(clauses)
        return [pickup_from_row(row) for row in self._exec(sql + ' ORDER BY created_at, pickup_id', params)]

    def update_pickup(self, pickup_id: str, changes: dict) -> bool:
        names, values = pickup_changes(changes)
        if not names:
            return self.get_pickup(pickup_id) is not None
        return bool(self._exec('UPDATE pickups SET %s WHERE pickup_id = ?' % ', '.join('%s = ?' % n for n in names),
                               values + [pickup_id]).rowcount)

    # -- held keys --------------------------------------------------------------------------------------------
    def wrapped_key(self, serial: str) -> bytes | None:
        row = self._exec('SELECT wrapped FROM held_keys WHERE serial = ?', (serial,)).fetchone()
        return bytes(row[0]) if row else None

    def purge_keys(self, now) -> None:
        now_text = to_iso(now)
        serials = [row[0] for row in self._exec('SELECT serial FROM held_keys WHERE retain_until <= ?', (now_text,))]
        if serials:
            marks = ','.join('?' * len(serials))
            self._exec('DELETE FROM held_keys WHERE serial IN (%s)' % marks, serials)
            self._exec('UPDATE certificates SET key_status = ?, key_purged_at = ? WHERE serial IN (%s)' % marks,
                       [KEY_PURGED, now_text] + serials)

    def drop_key(self, serial: str, now) -> bool:
        cursor = self._exec('DELETE FROM held_keys WHERE serial = ?', (serial,))
        if cursor.rowcount:
            self._exec('UPDATE certificates SET key_status = ?, key_purged_at = ? WHERE serial = ? AND key_status = ?',
                       (KEY_PURGED, to_iso(now), serial, KEY_HELD))
        return bool(cursor.rowcount)

    # -- audit ------------------------------------------------------------------------------------------------
    def append_audit(self, at, action: str, identity: str | None, serials: list, outcome: str,
                     detail: dict | None = None) -> None:
        self._exec('INSERT INTO audit (at, action, identity, serials, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)',
                   (to_iso(at), action, identity, json.dumps(list(serials)), outcome,
                    json.dumps(detail or {}, sort_keys=True)))

    def audit_entries(self, identity: str | None = None, limit: int | None = None) -> list:
        sql = 'SELECT id, at, action, identity, serials, outcome, detail FROM audit'
        params: list = []
        if identity is not None:
            sql += ' WHERE identity = ?'
            params.append(identity)
        sql += ' ORDER BY id DESC' if limit else ' ORDER BY id'
        if limit:
            sql += ' LIMIT %d' % int(limit)
        rows = list(self._exec(sql, params))
        if limit:
            rows.reverse()
        return [{'id': row[0], 'at': row[1], 'action': row[2], 'identity': row[3], 'serials': json.loads(row[4]),
                 'outcome': row[5], 'detail': json.loads(row[6])} for row in rows]

    # -- whole-state copy -------------------------------------------------------------------------------------
    def export_rows(self, table: str, columns: tuple):
        # Tables with a natural key go in key order, as PostgreSQL gives them, so a copy compares equal either way.
        order = _KEY_ORDER.get(table, 'rowid')
        return iter(self._exec('SELECT %s FROM %s ORDER BY %s' % (', '.join(columns), _known(table), order)))

    def import_rows(self, table: str, columns: tuple, rows: list) -> None:
        self._exec_many('INSERT INTO %s (%s) VALUES (%s)' % (_known(table), ', '.join(columns),
                                                             ', '.join('?' * len(columns))), rows)

    def import_links(self, links: list) -> None:
        self._exec_many('UPDATE certificates SET renews = ?, renewed_by = ? WHERE serial = ?', links)


_KEY_ORDER = {'deployments': 'identity, host', 'host_audits': 'host', 'pickups': 'pickup_id'}


def _known(table: str) -> str:
    if table not in REQUIRED_TABLES:
        raise StoreError('unknown table %r' % table)
    return table


def _split_sql(script: str) -> list:
    """Split a migration into statements; triggers keep their inner semicolons."""
    statements, buffer = [], []
    for line in script.strip().splitlines():
        buffer.append(line)
        text = '\n'.join(buffer).strip()
        if text.endswith(';') and sqlite3.complete_statement(text):
            statements.append(text)
            buffer = []
    if buffer and '\n'.join(buffer).strip():
        statements.append('\n'.join(buffer).strip())
    return statements
