# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store contract: what every engine behind the store interface must do, tested only through the interface.

Each test runs once per backend in BACKENDS. A backend here is a small harness that knows how to make an empty
store, one at the oldest schema, and a damaged one; everything else goes through ``store.factory`` and the
``CertificateStore`` methods. Engine-specific checks (files, pragmas, SQL triggers) live beside the engine's tests,
for SQLite in test_sqlite.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import multiprocessing
import os
import traceback

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    StoreDamagedError, StoreError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import utcnow
from ansible_collections.certfleet.pki.plugins.module_utils.store import postgresql as postgresql_store
from ansible_collections.certfleet.pki.plugins.module_utils.store import sqlite as sqlite_store
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import (
    CertificateRecord, CertificateStore, KEY_ENDPOINT, KEY_HELD, PickupRecord, RevokedEntry,
)
from ansible_collections.certfleet.pki.plugins.module_utils.store.factory import open_store, store_exists

from test_sqlite_damaged import damage_state_db  # pylint: disable=import-error

NOW = utcnow()


class SQLiteBackend:
    """The embedded store: state.db in a CA folder."""

    name = 'sqlite'

    def __init__(self, folder: str):
        self.folder = folder

    def open(self, create: bool = False) -> CertificateStore:
        return open_store(ca_path=self.folder, create=create)

    def exists(self) -> bool:
        return store_exists(ca_path=self.folder)

    @contextlib.contextmanager
    def oldest_schema(self, monkeypatch):
        """While inside, new stores are created at the oldest schema version (and opened without migrating)."""
        oldest = min(sqlite_store.MIGRATIONS)
        with monkeypatch.context() as patch:
            patch.setattr(sqlite_store, 'SCHEMA_VERSION', oldest)
            patch.setattr(sqlite_store, 'REQUIRED_TABLES', {'meta', 'certificates', 'held_keys', 'audit'})
            yield oldest

    def damage(self) -> list:
        """Overwrite a page of certificates in the middle of the storage; return the identities it held."""
        return damage_state_db(os.path.join(self.folder, 'state.db'))


class PostgreSQLBackend:
    """The shared store: a fresh database of the test server (conftest.py), named by a store URL."""

    name = 'postgresql'

    def __init__(self, server, dbname: str):
        self.server = server
        self.dbname = dbname
        self.url = server.url(dbname)

    def open(self, create: bool = False) -> CertificateStore:
        return open_store(store_url=self.url, create=create)

    def exists(self) -> bool:
        return store_exists(store_url=self.url)

    @contextlib.contextmanager
    def oldest_schema(self, monkeypatch):
        oldest = min(postgresql_store.MIGRATIONS)
        with monkeypatch.context() as patch:
            patch.setattr(postgresql_store, 'SCHEMA_VERSION', oldest)
            patch.setattr(postgresql_store, 'REQUIRED_TABLES', {'meta', 'certificates', 'held_keys', 'audit'})
            yield oldest

    def damage(self) -> list:
        """Overwrite part of a heap page of certificates in the middle of the table, with the server stopped (the
        cluster has data checksums); return the identities that page held."""
        with self.server.admin(self.dbname) as conn:
            rows = conn.execute('SELECT (ctid::text::point)[0]::int, identity FROM certfleet.certificates').fetchall()
        pages = sorted({page for page, _identity in rows})
        middle = pages[len(pages) // 2]
        path = self.server.file_of(self.dbname, 'certfleet.certificates')
        self.server.halt()
        try:
            with open(path, 'r+b') as handle:
                handle.seek(middle * 8192 + 2048)
                handle.write(b'\xde\xad\xbe\xef' * 256)
        finally:
            self.server.resume()
        return sorted(identity for page, identity in rows if page == middle)


def _sqlite_backend(request, tmp_path):
    return SQLiteBackend(str(tmp_path))


def _postgresql_backend(request, tmp_path):
    return PostgreSQLBackend(request.getfixturevalue('postgresql_server'),
                             request.getfixturevalue('postgresql_database'))


BACKENDS = {'sqlite': _sqlite_backend, 'postgresql': _postgresql_backend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path):
    return BACKENDS[request.param](request, tmp_path)


def _create(backend) -> None:
    new = backend.open(create=True)
    new.activate()


@pytest.fixture
def store(backend):
    _create(backend)
    opened = backend.open()
    yield opened
    opened.close()


def record(serial: str, identity: str = 'alice', **changes) -> CertificateRecord:
    """A record as the CA would store it; the store does not parse the PEM, so any text does."""
    values = dict(
        serial=serial, identity=identity, subject={'CN': identity}, subject_text='CN=%s' % identity,
        sans=['email:%s@example.org' % identity], profile='client', key_type='ec-p256', key_status=KEY_ENDPOINT,
        public_key_sha256='AB' * 32, not_before=NOW - datetime.timedelta(minutes=5),
        not_after=NOW + datetime.timedelta(days=365), fingerprint_sha256=('F%s' % serial).ljust(64, '0'),
        fingerprint_sha1=('1%s' % serial).ljust(40, '0'),
        pem='-----BEGIN CERTIFICATE-----\n%s-----END CERTIFICATE-----\n' % (('M' * 64 + '\n') * 12),
        issued_at=NOW, is_current=True)
    values.update(changes)
    return CertificateRecord(**values)


def insert(store, rec: CertificateRecord, wrapped: bytes | None = None) -> CertificateRecord:
    with store.write():
        store.insert(rec, wrapped)
    return rec


def renew(store, old: CertificateRecord, new: CertificateRecord) -> None:
    """The CA's renewal sequence: supersede, insert, link, audit."""
    with store.write():
        store.supersede(old.serial, new.serial)
        store.insert(dataclasses.replace(new, renews=old.serial))
        store.link_renewal(old.serial, new.serial)
        store.append_audit(NOW, 'renew', new.identity, [old.serial, new.serial], 'renewed')


def contents(store, oldest_schema: bool = False) -> dict:
    """Everything the interface can read back: a logical snapshot of a store (at the oldest schema, what it has)."""
    with store.read():
        records = store.find()
        found = {'records': records, 'audit': store.audit_entries(), 'meta': store.get_meta('config'),
                 'keys': {r.serial: store.wrapped_key(r.serial) for r in records}, 'revoked': store.revoked_entries()}
        if not oldest_schema:
            found['deployments'] = store.deployments()
            found['host_audits'] = store.host_audits()
            found['pickups'] = store.find_pickups()
        return found


# -- every operation --------------------------------------------------------------------------------------------

def test_a_new_store_is_empty_at_the_newest_schema(store):
    assert isinstance(store, CertificateStore)
    assert store.location
    assert store.schema_version == max(sqlite_store.MIGRATIONS)
    with store.read():
        assert store.find() == [] and store.audit_entries() == [] and store.deployments() == []
        assert store.counts(NOW) == {'total': 0, 'valid': 0, 'revoked': 0, 'expired': 0, 'pending_revocation': 0,
                                     'identities': 0}
        assert store.get_meta('config') is None and store.get_meta('config', {}) == {}


def test_meta_values_round_trip(store):
    with store.write():
        store.set_meta('config', {'crl_url': None, 'policy': {'allowed': ['a', 'b']}})
        store.set_meta('number', 7)
    with store.write():
        store.set_meta('number', 8)
    with store.read():
        assert store.get_meta('config') == {'crl_url': None, 'policy': {'allowed': ['a', 'b']}}
        assert store.get_meta('number') == 8


def test_several_meta_values_in_one_read(store):
    with store.write():
        store.set_meta('config', {'crl_url': 'http://x/crl'})
        store.set_meta('number', 3)
    # outside a transaction (one consistent read on its own) and inside one, missing keys as None
    assert store.get_meta_many(['number', 'config', 'absent']) == {'number': 3, 'config': {'crl_url': 'http://x/crl'},
                                                                   'absent': None}
    with store.read():
        assert store.get_meta_many(['number']) == {'number': 3}
    assert store.get_meta_many([]) == {}


def test_current_with_history(store):
    assert store.current_with_history('alice') == (None, False)
    first = insert(store, record('A1'))
    assert store.current_with_history('alice') == (first, True)
    renew(store, first, record('A2'))
    with store.read():
        assert store.current_with_history('alice') == (store.get('A2'), True)
    with store.write():
        store.revoke('A2', NOW, 'superseded')
        store.revoke('A1', NOW, 'superseded')
    assert store.current_with_history('alice') == (None, True)
    assert store.current_with_history('bob') == (None, False)


def test_records_round_trip_and_are_found(store):
    alice = insert(store, record('A1', key_status=KEY_HELD, key_retain_until=NOW + datetime.timedelta(days=3)),
                   b'wrapped-alice')
    bob = insert(store, record('B1', 'bob'))
    old = insert(store, record('A0', is_current=False, issued_at=NOW - datetime.timedelta(days=1)))
    with store.read():
        assert store.get('A1') == alice and store.get('B1') == bob and store.get('NOPE') is None
        assert store.current('alice') == alice and store.current('carol') is None
        assert store.find(identity='alice') == [old, alice]  # by identity, then issue time
        assert store.find(serials=['B1', 'A0']) == [old, bob]
        assert store.find(identity='alice', serials=['B1', 'A1']) == [alice]
        assert store.find(identities=['bob', 'carol']) == [bob]
        assert store.find(identities=[]) == [] and store.find(serials=[]) == []
        assert store.find() == [old, alice, bob]
        assert store.serial_exists('A0') and not store.serial_exists('C1')
        assert store.identity_has_history('alice') and not store.identity_has_history('carol')
        assert store.wrapped_key('A1') == b'wrapped-alice' and store.wrapped_key('B1') is None


def test_long_lists_of_identities_and_serials(store):
    """The fleet view asks for thousands of identities at once; engines with parameter limits split the query."""
    with store.write():
        for n in range(1200):
            store.insert(record('%X' % (0x1000 + n), 'user%04d' % n))
            store.record_deployment('user%04d' % n, 'host', '%X' % (0x1000 + n), [], NOW)
    identities = ['user%04d' % n for n in range(1200)] + ['nobody']
    with store.read():
        assert len(store.find(identities=identities)) == 1200
        assert len(store.find(serials=['%X' % (0x1000 + n) for n in range(1200)])) == 1200
        assert len(store.deployments(identities)) == 1200


def test_renewal_supersedes_and_links(store):
    old = insert(store, record('A1'))
    renew(store, old, record('A2'))
    with store.read():
        old_now, new = store.get('A1'), store.get('A2')
        assert store.current('alice').serial == 'A2'
        assert store.counts(NOW)['pending_revocation'] == 1
    assert not old_now.is_current and old_now.pending_revocation and old_now.status == 'valid'
    assert old_now.renewed_by == 'A2' and new.renews == 'A1' and new.is_current and not new.pending_revocation


def test_revoke_and_revoked_entries(store):
    first = insert(store, record('A1'))
    renew(store, first, record('A2'))
    insert(store, record('B1', 'bob'))
    later = NOW + datetime.timedelta(hours=1)
    with store.write():
        store.revoke('A2', later, 'key_compromise')
        store.revoke('A1', NOW, 'superseded')
    with store.read():
        revoked = store.get('A2')
        assert store.revoked_entries() == [RevokedEntry('A1', NOW, 'superseded'),
                                           RevokedEntry('A2', later, 'key_compromise')]
        assert store.current('alice') is None and store.identity_has_history('alice')
        assert not store.get('A1').pending_revocation
    assert revoked.status == 'revoked' and revoked.revoked_at == later
    assert revoked.revocation_reason == 'key_compromise' and not revoked.is_current
    assert revoked.state(NOW) == 'revoked'


def test_revoke_does_not_rewrite_an_existing_revocation(store):
    insert(store, record('A1'))
    with store.write():
        store.revoke('A1', NOW, 'key_compromise')
    # the store's own revoke() does not rewrite an existing revocation
    with store.write():
        store.revoke('A1', NOW + datetime.timedelta(days=1), 'unspecified')
    with store.read():
        rec = store.get('A1')
    assert rec.status == 'revoked' and rec.revocation_reason == 'key_compromise'
    assert rec.revoked_at == NOW


def test_revocation_generation_rises_with_each_revocation_in_its_transaction(store):
    insert(store, record('A1'))
    insert(store, record('B1', 'bob'))
    with store.read():
        assert store.revocation_generation() == 0
    with store.write():
        store.revoke('A1', NOW, 'key_compromise')
        store.revoke('A1', NOW, 'unspecified')  # already revoked: not a new revocation
    with pytest.raises(RuntimeError):
        with store.write():
            store.revoke('B1', NOW, 'superseded')
            raise RuntimeError('rolled back')
    with store.read():
        assert store.revocation_generation() == 1 and len(store.revoked_entries()) == 1
    with store.write():
        store.revoke('B1', NOW, 'superseded')
    with store.read():
        assert store.revocation_generation() == 2


def test_counts(store):
    first = insert(store, record('A1'))
    renew(store, first, record('A2'))
    insert(store, record('B1', 'bob', not_after=NOW - datetime.timedelta(seconds=1)))
    insert(store, record('C1', 'carol'))
    with store.write():
        store.revoke('C1', NOW, 'unspecified')
    with store.read():
        assert store.counts(NOW) == {'total': 4, 'valid': 2, 'revoked': 1, 'expired': 1, 'pending_revocation': 1,
                                     'identities': 3}


def test_deployments(store):
    insert(store, record('A1'))
    insert(store, record('B1', 'bob'))
    with store.write():
        assert store.record_deployment('alice', 'pc1', 'A1', ['nss', 'chromium'], NOW) is True
        assert store.record_deployment('alice', 'pc1', 'A1', ['chromium', 'nss'], NOW) is False  # nothing new
        assert store.record_deployment('alice', 'pc2', 'A1', [], NOW) is True
        assert store.record_deployment('bob', 'pc1', 'B1', ['keychain'], NOW) is True
        assert store.record_deployment('alice', 'pc2', 'A1', ['nss'], NOW) is True  # the stores changed
    with store.read():
        assert [(d['identity'], d['host'], d['serial'], d['stores']) for d in store.deployments()] == [
            ('alice', 'pc1', 'A1', ['chromium', 'nss']), ('alice', 'pc2', 'A1', ['nss']),
            ('bob', 'pc1', 'B1', ['keychain'])]
        assert [d['host'] for d in store.deployments(['bob'])] == ['pc1']
        assert store.deployments([]) == []
    with store.write():
        assert store.remove_deployment('alice', 'pc2') is True
        assert store.remove_deployment('alice', 'pc2') is False
    with store.read():
        assert [(d['identity'], d['host']) for d in store.deployments()] == [('alice', 'pc1'), ('bob', 'pc1')]


def test_host_audits(store):
    later = NOW + datetime.timedelta(days=7)
    findings = [{'kind': 'missing', 'identity': 'alice', 'store': 'firefox', 'outcome': 'restored'}]
    with store.write():
        store.record_host_audit('pc2', NOW, {'missing': 1, 'drift': True}, findings)
        store.record_host_audit('pc1', NOW, {'missing': 0, 'drift': False}, [])
    with store.read():
        assert [(a['host'], a['summary'], a['findings']) for a in store.host_audits()] == [
            ('pc1', {'missing': 0, 'drift': False}, []), ('pc2', {'missing': 1, 'drift': True}, findings)]
    with store.write():  # the host's last audit replaces the one before
        store.record_host_audit('pc2', later, {'missing': 0, 'drift': False}, [])
    with store.read():
        audits = {a['host']: a for a in store.host_audits()}
        assert len(audits) == 2 and audits['pc2']['findings'] == [] and audits['pc2']['summary']['drift'] is False
        assert audits['pc2']['audited_at'] > audits['pc1']['audited_at']


def test_request_rows(store):
    insert(store, record('A1'))
    insert(store, record('A2', is_current=False))
    rows = [{'digest': 'd1', 'action': 'issue', 'identity': 'alice', 'serial': 'A1', 'previous_serial': None,
             'batch': 'b1', 'line': 2, 'processed_at': NOW},
            {'digest': 'd2', 'action': 'renew', 'identity': 'alice', 'serial': 'A2', 'previous_serial': 'A1',
             'batch': 'b1', 'line': 3, 'processed_at': NOW}]
    with store.write():
        store.record_request_rows(rows)
    with store.read():
        assert store.request_rows(['d2', 'd1', 'unknown']) == rows
        assert store.request_rows(['d2']) == rows[1:]
        assert store.request_rows([]) == []


def pickup(pickup_id: str, serial: str = 'A1', identity: str = 'alice', **changes) -> PickupRecord:
    values = dict(pickup_id=pickup_id, identity=identity, serial=serial, token_hash='scrypt$token-' + pickup_id,
                  pin_hash='scrypt$pin-' + pickup_id, created_at=NOW, format='pkcs12-legacy',
                  lock_after_first_days=3, expires_at=NOW + datetime.timedelta(days=30))
    values.update(changes)
    return PickupRecord(**values)


def test_pickups_round_trip_update_and_are_found(store):
    insert(store, record('A1'))
    insert(store, record('B1', 'bob'))
    later = NOW + datetime.timedelta(hours=1)
    first = pickup('p-first', renewal_of=None)
    second = pickup('p-second', 'B1', 'bob', created_at=later, format='mobileconfig', lock_after_first_days=None,
                    expires_at=None, max_downloads=2, max_attempts=3)
    with store.write():
        store.insert_pickup(second)
        store.insert_pickup(first)
    with store.read():
        assert store.get_pickup('p-first') == first
        assert store.get_pickup('p-second') == second
        assert store.get_pickup('unknown') is None
        assert store.find_pickups() == [first, second]  # by creation time
        assert store.find_pickups(identity='bob') == [second]
        assert store.find_pickups(serial='A1') == [first]
    with store.write():
        assert store.update_pickup('p-first', {'downloads': 1, 'first_pickup_at': later, 'closed_at': later,
                                               'close_reason': 'downloaded'}) is True
        assert store.update_pickup('unknown', {'downloads': 1}) is False
    with store.read():
        changed = store.get_pickup('p-first')
        assert (changed.downloads, changed.first_pickup_at, changed.closed_at, changed.close_reason) == (
            1, later, later, 'downloaded')
        assert changed.token_hash == first.token_hash and changed.expires_at == first.expires_at
        assert store.find_pickups(open_only=True) == [second]
        assert store.find_pickups(identity='alice', open_only=True) == []
    with pytest.raises(ValueError), store.write():
        store.update_pickup('p-first', {'token_hash': 'other'})  # the secrets' hashes never change


def test_pickups_refuse_an_unknown_certificate_or_format_and_duplicate_ids(store):
    insert(store, record('A1'))
    with store.write():
        store.insert_pickup(pickup('p1'))
    for bad in (pickup('p1'), pickup('p2', serial='NOPE'), pickup('p3', format='zip'), pickup('p4', max_downloads=0)):
        with pytest.raises(StoreError), store.write():
            store.insert_pickup(bad)
    with store.read():
        assert [p.pickup_id for p in store.find_pickups()] == ['p1']


def test_a_pickup_repr_shows_no_hash():
    text = repr(pickup('p1'))
    assert 'p1' in text and 'scrypt' not in text and 'token-' not in text


def test_purge_and_drop_keys(store):
    keep = insert(store, record('K1', 'keep', key_status=KEY_HELD, key_retain_until=NOW + datetime.timedelta(days=10)),
                  b'keep-key').serial
    purge = insert(store, record('P1', 'purge', key_status=KEY_HELD,
                                 key_retain_until=NOW + datetime.timedelta(days=1)), b'purge-key').serial
    now = NOW + datetime.timedelta(days=1)
    with store.write():
        store.purge_keys(now)
        assert store.wrapped_key(purge) is None and store.wrapped_key(keep) == b'keep-key'
        store.purge_keys(now)
        assert store.get(purge).key_status == 'purged' and store.get(keep).key_status == KEY_HELD
        assert store.drop_key(keep, now) is True
        assert store.drop_key(keep, now) is False
    with store.read():
        assert store.wrapped_key(purge) is None and store.wrapped_key(keep) is None
        assert store.get(purge).key_status == 'purged' and store.get(purge).key_purged_at == now
        assert store.get(keep).key_status == 'purged'


def test_audit_entries_order_and_limit(store):
    with store.write():
        store.append_audit(NOW, 'ca_created', None, ['CA'], 'ok', {'subject': 'CN=CA'})
    for name in ('a', 'b', 'c'):
        with store.write():
            store.append_audit(NOW, 'issue', name, ['%s1' % name.upper()], 'issued')
    with store.read():
        entries = store.audit_entries()
        last_two = store.audit_entries(limit=2)
        only_b = store.audit_entries(identity='b')
    assert [e['identity'] for e in entries] == [None, 'a', 'b', 'c']
    assert [e['id'] for e in entries] == sorted(e['id'] for e in entries)
    assert [e['identity'] for e in last_two] == ['b', 'c']
    assert [e['identity'] for e in only_b] == ['b']
    assert entries[0]['detail'] == {'subject': 'CN=CA'} and entries[0]['serials'] == ['CA']
    assert entries[1]['action'] == 'issue' and entries[1]['outcome'] == 'issued' and entries[1]['detail'] == {}


# -- creating a store -------------------------------------------------------------------------------------------

def test_a_created_store_is_the_state_only_once_activated(backend):
    assert not backend.exists()
    new = backend.open(create=True)
    with new.write():
        new.set_meta('created_at', 'now')
    assert not backend.exists()
    with pytest.raises(StoreError):
        backend.open()
    new.activate()
    assert backend.exists()
    opened = backend.open()
    try:
        with opened.read():
            assert opened.get_meta('created_at') == 'now'
        with pytest.raises(StoreError):
            opened.discard()  # the CA's state is never discarded
    finally:
        opened.close()


def test_a_discarded_creation_leaves_nothing(backend):
    new = backend.open(create=True)
    with new.write():
        new.set_meta('created_at', 'now')
    new.discard()
    assert not backend.exists()
    with pytest.raises(StoreError):
        backend.open()
    _create(backend)  # and a later creation starts afresh
    opened = backend.open()
    with opened.read():
        assert opened.get_meta('created_at') is None
    opened.close()


def test_creating_again_replaces_an_unfinished_creation(backend):
    new = backend.open(create=True)
    with new.write():
        new.set_meta('created_at', 'first')
    new.close()  # a creation that stopped before activate (a killed process)
    _create(backend)
    opened = backend.open()
    with opened.read():
        assert opened.get_meta('created_at') is None
    opened.close()


# -- transactions -----------------------------------------------------------------------------------------------

def test_write_rolls_back_on_error_and_refuses_nesting(store):
    insert(store, record('A1'))
    before = contents(store)
    with pytest.raises(RuntimeError):
        with store.write():
            store.append_audit(NOW, 'test', None, [], 'ok')
            store.set_meta('config', {'tampered': True})
            store.insert(record('B1', 'bob'))
            raise RuntimeError('boom')
    with pytest.raises(StoreError, match='nested'):
        with store.write():
            with store.write():
                pass
    assert contents(store) == before


def test_a_refused_statement_leaves_nothing_of_its_transaction(store):
    old = insert(store, record('A1'))
    before = contents(store)
    with pytest.raises(StoreError):
        with store.write():
            store.supersede(old.serial, 'A2')
            store.append_audit(NOW, 'renew', 'alice', ['A1', 'A2'], 'renewed')
            store.insert(record('A2', fingerprint_sha256=old.fingerprint_sha256))  # refused: same fingerprint
    assert contents(store) == before


def test_one_current_certificate_per_identity(store):
    alice = insert(store, record('A1'))
    with pytest.raises(StoreError, match='(?i)unique'):
        with store.write():
            store.insert(record('A2'))  # another current certificate for alice
    insert(store, record('A3', is_current=False))  # a non-current one is fine
    insert(store, record('BEEF01', 'bob'))
    with store.read():
        assert [r.serial for r in store.find(identity='alice') if r.is_current] == [alice.serial]


@pytest.mark.parametrize('change', ['serial', 'fingerprint_sha256'])
def test_serials_and_fingerprints_are_unique(store, change):
    existing = insert(store, record('A1'))
    twin = record('A2', is_current=False)
    twin = dataclasses.replace(twin, **{change: getattr(existing, change)})
    before = contents(store)
    with pytest.raises(StoreError, match='(?i)unique'):
        with store.write():
            store.insert(twin)
    assert contents(store) == before


def test_a_read_sees_one_snapshot(backend, store):
    insert(store, record('A1'))
    other = backend.open()
    try:
        with store.read():
            assert store.counts(NOW)['total'] == 1
            insert(other, record('B1', 'bob'))  # committed by someone else meanwhile
            assert store.counts(NOW)['total'] == 1 and store.get('B1') is None
        with store.read():
            assert store.counts(NOW)['total'] == 2
    finally:
        other.close()


# -- concurrency ------------------------------------------------------------------------------------------------

WORKERS = 8
WRITES_PER_WORKER = 25


def _writer(backend, number: int, start, results) -> None:
    """One process: renew the shared identity and count, each time in one write transaction of its own store."""
    try:
        store = backend.open()
        start.wait(60)
        try:
            for n in range(WRITES_PER_WORKER):
                serial = '%X%02X' % (number + 1, n)
                with store.write():
                    store.set_meta('counter', store.get_meta('counter', 0) + 1)
                    current = store.current('shared')
                    new = record(serial, 'shared', renews=current.serial if current else None)
                    if current is not None:
                        store.supersede(current.serial, serial)
                    store.insert(new)
                    if current is not None:
                        store.link_renewal(current.serial, serial)
                    store.append_audit(NOW, 'renew', 'shared', [serial], 'renewed')
        finally:
            store.close()
        results.put((number, None))
    except BaseException:  # reported to the parent, which fails the test
        results.put((number, traceback.format_exc()))


def test_concurrent_writers_lose_and_duplicate_nothing(backend, store):
    context = multiprocessing.get_context('fork')
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_writer, args=(backend, n, start, results)) for n in range(WORKERS)]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = dict(results.get(timeout=300) for _worker in workers)
    for worker in workers:
        worker.join(60)
    assert all(worker.exitcode == 0 for worker in workers)
    assert outcomes == {n: None for n in range(WORKERS)}, '\n'.join(filter(None, outcomes.values()))
    total = WORKERS * WRITES_PER_WORKER
    with store.read():
        records = store.find(identity='shared')
        audit = store.audit_entries()
        assert store.get_meta('counter') == total  # no lost update
    assert len(records) == total and len({r.serial for r in records}) == total
    current = [r for r in records if r.is_current]
    assert len(current) == 1
    by_serial = {r.serial: r for r in records}
    # the renewals form one chain from the first certificate to the current one
    chain, seen = current[0], set()
    while chain.renews is not None:
        seen.add(chain.serial)
        previous = by_serial[chain.renews]
        assert previous.renewed_by == chain.serial and previous.pending_revocation and not previous.is_current
        chain = previous
    assert len(seen) == total - 1
    assert sorted(s for e in audit for s in e['serials']) == sorted(by_serial)


# -- migrations -------------------------------------------------------------------------------------------------

def test_migrates_from_the_oldest_schema_keeping_data(backend, monkeypatch):
    with backend.oldest_schema(monkeypatch) as oldest:
        _create(backend)
        old_store = backend.open()
        try:
            assert old_store.schema_version == oldest < max(sqlite_store.MIGRATIONS)
            first = insert(old_store, record('A1', key_status=KEY_HELD,
                                             key_retain_until=NOW + datetime.timedelta(days=30)), b'wrapped')
            renew(old_store, first, record('A2'))
            insert(old_store, record('B1', 'bob'))
            with old_store.write():
                old_store.set_meta('config', {'crl_url': 'http://pki.example.org/ca.crl'})
                old_store.revoke('B1', NOW, 'key_compromise')
                old_store.append_audit(NOW, 'revoke', 'bob', ['B1'], 'revoked')
            before = contents(old_store, oldest_schema=True)
        finally:
            old_store.close()
    for _again in range(2):  # the second open finds nothing left to migrate
        migrated = backend.open()
        try:
            assert migrated.schema_version == max(sqlite_store.MIGRATIONS)
            assert contents(migrated) == dict(before, deployments=[], host_audits=[], pickups=[])  # the data survived
        finally:
            migrated.close()
    migrated = backend.open()
    try:  # and what the newer schema added works on the migrated store
        with migrated.write():
            assert migrated.record_deployment('alice', 'pc1', 'A2', ['nss'], NOW) is True
            migrated.record_request_rows([{'digest': 'd', 'action': 'issue', 'identity': 'alice', 'serial': 'A2',
                                           'previous_serial': None, 'batch': 'b', 'line': 1, 'processed_at': NOW}])
        with migrated.read():
            assert [d['serial'] for d in migrated.deployments(['alice'])] == ['A2']
            assert [r['serial'] for r in migrated.request_rows(['d'])] == ['A2']
    finally:
        migrated.close()


# -- integrity --------------------------------------------------------------------------------------------------

def test_a_healthy_store_passes_the_integrity_check(store):
    insert(store, record('A1'))
    with store.read():
        store.check_integrity()


def _assert_damaged(err, location: str) -> None:
    assert isinstance(err, StoreDamagedError) and isinstance(err, StoreError)
    assert err.code == 'store_damaged'
    assert location in err.message and 'is damaged' in err.message


def test_damaged_storage_is_reported_as_store_damaged(backend, store):
    with store.write():
        for n in range(30):
            store.insert(record('%X' % (0x100 + n), 'user%02d' % n))
    location = store.location
    store.close()
    lost = backend.damage()
    try:
        damaged = backend.open()
    except StoreError as err:  # an engine may notice on open already
        _assert_damaged(err, location)
        return
    try:
        with pytest.raises(StoreError) as err:
            with damaged.read():
                damaged.check_integrity()
        _assert_damaged(err.value, location)
        with pytest.raises(StoreError) as err:
            with damaged.read():
                damaged.current(lost[0])
        _assert_damaged(err.value, location)
    finally:
        damaged.close()


def test_exclusive_lets_one_holder_in_at_a_time_across_connections(backend, store):
    import threading
    import time
    entered = threading.Event()
    other = backend.open()

    def take():
        with other.exclusive():
            entered.set()

    try:
        with store.exclusive():
            thread = threading.Thread(target=take)
            thread.start()
            assert not entered.wait(0.5), 'a second holder got in while the first held the lock'
            with store.write():  # transactions go on while it is held
                store.set_meta('held', True)
        assert entered.wait(10), 'the second holder never got in after the first let go'
        thread.join(10)
        with pytest.raises(StoreError, match='outside transactions'), store.write():
            with store.exclusive():
                pass
        started = time.monotonic()
        with store.exclusive():  # taken again at once: nothing was left held
            pass
        assert time.monotonic() - started < 5
    finally:
        other.close()
