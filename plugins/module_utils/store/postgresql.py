# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared store: PostgreSQL through psycopg 3 (private module_utils).

The state lives in one schema, ``certfleet``, of the database the store URL names (libpq URL forms; the ``PG*``
environment variables fill what the URL leaves out). A store being created is built in ``certfleet_new`` and
becomes the state when :meth:`PostgreSQLStore.activate` renames the schema (one transactional step).

Concurrency: every write transaction takes the ``meta`` table's EXCLUSIVE lock first, so writers run one after the
other like SQLite's BEGIN IMMEDIATE while readers (plain SELECTs) are never blocked; statements after the lock see
everything committed before it (READ COMMITTED), so a read-modify-write inside ``write()`` loses nothing. A read is
one REPEATABLE READ, READ ONLY transaction: one snapshot. The schema enforces the same invariants as the SQLite
store, with PL/pgSQL triggers: one current certificate per identity, unique serials and fingerprints, a revoked
certificate stays revoked, certificates are never deleted, and the audit log is append-only.

The store URL may carry a password: it is never repeated. ``location`` and every message name the store as
``postgresql://USER@HOST:PORT/DBNAME``.
"""

from __future__ import annotations

import contextlib
import json
import os

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # only users of the PostgreSQL store need psycopg
    psycopg = None
    pg_errors = None
    conninfo_to_dict = make_conninfo = None

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    InputError, StoreDamagedError, StoreError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import from_iso, to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import (
    CertificateRecord, CertificateStore, KEY_HELD, KEY_PURGED, PICKUP_COLUMNS, PickupRecord, RevokedEntry,
    pickup_changes, pickup_from_row, pickup_row,
)

# Several statements in one round trip (libpq 14 and later; psycopg[binary] brings its own).
_PIPELINE = psycopg is not None and psycopg.Pipeline.is_supported()

STATE_SCHEMA = 'certfleet'
STAGING_SCHEMA = 'certfleet_new'
LOCK_TIMEOUT_SECONDS = 120
CONNECT_TIMEOUT_SECONDS = 10
MIGRATION_LOCK_KEY = 0x43464B49  # 'CFKI': the advisory lock migrations of a database take
CREATION_LOCK_KEY = MIGRATION_LOCK_KEY + 1  # held by the one process creating the state
EXCLUSIVE_LOCK_KEY = MIGRATION_LOCK_KEY + 2  # exclusive(): CRL publication
PSYCOPG_REQUIREMENT = 'psycopg >= 3.1'
RECOVERY_HINT = 'see "Backup and recovery" in the certfleet.pki README'

# Raised by the integrity triggers with SQLSTATE 23001 (restrict_violation): an integrity error like a constraint.
_TRIGGERS = """
CREATE FUNCTION certfleet_refuse() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'restrict_violation';
END
$body$;
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION certfleet_refuse('the audit log is append-only');
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION certfleet_refuse('the audit log is append-only');
CREATE TRIGGER audit_append_only_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION certfleet_refuse('the audit log is append-only');
CREATE TRIGGER certificates_never_deleted BEFORE DELETE ON certificates
    FOR EACH ROW EXECUTE FUNCTION certfleet_refuse('certificates are never deleted from the store');
CREATE TRIGGER certificates_never_truncated BEFORE TRUNCATE ON certificates
    FOR EACH STATEMENT EXECUTE FUNCTION certfleet_refuse('certificates are never deleted from the store');
CREATE TRIGGER certificates_stay_revoked BEFORE UPDATE OF status ON certificates
    FOR EACH ROW WHEN (OLD.status = 'revoked' AND NEW.status <> 'revoked')
    EXECUTE FUNCTION certfleet_refuse('a revoked certificate stays revoked');
"""

# Text columns that are compared or ordered use the "C" collation: byte order, as SQLite compares, whatever the
# database's locale (ISO timestamps compare as text).
_SCHEMA_V1 = """
CREATE TABLE meta (
    key TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE certificates (
    serial TEXT COLLATE "C" PRIMARY KEY,
    identity TEXT COLLATE "C" NOT NULL,
    subject TEXT NOT NULL,
    subject_json TEXT NOT NULL,
    sans_json TEXT NOT NULL,
    profile TEXT NOT NULL,
    key_type TEXT NOT NULL,
    key_status TEXT NOT NULL CHECK (key_status IN ('held', 'purged', 'endpoint')),
    public_key_sha256 TEXT NOT NULL,
    not_before TEXT COLLATE "C" NOT NULL,
    not_after TEXT COLLATE "C" NOT NULL,
    fingerprint_sha256 TEXT NOT NULL UNIQUE,
    fingerprint_sha1 TEXT NOT NULL,
    pem TEXT NOT NULL,
    issued_at TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked')),
    is_current BOOLEAN NOT NULL DEFAULT FALSE,
    pending_revocation BOOLEAN NOT NULL DEFAULT FALSE,
    revoked_at TEXT COLLATE "C",
    revocation_reason TEXT,
    renews TEXT COLLATE "C" REFERENCES certificates(serial),
    renewed_by TEXT COLLATE "C" REFERENCES certificates(serial),
    key_retain_until TEXT COLLATE "C",
    key_purged_at TEXT COLLATE "C"
);
CREATE UNIQUE INDEX certificates_one_current ON certificates(identity) WHERE is_current;
CREATE INDEX certificates_identity ON certificates(identity, issued_at);
CREATE INDEX certificates_not_after ON certificates(not_after);
CREATE INDEX certificates_revoked ON certificates(status) WHERE status = 'revoked';
CREATE TABLE held_keys (
    serial TEXT COLLATE "C" PRIMARY KEY REFERENCES certificates(serial),
    wrapped BYTEA NOT NULL,
    retain_until TEXT COLLATE "C" NOT NULL
);
CREATE INDEX held_keys_retain_until ON held_keys(retain_until);
CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    identity TEXT COLLATE "C",
    serials TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_identity ON audit(identity, id);
""" + _TRIGGERS

_SCHEMA_V2 = """
CREATE TABLE deployments (
    identity TEXT COLLATE "C" NOT NULL,
    host TEXT COLLATE "C" NOT NULL,
    serial TEXT COLLATE "C" NOT NULL REFERENCES certificates(serial),
    stores TEXT NOT NULL DEFAULT '[]',
    deployed_at TEXT NOT NULL,
    PRIMARY KEY (identity, host)
);
CREATE INDEX deployments_serial ON deployments(serial);
"""

_SCHEMA_V3 = """
CREATE TABLE request_rows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest TEXT COLLATE "C" NOT NULL,
    action TEXT NOT NULL,
    identity TEXT,
    serial TEXT COLLATE "C" NOT NULL REFERENCES certificates(serial),
    previous_serial TEXT,
    batch TEXT NOT NULL,
    line INTEGER NOT NULL,
    processed_at TEXT NOT NULL
);
CREATE INDEX request_rows_digest ON request_rows(digest);
"""

_SCHEMA_V4 = """
CREATE TABLE host_audits (
    host TEXT COLLATE "C" PRIMARY KEY,
    audited_at TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}',
    findings TEXT NOT NULL DEFAULT '[]'
);
"""

_SCHEMA_V5 = """
CREATE TABLE pickups (
    pickup_id TEXT COLLATE "C" PRIMARY KEY,
    identity TEXT COLLATE "C" NOT NULL,
    serial TEXT COLLATE "C" NOT NULL REFERENCES certificates(serial),
    token_hash TEXT NOT NULL,
    pin_hash TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('pkcs12-modern', 'pkcs12-legacy', 'mobileconfig')),
    lock_after_first_days INTEGER CHECK (lock_after_first_days > 0),
    expires_at TEXT COLLATE "C",
    max_downloads INTEGER NOT NULL DEFAULT 1 CHECK (max_downloads > 0),
    downloads INTEGER NOT NULL DEFAULT 0 CHECK (downloads >= 0),
    first_pickup_at TEXT COLLATE "C",
    failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    max_attempts INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    locked_at TEXT COLLATE "C",
    closed_at TEXT COLLATE "C",
    close_reason TEXT,
    renewal_of TEXT COLLATE "C" REFERENCES certificates(serial),
    confirmed_at TEXT COLLATE "C"
);
CREATE INDEX pickups_identity ON pickups(identity, created_at);
CREATE INDEX pickups_serial ON pickups(serial);
CREATE INDEX pickups_open ON pickups(created_at) WHERE closed_at IS NULL;
"""

# version -> SQL that brings the previous version to it. Append only; never edit a released step. The versions
# are those of the SQLite store: one schema version means the same content on both engines.
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

# Does the state schema exist, its schema version (query_to_xml runs only when the table exists: CASE), its tables.
_OPENING_QUERY = """
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s),
       CASE WHEN to_regclass(%(schema)s || '.schema_migrations') IS NOT NULL THEN
           (xpath('/row/v/text()', query_to_xml(format('SELECT max(version) AS v FROM %%I.schema_migrations',
                                                       %(schema)s), false, true, '')))[1]::text::int
       END,
       ARRAY(SELECT tablename::text FROM pg_tables WHERE schemaname = %(schema)s)
"""

# A module run's opening in one round trip when the state is there: the session's settings, the schema version
# and the meta values the caller will read first (key, JSON text pairs). It fails (no schema, no table) on any other
# state, which then takes the path above. A table missing at this version is damage, reported when first used
# (store_damaged): a lookup per table here cost a module run 0.3 ms on a cold server session.
_FAST_OPENING_QUERY = """
SELECT set_config('search_path', %(schema)s, false), set_config('lock_timeout', %(lock_timeout)s, false),
       (SELECT max(version) FROM {schema}.schema_migrations),
       ARRAY(SELECT ARRAY[key, value] FROM {schema}.meta WHERE key = ANY(%(keys)s::text[]))
"""

_VERSIONS_TABLE = """
CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

_COLUMNS = ('serial, identity, subject, subject_json, sans_json, profile, key_type, key_status, public_key_sha256, '
            'not_before, not_after, fingerprint_sha256, fingerprint_sha1, pem, issued_at, status, is_current, '
            'pending_revocation, revoked_at, revocation_reason, renews, renewed_by, key_retain_until, key_purged_at')
_CURRENT_QUERY = 'SELECT %s FROM certificates WHERE identity = %%s AND is_current' % _COLUMNS
# The current certificate, else any: whether the identity has a history at all (current_with_history).
_HISTORY_QUERY = 'SELECT %s FROM certificates WHERE identity = %%s ORDER BY is_current DESC LIMIT 1' % _COLUMNS


def require_psycopg() -> None:
    if psycopg is None:
        error = StoreError('the PostgreSQL store (ca_store) needs the Python library %s on the host that runs the '
                           'CA modules: pip install "psycopg[binary]"' % PSYCOPG_REQUIREMENT, 'ca_store',
                           code='missing_library')
        error.library = PSYCOPG_REQUIREMENT  # for Ansible's missing_required_lib message
        raise error


def connection_settings(store_url: str) -> dict:
    """The libpq settings of a store URL. A URL libpq cannot parse is refused without repeating it."""
    require_psycopg()
    try:
        return conninfo_to_dict(store_url)
    except psycopg.Error:
        raise InputError('is not a valid PostgreSQL connection URL (expected postgresql://USER@HOST:PORT/DBNAME or '
                         'postgresql:///DBNAME?host=SOCKET_DIR)', 'ca_store')


def safe_location(settings: dict) -> str:
    """postgresql://USER@HOST:PORT/DBNAME: the store's name for messages, never with its password. What the URL
    leaves out is named as libpq will take it, from the PG* environment variables."""
    user = settings.get('user') or os.environ.get('PGUSER') or ''
    host = settings.get('host') or settings.get('hostaddr') or os.environ.get('PGHOST') or ''
    port = settings.get('port') or os.environ.get('PGPORT') or ''
    dbname = settings.get('dbname') or os.environ.get('PGDATABASE') or ''
    if host.startswith('/'):
        return 'postgresql://%s/%s?host=%s%s' % (user and user + '@', dbname, host, port and '&port=' + port)
    return 'postgresql://%s%s%s/%s' % (user and user + '@', host, port and ':' + port, dbname)


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


class _Rows:
    """A statement's rows, fetched inside the translated call."""

    def __init__(self, cursor):
        self.rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if cursor.description is not None else []

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def __iter__(self):
        return iter(self._rows)


class PostgreSQLStore(CertificateStore):
    """The ``certfleet`` schema of one PostgreSQL database (``certfleet_new`` while being created)."""

    def __init__(self, store_url: str, create: bool = False, lock_timeout: float = LOCK_TIMEOUT_SECONDS,
                 prefetch_meta=(), prefetch_identity: str | None = None):
        settings = connection_settings(store_url)
        self._location = safe_location(settings)
        self._password = settings.get('password')
        self.lock_timeout = lock_timeout
        self._created = create
        self._schema = STAGING_SCHEMA if create else STATE_SCHEMA
        self._in_transaction = False
        self._conn = None
        self._current = None
        self._prefetched = {}  # meta values read while opening, for the first get_meta_many that asks for them
        self._deferred = []  # writes whose answer nobody reads: sent with the next statement or the COMMIT
        self._open_pipeline = None  # statements sent by _send_later whose answers are not read yet
        self._history_later = None  # (identity, rows) asked while opening, for the first current_with_history
        settings.setdefault('connect_timeout', str(CONNECT_TIMEOUT_SECONDS))
        settings.setdefault('application_name', 'certfleet.pki')
        try:
            self._conn = psycopg.connect(make_conninfo(**settings), autocommit=True)
        except psycopg.Error as exc:
            raise StoreError('cannot connect to the PostgreSQL store %s: %s' % (self._location, self._reason(exc)),
                             'ca_store', code='store_unreachable')
        try:
            if create:
                # One creation at a time per database: the lock lasts until activate/discard closes the session.
                self._exec('SELECT pg_advisory_lock(%s)', (CREATION_LOCK_KEY,))
                self._refuse_existing_state()
                self._exec('DROP SCHEMA IF EXISTS %s CASCADE' % STAGING_SCHEMA)
                self._exec('CREATE SCHEMA %s' % STAGING_SCHEMA)
            elif self._opened_current(prefetch_meta):
                if prefetch_identity is not None and _PIPELINE:
                    # Answered while the caller unlocks the CA's key and checks its request.
                    self._history_later = (prefetch_identity, self._send_later(_HISTORY_QUERY, (prefetch_identity,)))
                return
            elif not self._state_is_current():
                raise StoreError('the PostgreSQL store %s does not exist (no %s schema in the database); create the '
                                 'CA there first' % (self._location, STATE_SCHEMA), 'ca_store', code='store_missing')
            # Both settings in one round trip (a statement without parameters may hold several).
            self._exec("SET lock_timeout = '%ds'; SET search_path TO %s" % (int(lock_timeout), self._schema))
            if self._current is not True:
                self._migrate(create)
        except BaseException:
            self.close()
            raise

    # -- naming and errors ------------------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return self._location

    def _reason(self, exc: BaseException) -> str:
        """The server's or libpq's words, first line, with the password blanked should it ever appear."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if self._password:
            text = text.replace(self._password, '********')
        return text

    def _translate(self, exc: BaseException) -> StoreError:
        reason = self._reason(exc)
        if isinstance(exc, (pg_errors.DataCorrupted, pg_errors.IndexCorrupted)):
            return StoreDamagedError('the PostgreSQL store %s is damaged (PostgreSQL: %s); stop using this CA and '
                                     'restore the database from a backup, %s' % (self._location, reason,
                                                                                 RECOVERY_HINT), 'ca_store')
        if isinstance(exc, psycopg.IntegrityError):
            return StoreError('the store refused a change: %s' % reason)
        if isinstance(exc, pg_errors.LockNotAvailable):
            return StoreError('the PostgreSQL store %s stayed locked for more than %d seconds (PostgreSQL: %s)'
                              % (self._location, self.lock_timeout, reason), 'ca_store')
        if isinstance(exc, pg_errors.UndefinedTable):
            # Found when first used: a module run does not spend a catalog lookup per table to look at opening.
            return StoreDamagedError('the PostgreSQL store %s lacks a table (PostgreSQL: %s); it is damaged: restore '
                                     'the database from a backup, %s' % (self._location, reason, RECOVERY_HINT),
                                     'ca_store')
        if isinstance(exc, psycopg.OperationalError) or (self._conn is not None and self._conn.broken):
            return StoreError('lost the connection to the PostgreSQL store %s (%s); the transaction it cut off was '
                              'not committed (PostgreSQL never keeps part of one)' % (self._location, reason),
                              'ca_store', code='store_unreachable')
        return StoreError('the PostgreSQL store %s: %s' % (self._location, reason), 'ca_store')

    def _finish_pipeline(self) -> None:
        """Read every answer of the statements _send_later sent; the first error among them is raised here."""
        stack, self._open_pipeline = self._open_pipeline, None
        if stack is not None:
            try:
                stack.close()
            except psycopg.Error as exc:
                raise self._translate(exc) from None

    def _drop_pipeline(self) -> None:
        with contextlib.suppress(Exception):
            self._finish_pipeline()

    def _exec(self, sql: str, params=None) -> _Rows:
        if self._conn is None:
            raise StoreError('the PostgreSQL store %s is closed' % self._location)
        self._finish_pipeline()
        try:
            if self._deferred:
                return _Rows(self._pipelined([(sql, params)]))
            return _Rows(self._conn.execute(sql, params))
        except psycopg.Error as exc:
            raise self._translate(exc) from None

    def _write(self, sql: str, params) -> None:
        """A write inside a transaction whose result nobody reads: it travels with the next statement (one round
        trip for several). Its error, if any, is raised there, inside the same transaction, which then rolls
        back whole."""
        if self._in_transaction and _PIPELINE:
            self._deferred.append((sql, params))
        else:
            self._exec(sql, params)

    def _pipelined(self, statements: list):
        """The deferred writes and ``statements`` in one round trip; the last statement's cursor."""
        pending, self._deferred = self._deferred, []
        cursor = None
        with self._conn.pipeline():
            for sql, params in pending + statements:
                # Never prepared: psycopg keeps a statement prepared in a pipeline that an error aborted in its cache
                # although the server never prepared it ("prepared statement _pg3_N does not exist" next time).
                cursor = self._conn.execute(sql, params, prepare=False)
        return cursor

    def _exec_many(self, sql: str, rows: list) -> None:
        self._finish_pipeline()
        try:
            if self._deferred:
                self._pipelined([])
            with self._conn.cursor() as cursor:
                cursor.executemany(sql, rows)
        except psycopg.Error as exc:
            raise self._translate(exc) from None

    def _schema_exists(self, name: str) -> bool:
        return self._exec('SELECT 1 FROM pg_namespace WHERE nspname = %s', (name,)).fetchone() is not None

    # -- opening, creating ------------------------------------------------------------------------------------
    def _opened_current(self, prefetch_meta) -> bool:
        """Open a state at this version with every table in one round trip, reading ``prefetch_meta`` along;
        False (nothing set) otherwise."""
        keys = list(prefetch_meta)
        try:
            row = self._conn.execute(_FAST_OPENING_QUERY.format(schema=STATE_SCHEMA),
                                     {'schema': STATE_SCHEMA, 'lock_timeout': '%ds' % int(self.lock_timeout),
                                      'keys': keys}).fetchone()
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return False  # no state, or an older one: the full path names and migrates it
        except psycopg.Error as exc:
            raise self._translate(exc) from None
        if row[2] != SCHEMA_VERSION:
            self._exec('RESET search_path; RESET lock_timeout')
            return False
        self._current = True
        self._prefetched = dict.fromkeys(keys)
        self._prefetched.update((key, json.loads(value)) for key, value in row[3])
        return True

    def _state_is_current(self) -> bool:
        """Whether the state schema exists; also notes (``_current``) whether it is at this version with every
        table, so that a module run opens the store in one round trip instead of four."""
        exists, version, tables = self._exec(_OPENING_QUERY, {'schema': STATE_SCHEMA}).fetchone()
        self._current = bool(exists and version == SCHEMA_VERSION and REQUIRED_TABLES <= set(tables or ()))
        return bool(exists)

    def _version(self) -> int:
        if self._exec("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return 0
        return self._exec('SELECT COALESCE(MAX(version), 0) FROM schema_migrations').fetchone()[0]

    def _migrate(self, create: bool) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StoreError('the PostgreSQL store %s has schema version %d, newer than this certfleet.pki supports '
                             '(%d); upgrade the collection' % (self._location, version, SCHEMA_VERSION), 'ca_store')
        if version < SCHEMA_VERSION:
            if version == 0 and not create:
                raise StoreError('the PostgreSQL store %s holds no certfleet schema' % self._location, 'ca_store')
            with self._transaction('BEGIN'):
                self._exec('SELECT pg_advisory_xact_lock(%s)', (MIGRATION_LOCK_KEY,))
                version = self._version()  # another process may have migrated meanwhile
                if version == 0:
                    self._exec(_VERSIONS_TABLE)
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    self._exec(MIGRATIONS[target])
                    self._exec('INSERT INTO schema_migrations (version) VALUES (%s)', (target,))
        self._check_tables()

    def _check_tables(self) -> None:
        rows = self._exec('SELECT tablename FROM pg_tables WHERE schemaname = %s', (self._schema,))
        missing = REQUIRED_TABLES - {row[0] for row in rows}
        if missing:
            raise StoreDamagedError('the PostgreSQL store %s lacks the tables %s; it is damaged: restore the '
                                    'database from a backup, %s' % (self._location, ', '.join(sorted(missing)),
                                                                    RECOVERY_HINT), 'ca_store')

    @property
    def schema_version(self) -> int:
        return self._version()

    def activate(self) -> None:
        """Rename the staging schema to the state schema (refused if a state exists already), and close."""
        self._require_created('activate')
        try:
            with self._transaction('BEGIN'):
                self._refuse_existing_state()
                self._exec('ALTER SCHEMA %s RENAME TO %s' % (STAGING_SCHEMA, STATE_SCHEMA))
        finally:
            self.close()
        self._created = False
        self._schema = STATE_SCHEMA

    def _refuse_existing_state(self) -> None:
        if self._schema_exists(STATE_SCHEMA):
            raise StoreError('the PostgreSQL store %s holds a CA already; it is never replaced' % self._location,
                             'ca_store', code='store_exists')

    @contextlib.contextmanager
    def exclusive(self):
        """A lock between processes on every node, held across transactions (a session advisory lock)."""
        if self._in_transaction:
            raise StoreError('exclusive() is taken outside transactions')
        self._exec('SELECT pg_advisory_lock(%s)', (EXCLUSIVE_LOCK_KEY,))
        try:
            yield self
        finally:
            with contextlib.suppress(StoreError):
                self._exec('SELECT pg_advisory_unlock(%s)', (EXCLUSIVE_LOCK_KEY,))

    def discard(self) -> None:
        self._require_created('discard')
        try:
            self._exec('DROP SCHEMA IF EXISTS %s CASCADE' % STAGING_SCHEMA)
        finally:
            self.close()

    def _require_created(self, action: str) -> None:
        if not self._created:
            raise StoreError('cannot %s the PostgreSQL store %s: only a store being created can be'
                             % (action, self._location))

    def close(self) -> None:
        self._drop_pipeline()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # -- transactions -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, *begin: str):
        """``begin``: the statements that open the transaction. They travel with its first statement (one round
        trip less); an error in them is raised there, and the transaction rolls back."""
        if _PIPELINE:
            self._deferred = [(statement, None) for statement in begin]
        else:
            try:
                self._exec('; '.join(begin))  # a statement without parameters may hold several
            except BaseException:
                self._rollback_quietly()  # the second statement may have failed after BEGIN
                raise
        self._in_transaction = True
        try:
            yield self
            self._commit()
        except BaseException:
            self._rollback_quietly()
            raise
        finally:
            self._in_transaction = False

    def _commit(self) -> None:
        try:
            self._exec('COMMIT')
        except StoreError as err:
            if err.code != 'store_unreachable':
                raise
            raise StoreError('lost the connection to the PostgreSQL store %s while committing: the transaction was '
                             'kept whole or not at all, never in part; look at the store before repeating the '
                             'operation' % self._location, 'ca_store', code='store_unreachable') from None

    def _rollback_quietly(self) -> None:
        self._deferred = []
        self._drop_pipeline()
        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(Exception):
            conn.execute('ROLLBACK')

    @contextlib.contextmanager
    def write(self):
        if self._in_transaction:
            raise StoreError('nested write transaction')
        self._prefetched = {}
        self._history_later = None  # read before this write: not an answer after it
        # One writer at a time; readers are not blocked (EXCLUSIVE conflicts with writes, not with SELECT).
        with self._transaction('BEGIN ISOLATION LEVEL READ COMMITTED', 'LOCK TABLE meta IN EXCLUSIVE MODE'):
            yield self

    @contextlib.contextmanager
    def read(self):
        if self._in_transaction:
            yield self
            return
        with self._transaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'):
            yield self

    def check_integrity(self) -> None:
        """Read every row of every table, TOASTed values included (data checksums, when the cluster has them,
        are verified on each page read), and check the schema's tables are all there."""
        self._check_tables()
        for table in sorted(REQUIRED_TABLES):
            self._exec("SELECT COUNT(*), SUM(pg_column_size(t.*)) FROM %s AS t" % table)

    # -- meta -------------------------------------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self._exec('SELECT value FROM meta WHERE key = %s', (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def get_meta_many(self, keys) -> dict:
        values = dict.fromkeys(keys)
        if values and not self._in_transaction and set(values) <= set(self._prefetched):
            # read while opening, and nothing written since by this session: served once
            return {key: self._prefetched.pop(key) for key in values}
        if values:
            rows = self._exec('SELECT key, value FROM meta WHERE key = ANY(%s)', (list(values),))
            values.update((key, json.loads(value)) for key, value in rows)
        return values

    def set_meta(self, key: str, value) -> None:
        self._write('INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = '
                    'excluded.value', (key, json.dumps(value, sort_keys=True)))

    # -- certificates -----------------------------------------------------------------------------------------
    def current(self, identity: str) -> CertificateRecord | None:
        row = self._exec(_CURRENT_QUERY, (identity,)).fetchone()
        return _record(row) if row else None

    def current_later(self, identity: str):
        """The question and the transaction's waiting writes are sent at once; the server answers while the caller
        works, and the answer is read when asked for."""
        if not (self._in_transaction and _PIPELINE) or self._open_pipeline is not None:
            return super().current_later(identity)
        rows = self._send_later(_CURRENT_QUERY, (identity,))

        def answer() -> CertificateRecord | None:
            row = rows().fetchone()
            return _record(row) if row else None
        return answer

    def _send_later(self, sql: str, params):
        """Send the waiting writes and ``sql`` without waiting for the server; the returned function reads its rows
        (the first error of any of them is raised there). Nothing else is sent before that."""
        pending, self._deferred = self._deferred, []
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(self._conn.pipeline())
            self._open_pipeline = stack
            for statement, values in pending:
                self._conn.execute(statement, values, prepare=False)  # never prepared: see _pipelined
            cursor = self._conn.execute(sql, params, prepare=False)
        except psycopg.Error as exc:
            self._drop_pipeline()
            raise self._translate(exc) from None

        def rows() -> _Rows:
            self._finish_pipeline()
            try:
                return _Rows(cursor)
            except psycopg.Error as exc:
                raise self._translate(exc) from None
        return rows

    def get(self, serial: str) -> CertificateRecord | None:
        row = self._exec('SELECT %s FROM certificates WHERE serial = %%s' % _COLUMNS, (serial,)).fetchone()
        return _record(row) if row else None

    def find(self, identity: str | None = None, serials: list | None = None, identities: list | None = None) -> list:
        clauses, params = [], []
        if identity is not None:
            clauses.append('identity = %s')
            params.append(identity)
        if identities is not None:
            if not identities:
                return []
            clauses.append('identity = ANY(%s)')
            params.append(list(identities))
        if serials is not None:
            if not serials:
                return []
            clauses.append('serial = ANY(%s)')
            params.append(list(serials))
        sql = 'SELECT %s FROM certificates' % _COLUMNS
        if clauses:
            sql += ' WHERE ' + ' AND '.join(clauses)
        sql += ' ORDER BY identity, issued_at, serial'
        return [_record(row) for row in self._exec(sql, params)]

    def serial_exists(self, serial: str) -> bool:
        return self._exec('SELECT 1 FROM certificates WHERE serial = %s', (serial,)).fetchone() is not None

    def identity_has_history(self, identity: str) -> bool:
        return self._exec('SELECT 1 FROM certificates WHERE identity = %s LIMIT 1', (identity,)).fetchone() is not None

    def current_with_history(self, identity: str) -> tuple:
        asked = self._history_later
        if asked is not None and asked[0] == identity and not self._in_transaction:
            self._history_later = None
            row = asked[1]().fetchone()  # asked while the store opened (prefetch_identity)
        else:
            row = self._exec(_HISTORY_QUERY, (identity,)).fetchone()
        record = _record(row) if row else None
        return (record if record is not None and record.is_current else None), row is not None

    def insert(self, record: CertificateRecord, wrapped_key: bytes | None = None) -> None:
        self._write(
            'INSERT INTO certificates (%s) VALUES (%s)' % (_COLUMNS, ', '.join(['%s'] * 24)),
            (record.serial, record.identity, record.subject_text, json.dumps(record.subject, sort_keys=True),
             json.dumps(record.sans), record.profile, record.key_type, record.key_status, record.public_key_sha256,
             to_iso(record.not_before), to_iso(record.not_after), record.fingerprint_sha256, record.fingerprint_sha1,
             record.pem, to_iso(record.issued_at), record.status, bool(record.is_current),
             bool(record.pending_revocation), to_iso(record.revoked_at), record.revocation_reason, record.renews,
             record.renewed_by, to_iso(record.key_retain_until), to_iso(record.key_purged_at)))
        if wrapped_key is not None:
            self._write('INSERT INTO held_keys (serial, wrapped, retain_until) VALUES (%s, %s, %s)',
                        (record.serial, wrapped_key, to_iso(record.key_retain_until)))

    def supersede(self, old_serial: str, new_serial: str) -> None:
        self._write('UPDATE certificates SET is_current = FALSE, pending_revocation = TRUE WHERE serial = %s',
                    (old_serial,))

    def link_renewal(self, old_serial: str, new_serial: str) -> None:
        self._write('UPDATE certificates SET renewed_by = %s WHERE serial = %s', (new_serial, old_serial))

    def revoke(self, serial: str, at, reason: str) -> None:
        rows = self._exec("UPDATE certificates SET status = 'revoked', revoked_at = %s, revocation_reason = %s, "
                          "is_current = FALSE, pending_revocation = FALSE WHERE serial = %s AND status = 'valid'",
                          (to_iso(at), reason, serial))
        if rows.rowcount:
            # In the same transaction as the revocation: a CRL published at this generation lists it.
            self._exec("INSERT INTO meta (key, value) VALUES ('revocation_generation', '1') ON CONFLICT (key) "
                       "DO UPDATE SET value = (meta.value::bigint + 1)::text")

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
            "COUNT(*) FILTER (WHERE status = 'valid' AND not_after > %s), "
            "COUNT(*) FILTER (WHERE status = 'revoked'), "
            "COUNT(*) FILTER (WHERE status = 'valid' AND not_after <= %s), "
            "COUNT(*) FILTER (WHERE pending_revocation AND status = 'valid'), "
            "COUNT(DISTINCT identity) FROM certificates", (now_text, now_text)).fetchone()
        return {'total': row[0], 'valid': row[1], 'revoked': row[2], 'expired': row[3],
                'pending_revocation': row[4], 'identities': row[5]}

    # -- deployments ------------------------------------------------------------------------------------------
    def record_deployment(self, identity: str, host: str, serial: str, stores: list, at) -> bool:
        row = self._exec('SELECT serial, stores FROM deployments WHERE identity = %s AND host = %s',
                         (identity, host)).fetchone()
        stores_text = json.dumps(sorted(stores or []))
        if row and row[0] == serial and row[1] == stores_text:
            return False
        self._exec('INSERT INTO deployments (identity, host, serial, stores, deployed_at) VALUES (%s, %s, %s, %s, %s) '
                   'ON CONFLICT (identity, host) DO UPDATE SET serial = excluded.serial, stores = excluded.stores, '
                   'deployed_at = excluded.deployed_at', (identity, host, serial, stores_text, to_iso(at)))
        return True

    def remove_deployment(self, identity: str, host: str) -> bool:
        return bool(self._exec('DELETE FROM deployments WHERE identity = %s AND host = %s',
                               (identity, host)).rowcount)

    def deployments(self, identities: list | None = None) -> list:
        sql = 'SELECT identity, host, serial, stores, deployed_at FROM deployments'
        params: list = []
        if identities is not None:
            if not identities:
                return []
            sql += ' WHERE identity = ANY(%s)'
            params = [list(identities)]
        sql += ' ORDER BY identity, host'
        return [{'identity': row[0], 'host': row[1], 'serial': row[2], 'stores': json.loads(row[3]),
                 'deployed_at': row[4]} for row in self._exec(sql, params)]

    # -- drift audits --------------------------------------------------------------------------------------------
    def record_host_audit(self, host: str, at, summary: dict, findings: list) -> None:
        self._exec('INSERT INTO host_audits (host, audited_at, summary, findings) VALUES (%s, %s, %s, %s) '
                   'ON CONFLICT (host) DO UPDATE SET audited_at = excluded.audited_at, summary = excluded.summary, '
                   'findings = excluded.findings',
                   (host, to_iso(at), json.dumps(summary, sort_keys=True), json.dumps(findings, sort_keys=True)))

    def host_audits(self) -> list:
        return [{'host': row[0], 'audited_at': row[1], 'summary': json.loads(row[2]), 'findings': json.loads(row[3])}
                for row in self._exec('SELECT host, audited_at, summary, findings FROM host_audits ORDER BY host')]

    # -- bulk request lines -------------------------------------------------------------------------------------
    def record_request_rows(self, rows: list) -> None:
        self._exec_many('INSERT INTO request_rows (digest, action, identity, serial, previous_serial, batch, line, '
                        'processed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)',
                        [(r['digest'], r['action'], r['identity'], r['serial'], r['previous_serial'], r['batch'],
                          r['line'], to_iso(r['processed_at'])) for r in rows])

    def request_rows(self, digests: list) -> list:
        if not digests:
            return []
        rows = self._exec('SELECT digest, action, identity, serial, previous_serial, batch, line, processed_at '
                          'FROM request_rows WHERE digest = ANY(%s) ORDER BY id', (list(digests),))
        return [{'digest': row[0], 'action': row[1], 'identity': row[2], 'serial': row[3], 'previous_serial': row[4],
                 'batch': row[5], 'line': row[6], 'processed_at': from_iso(row[7])} for row in rows]

    # -- pickups ----------------------------------------------------------------------------------------------
    def insert_pickup(self, pickup: PickupRecord) -> None:
        self._write('INSERT INTO pickups (%s) VALUES (%s)' % (', '.join(PICKUP_COLUMNS),
                                                              ', '.join(['%s'] * len(PICKUP_COLUMNS))),
                    pickup_row(pickup))

    def get_pickup(self, pickup_id: str) -> PickupRecord | None:
        row = self._exec('SELECT %s FROM pickups WHERE pickup_id = %%s' % ', '.join(PICKUP_COLUMNS),
                         (pickup_id,)).fetchone()
        return pickup_from_row(row) if row else None

    def find_pickups(self, identity: str | None = None, serial: str | None = None, open_only: bool = False) -> list:
        clauses, params = [], []
        if identity is not None:
            clauses.append('identity = %s')
            params.append(identity)
        if serial is not None:
            clauses.append('serial = %s')
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
        return bool(self._exec('UPDATE pickups SET %s WHERE pickup_id = %%s' % ', '.join('%s = %%s' % n for n in names),
                               values + [pickup_id]).rowcount)

    # -- held keys --------------------------------------------------------------------------------------------
    def wrapped_key(self, serial: str) -> bytes | None:
        row = self._exec('SELECT wrapped FROM held_keys WHERE serial = %s', (serial,)).fetchone()
        return bytes(row[0]) if row else None

    def purge_keys(self, now) -> None:
        now_text = to_iso(now)
        # One statement nobody reads the answer of: it travels with the transaction's next round trip.
        self._write('WITH purged AS (DELETE FROM held_keys WHERE retain_until <= %s RETURNING serial) '
                    'UPDATE certificates SET key_status = %s, key_purged_at = %s '
                    'WHERE serial IN (SELECT serial FROM purged)', (now_text, KEY_PURGED, now_text))

    def drop_key(self, serial: str, now) -> bool:
        deleted = self._exec('DELETE FROM held_keys WHERE serial = %s', (serial,)).rowcount
        if deleted:
            self._exec('UPDATE certificates SET key_status = %s, key_purged_at = %s WHERE serial = %s AND '
                       'key_status = %s', (KEY_PURGED, to_iso(now), serial, KEY_HELD))
        return bool(deleted)

    # -- audit ------------------------------------------------------------------------------------------------
    def append_audit(self, at, action: str, identity: str | None, serials: list, outcome: str,
                     detail: dict | None = None) -> None:
        self._write('INSERT INTO audit (at, action, identity, serials, outcome, detail) VALUES (%s, %s, %s, %s, %s, '
                    '%s)', (to_iso(at), action, identity, json.dumps(list(serials)), outcome,
                            json.dumps(detail or {}, sort_keys=True)))

    def audit_entries(self, identity: str | None = None, limit: int | None = None) -> list:
        sql = 'SELECT id, at, action, identity, serials, outcome, detail FROM audit'
        params: list = []
        if identity is not None:
            sql += ' WHERE identity = %s'
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
        order = _COPY_ORDER[_known(table)]
        return iter(self._exec('SELECT %s FROM %s ORDER BY %s' % (', '.join(columns), table, order)))

    def import_rows(self, table: str, columns: tuple, rows: list) -> None:
        self._exec_many('INSERT INTO %s (%s) VALUES (%s)' % (_known(table), ', '.join(columns),
                                                             ', '.join(['%s'] * len(columns))), rows)

    def import_links(self, links: list) -> None:
        self._exec_many('UPDATE certificates SET renews = %s, renewed_by = %s WHERE serial = %s', links)


# Insertion order per table: the generated ids where there are some, else the key (certificates by issue time).
_COPY_ORDER = {'meta': 'key', 'certificates': 'issued_at, serial', 'held_keys': 'serial', 'audit': 'id',
               'deployments': 'identity, host', 'request_rows': 'id', 'host_audits': 'host', 'pickups': 'pickup_id'}


def _known(table: str) -> str:
    if table not in REQUIRED_TABLES:
        raise StoreError('unknown table %r' % table)
    return table


# -- the factory's entry points ----------------------------------------------------------------------------------

def open_postgresql(store_url: str, create: bool = False, prefetch_meta=(),
                    prefetch_identity: str | None = None) -> PostgreSQLStore:
    return PostgreSQLStore(store_url, create=create, prefetch_meta=prefetch_meta,
                           prefetch_identity=prefetch_identity)


def postgresql_name(store_url: str) -> str:
    return safe_location(connection_settings(store_url))


def postgresql_exists(store_url: str) -> bool:
    """Whether the database holds an activated CA state (connects, reads the catalog, closes)."""
    settings = connection_settings(store_url)
    location = safe_location(settings)
    settings.setdefault('connect_timeout', str(CONNECT_TIMEOUT_SECONDS))
    try:
        with psycopg.connect(make_conninfo(**settings), autocommit=True) as conn:
            return conn.execute('SELECT 1 FROM pg_namespace WHERE nspname = %s',
                                (STATE_SCHEMA,)).fetchone() is not None
    except psycopg.Error as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if settings.get('password'):
            text = text.replace(settings['password'], '********')
        raise StoreError('cannot connect to the PostgreSQL store %s: %s' % (location, text), 'ca_store',
                         code='store_unreachable')
