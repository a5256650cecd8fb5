# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is particular to the PostgreSQL store: connection errors, passwords kept out of messages, the server going
away mid-transaction, the triggers against raw SQL, lock waits, the missing library. The shared behaviour is in
test_contract.py."""

from __future__ import annotations

import datetime
import secrets

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, StoreError
from ansible_collections.certfleet.pki.plugins.module_utils.store import factory
from ansible_collections.certfleet.pki.plugins.module_utils.store import postgresql as postgresql_store
from ansible_collections.certfleet.pki.plugins.module_utils.store.postgresql import PostgreSQLStore

from postgresql_server import PASSWORD, PASSWORD_ROLE  # pylint: disable=import-error
from test_contract import NOW, insert, record  # pylint: disable=import-error


@pytest.fixture
def url(postgresql_server, postgresql_database):
    return postgresql_server.url(postgresql_database)


@pytest.fixture
def store(url):
    factory.open_store(store_url=url, create=True).activate()
    opened = factory.open_store(store_url=url)
    yield opened
    opened.close()


def _admin_sql(server, dbname: str, sql: str, params=None):
    with server.admin(dbname) as conn:
        return conn.execute(sql, params)


def test_location_names_the_store_without_its_password(postgresql_server, postgresql_database):
    url = postgresql_server.url(postgresql_database, user=PASSWORD_ROLE, password=PASSWORD)
    new = factory.open_store(store_url=url, create=True)
    new.activate()
    assert factory.store_exists(store_url=url)
    opened = factory.open_store(store_url=url)
    try:
        assert PASSWORD not in opened.location
        assert opened.location.startswith('postgresql://%s@/%s' % (PASSWORD_ROLE, postgresql_database))
    finally:
        opened.close()


def test_authentication_failed_names_the_store_not_the_password(postgresql_server, postgresql_database):
    url = postgresql_server.url(postgresql_database, user=PASSWORD_ROLE, password='wrong-' + PASSWORD)
    for call in (lambda: factory.open_store(store_url=url), lambda: factory.store_exists(store_url=url)):
        with pytest.raises(StoreError) as err:
            call()
        assert 'password authentication failed' in err.value.message
        assert postgresql_database in err.value.message and PASSWORD not in err.value.message
        assert err.value.field == 'ca_store'


@pytest.mark.parametrize('where, location', [
    ('@127.0.0.1:9/pki', 'postgresql://someone@127.0.0.1:9/pki'),  # TCP: connection refused
    ('@/pki?host={tmp}&port=5999', 'postgresql://someone@/pki?host={tmp}&port=5999'),  # no socket there
])
def test_connection_refused_names_the_store_not_the_password(tmp_path, where, location):
    url = ('postgresql://someone:%s' % PASSWORD) + where.format(tmp=tmp_path)
    for call in (lambda: factory.open_store(store_url=url), lambda: factory.store_exists(store_url=url)):
        with pytest.raises(StoreError) as err:
            call()
        assert 'cannot connect to the PostgreSQL store %s: ' % location.format(tmp=tmp_path) in err.value.message
        assert PASSWORD not in err.value.message and err.value.code == 'store_unreachable'


def test_an_unparsable_url_is_refused_without_repeating_it():
    url = 'postgresql://someone:%s@db.example.org/pki?no_such_setting=1' % PASSWORD
    with pytest.raises(InputError) as err:
        factory.open_store(store_url=url)
    assert err.value.field == 'ca_store' and PASSWORD not in err.value.message
    assert 'db.example.org' not in err.value.message


def test_without_psycopg_the_message_names_the_library(monkeypatch, tmp_path):
    monkeypatch.setattr(postgresql_store, 'psycopg', None)
    with pytest.raises(StoreError) as err:
        factory.open_store(store_url='postgresql:///pki')
    assert 'psycopg' in err.value.message and err.value.code == 'missing_library'
    factory.open_store(ca_path=str(tmp_path), create=True).activate()  # the embedded store does not need it
    factory.open_store(ca_path=str(tmp_path)).close()


def test_the_server_going_away_mid_transaction_leaves_nothing(postgresql_server, postgresql_database, url, store):
    insert(store, record('A1'))
    with pytest.raises(StoreError) as err:
        with store.write():
            store.insert(record('B1', 'bob'))
            store.append_audit(NOW, 'issue', 'bob', ['B1'], 'issued')
            _admin_sql(postgresql_server, postgresql_database,
                       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                       "AND application_name = 'certfleet.pki'", (postgresql_database,))
            store.insert(record('C1', 'carol'))
    assert 'lost the connection to the PostgreSQL store %s' % store.location in err.value.message
    again = factory.open_store(store_url=url)
    try:
        with again.read():
            assert [r.serial for r in again.find()] == ['A1'] and again.audit_entries() == []
    finally:
        again.close()


@pytest.mark.parametrize('sql, words', [
    ('DELETE FROM certfleet.audit', 'append-only'),
    ("UPDATE certfleet.audit SET outcome = 'forged'", 'append-only'),
    ('TRUNCATE certfleet.audit', 'append-only'),
    ('DELETE FROM certfleet.certificates', 'never deleted'),
    ('TRUNCATE certfleet.certificates CASCADE', 'never deleted'),
    ("UPDATE certfleet.certificates SET status = 'valid' WHERE serial = 'R1'", 'stays revoked'),
])
def test_the_triggers_refuse_raw_sql(postgresql_server, postgresql_database, store, sql, words):
    import psycopg  # pylint: disable=import-outside-toplevel
    insert(store, record('R1'))
    with store.write():
        store.revoke('R1', NOW, 'key_compromise')
        store.append_audit(NOW, 'revoke', 'alice', ['R1'], 'revoked')
    with pytest.raises(psycopg.errors.RestrictViolation, match=words):
        _admin_sql(postgresql_server, postgresql_database, sql)
    with store.read():
        assert store.get('R1').status == 'revoked' and len(store.audit_entries()) == 1


def test_a_trigger_refusal_through_the_store_is_a_store_error(store):
    insert(store, record('R1'))
    with store.write():
        store.revoke('R1', NOW, 'unspecified')
    with pytest.raises(StoreError, match='refused a change: a revoked certificate stays revoked'):
        with store.write():
            store._exec("UPDATE certificates SET status = 'valid'")  # pylint: disable=protected-access


def test_a_writer_waits_for_the_other_and_gives_up_with_a_clear_error(url, store):
    waiting = PostgreSQLStore(url, lock_timeout=1)
    try:
        with store.write():
            store.set_meta('holder', 'first')
            # the lock is taken with the transaction's first statement that waits for an answer (writes alone
            # travel with the COMMIT, lock included)
            assert store.get_meta('holder') == 'first'
            with pytest.raises(StoreError, match='stayed locked for more than 1 seconds'):
                with waiting.write():
                    waiting.set_meta('holder', 'second')
            with waiting.read():  # readers are not blocked by a writer
                assert waiting.get_meta('holder') is None
        with waiting.write():
            waiting.set_meta('holder', 'second')
        with store.read():
            assert store.get_meta('holder') == 'second'
    finally:
        waiting.close()


def test_a_newer_schema_is_refused(postgresql_server, postgresql_database, url, store):
    _admin_sql(postgresql_server, postgresql_database,
               'INSERT INTO certfleet.schema_migrations (version) VALUES (%s)', (postgresql_store.SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match='newer than this certfleet.pki supports'):
        factory.open_store(store_url=url)


def test_a_missing_table_is_reported_as_damaged_when_used(postgresql_server, postgresql_database, url, store):
    _admin_sql(postgresql_server, postgresql_database, 'DROP TABLE certfleet.request_rows')
    opened = factory.open_store(store_url=url)  # a module run's opening does not look at every table
    try:
        with pytest.raises(StoreError) as err:
            with opened.read():
                opened.request_rows(['digest'])
    finally:
        opened.close()
    assert err.value.code == 'store_damaged' and 'request_rows' in err.value.message
    assert 'Backup and recovery' in err.value.message


def test_activate_never_replaces_an_existing_state(url, store):
    with store.write():
        store.set_meta('created_at', 'first')
    with pytest.raises(StoreError, match='holds a CA already') as refused:  # refused before anything is built
        factory.open_store(store_url=url, create=True)
    assert refused.value.code == 'store_exists'
    with store.read():
        assert store.get_meta('created_at') == 'first'


def test_times_compare_as_in_sqlite(store):
    insert(store, record('A1', not_after=NOW + datetime.timedelta(seconds=1)))
    insert(store, record('B1', 'bob', not_after=NOW))
    with store.read():
        counts = store.counts(NOW)
    assert counts['valid'] == 1 and counts['expired'] == 1


def test_meta_read_while_opening_answers_the_first_read_only(url, store):
    with store.write():
        store.set_meta('config', {'n': 1})
    opened = factory.open_store(store_url=url, prefetch_meta=('config', 'absent'))
    try:
        with store.write():
            store.set_meta('config', {'n': 2})  # after the opening: the first read is the opening's snapshot
        assert opened.get_meta_many(['config', 'absent']) == {'config': {'n': 1}, 'absent': None}
        assert opened.get_meta_many(['config']) == {'config': {'n': 2}}  # served once, then read afresh
    finally:
        opened.close()
    opened = factory.open_store(store_url=url, prefetch_meta=('config',))
    try:
        with opened.write():  # a write by this session drops what was read while opening
            opened.set_meta('config', {'n': 3})
        assert opened.get_meta_many(['config']) == {'config': {'n': 3}}
    finally:
        opened.close()


def test_deferred_writes_keep_their_order_and_fail_their_transaction(store):
    with store.write():
        store.set_meta('number', 1)
        store.set_meta('number', 2)
        assert store.get_meta('number') == 2  # a read sends what is deferred first, in order
        store.append_audit(NOW, 'test', None, [], 'ok')
    first = insert(store, record('A1'))
    with pytest.raises(StoreError, match='(?i)unique'):
        with store.write():
            store.append_audit(NOW, 'test', None, [], 'second')
            store.insert(record('A2', fingerprint_sha256=first.fingerprint_sha256))  # refused at COMMIT
    with store.read():
        assert [entry['outcome'] for entry in store.audit_entries()] == ['ok']
        assert store.get('A2') is None and store.get_meta('number') == 2


def test_the_integrity_check_reads_values_kept_out_of_line(postgresql_server, postgresql_database, url, store):
    """A value too large for its row lives in the table's TOAST relation: damage there is found too."""
    with store.write():
        store.append_audit(NOW, 'big', None, [], 'ok', {'blob': secrets.token_hex(20000)})  # 40 kB: kept out of line
    with postgresql_server.admin(postgresql_database) as conn:
        toast = conn.execute("SELECT reltoastrelid::regclass::text FROM pg_class "
                             "WHERE oid = 'certfleet.audit'::regclass").fetchone()[0]
    path = postgresql_server.file_of(postgresql_database, toast)
    store.close()
    postgresql_server.halt()
    try:
        with open(path, 'r+b') as handle:
            handle.seek(2048)
            handle.write(b'\xde\xad\xbe\xef' * 256)
    finally:
        postgresql_server.resume()
    damaged = PostgreSQLStore(url)
    try:
        with pytest.raises(StoreError) as err:
            with damaged.read():
                damaged.check_integrity()
        assert err.value.code == 'store_damaged'
    finally:
        damaged.close()


def test_the_record_asked_for_while_opening_answers_the_first_decision_only(url, store, monkeypatch):
    """prefetch_identity: the identity's record is asked for right after the opening and answers the first
    current_with_history of that identity; any other question, a second one, or one after a write goes to the
    server."""
    insert(store, record('A1', 'alice'))
    asked = []
    send = PostgreSQLStore._exec

    def counting(self, sql, params=None):
        asked.append(sql)
        return send(self, sql, params)

    monkeypatch.setattr(PostgreSQLStore, '_exec', counting)
    opened = factory.open_store(store_url=url, prefetch_identity='alice')
    try:
        assert opened.current_with_history('bob') == (None, False)  # not the prefetched identity: asked
        assert asked == [postgresql_store._HISTORY_QUERY]
        current, history = opened.current_with_history('alice')  # answered from the opening
        assert (current.serial, history) == ('A1', True) and len(asked) == 1
        assert opened.current_with_history('alice')[0].serial == 'A1' and len(asked) == 2  # once only
    finally:
        opened.close()
    opened = factory.open_store(store_url=url, prefetch_identity='alice')
    try:
        with opened.write():
            opened.set_meta('touched', True)
        assert opened.current_with_history('alice')[0].serial == 'A1'
        assert asked[-1] == postgresql_store._HISTORY_QUERY  # after a write, asked again
    finally:
        opened.close()
