# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving an embedded CA into PostgreSQL: the whole history arrives, the CA goes on working there, the source is
refused afterwards, a non-empty target is never touched, and running it again changes nothing."""

from __future__ import annotations

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.ca import migrate
from ansible_collections.certfleet.pki.plugins.module_utils.ca.migrate import migrate_ca
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CAError
from ansible_collections.certfleet.pki.plugins.module_utils.store.factory import open_store, store_exists
from ansible_collections.certfleet.pki.plugins.module_utils.store.transfer import TABLES, table_rows

from conftest import CA_SUBJECT, CAHarness, PASSPHRASE  # pylint: disable=import-error


@pytest.fixture
def store_url(postgresql_server, postgresql_database):
    return postgresql_server.url(postgresql_database)


@pytest.fixture
def history(ca, tmp_path):
    """An embedded CA with renewals, revocations, a held key, deployments, bulk lines and a published CRL."""
    first = ca.ensure('alice', key_retention=30)
    ca.clock.advance(days=1)
    renewed = ca.ensure('alice', force=True, key_retention=30)
    ca.revoke(identity='alice', which='superseded', reason='superseded')
    ca.ensure('bob')
    ca.revoke(identity='bob', which='current', reason='key_compromise')
    carol = ca.ensure('carol', key_retention=30)
    with ca.open() as opened:
        opened.record_deployments([{'identity': 'alice', 'host': 'pc1', 'serial': renewed['serial'],
                                    'stores': ['firefox']}])
        with opened.store.write():
            opened.store.record_request_rows([{'digest': 'd' * 64, 'action': 'issue', 'identity': 'carol',
                                               'serial': carol['serial'], 'previous_serial': None,
                                               'batch': 'b1', 'line': 1, 'processed_at': ca.clock()}])
        opened.create_pickup(identity='carol', base_url='https://pki.example.org')  # schema 5: pickups move too
    published = ca.publish_crl(dest=str(tmp_path / 'before.crl'))
    return {'first': first, 'renewed': renewed, 'crl': published}


def _rows(store) -> dict:
    with store.read():
        return {table: list(table_rows(store, table, columns)) for table, columns in TABLES}


def _shared(store_url, clock) -> CAHarness:
    return CAHarness(None, PASSPHRASE, clock, {}, store_url=store_url)


def test_the_whole_history_moves_and_goes_on_working(ca, history, store_url, tmp_path):
    before = _rows(open_store(ca_path=ca.path))
    moved = migrate_ca(ca_path=ca.path, store_url=store_url, ca_passphrase=PASSPHRASE, clock=ca.clock)
    assert moved['changed'] is True and moved['action'] == 'migrated'
    assert moved['counts']['certificates'] == 4 and moved['counts']['audit'] == len(before['audit'])
    after = _rows(open_store(store_url=store_url))
    assert len(before['pickups']) == 1
    for table in ('certificates', 'held_keys', 'deployments', 'pickups'):  # keyed rows: order is the engine's
        assert sorted(after[table]) == sorted(before[table]), table
    assert after['request_rows'] == before['request_rows']
    assert after['audit'][:len(before['audit'])] == before['audit']  # then the migration's own entry
    assert [row[1] for row in after['audit'][len(before['audit']):]] == ['ca_migrated']
    meta_before = dict(before['meta'])
    assert {k: v for k, v in after['meta'] if k in meta_before} == meta_before  # CRL number, salt, config...

    shared = _shared(store_url, ca.clock)
    again = shared.publish_crl(dest=str(tmp_path / 'after.crl'))
    assert again['regenerated'] is False and again['crl_number'] == history['crl']['crl_number']
    assert shared.ensure('alice', key_retention=30)['serial'] == history['renewed']['serial']  # still current
    exported = shared.export(identity='carol', dest=str(tmp_path / 'carol.p12'), password='transport-pw')
    assert exported['changed'] is True  # the held key unwraps in its new home: the wrap salt moved too
    shared.revoke(identity='carol', which='current', reason='superseded')
    newer = shared.publish_crl(dest=str(tmp_path / 'after.crl'))
    assert newer['crl_number'] == history['crl']['crl_number'] + 1 and newer['revoked_count'] == 3


def test_the_source_is_refused_afterwards_and_a_second_run_changes_nothing(ca, history, store_url):
    migrate_ca(ca_path=ca.path, store_url=store_url, ca_passphrase=PASSPHRASE, clock=ca.clock)
    with pytest.raises(CAError) as refused:
        ca.ensure('dave')
    assert refused.value.code == 'ca_moved' and 'ca_store' in str(refused.value)
    again = migrate_ca(ca_path=ca.path, store_url=store_url, ca_passphrase=PASSPHRASE, clock=ca.clock)
    assert again['changed'] is False and again['action'] == 'none'


def test_a_store_holding_a_state_is_never_overwritten(ca, history, store_url, clock):
    other = ensure_ca(store_url=store_url, ca_passphrase=PASSPHRASE, subject=dict(CA_SUBJECT, CN='Other CA'),
                      key_type='ec-p256', clock=clock)
    before_source = _rows(open_store(ca_path=ca.path))
    with pytest.raises(CAError) as refused:
        migrate_ca(ca_path=ca.path, store_url=store_url, ca_passphrase=PASSPHRASE, clock=ca.clock)
    assert refused.value.code == 'target_not_empty' and refused.value.field == 'ca_store'
    assert _rows(open_store(ca_path=ca.path)) == before_source  # not marked as moved either
    with ManagedCA(store_url=store_url, unlock=False, clock=clock) as there:
        assert there.authority.summary()['fingerprint_sha256'] == other['ca']['fingerprint_sha256']
        assert there.query()['certificates'] == []


def test_check_mode_writes_nowhere(ca, history, store_url):
    before_source = _rows(open_store(ca_path=ca.path))
    predicted = migrate_ca(ca_path=ca.path, store_url=store_url, ca_passphrase=PASSPHRASE, check_mode=True,
                           clock=ca.clock)
    assert predicted['changed'] is True and predicted['counts']['certificates'] == 4
    assert not store_exists(store_url=store_url)
    assert _rows(open_store(ca_path=ca.path)) == before_source


def _cut_after_the_copy(ca, store_url, monkeypatch):
    """Run a migration that dies between activating the copy and marking the source."""
    def die(*_args):
        raise RuntimeError('killed')
    with monkeypatch.context() as patched:
        patched.setattr(migrate, '_mark', die)
        with pytest.raises(RuntimeError):
            migrate_ca(ca_path=ca.path, store_url=store_url, ca_passphrase=PASSPHRASE, clock=ca.clock)
    assert store_exists(store_url=store_url)


def test_a_run_cut_after_the_copy_only_sets_the_mark(ca, history, store_url, monkeypatch):
    _cut_after_the_copy(ca, store_url, monkeypatch)
    ca.query()  # the source is still usable: it was not marked
    finished = migrate_ca(ca_path=ca.path, store_url=store_url, ca_passphrase=PASSPHRASE, clock=ca.clock)
    assert finished['changed'] is True and finished['action'] == 'completed'
    with pytest.raises(CAError) as refused:
        ca.ensure('dave')
    assert refused.value.code == 'ca_moved'


def test_a_source_changed_after_the_copy_is_not_marked_silently(ca, history, store_url, monkeypatch):
    _cut_after_the_copy(ca, store_url, monkeypatch)
    ca.ensure('dave')  # someone went on using the embedded CA
    with pytest.raises(CAError) as refused:
        migrate_ca(ca_path=ca.path, store_url=store_url, ca_passphrase=PASSPHRASE, clock=ca.clock)
    assert refused.value.code == 'target_not_empty' and 'changed since' in str(refused.value)
    ca.ensure('erin')  # and still can: nothing was marked
