# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service.ManagedCA.query: `superseded`, the identity's certificates other than its current one, decided once."""

from __future__ import annotations

import pytest

KEYS = {'serial', 'fingerprint_sha1', 'fingerprint_sha256', 'status'}


def _serials(result) -> list:
    return [entry['serial'] for entry in result['superseded']]


@pytest.fixture
def history(ca):
    """alice issued, renewed twice; bob issued and renewed: each with older certificates and a current one."""
    first = ca.ensure('alice')
    ca.clock.advance(hours=1)
    second = ca.ensure('alice', force=True)
    bob_old = ca.ensure('bob')
    ca.clock.advance(hours=1)
    third = ca.ensure('alice', force=True)
    bob = ca.ensure('bob', force=True)
    ca.clock.advance(hours=1)
    return ca, first, second, third, bob_old, bob


def test_a_single_certificate_supersedes_nothing(ca):
    ca.ensure('alice')
    assert ca.query(identity='alice')['superseded'] == []


def test_without_identity_there_is_no_superseded_key(history):
    ca = history[0]
    assert 'superseded' not in ca.query()
    assert 'superseded' not in ca.query(status='valid')


def test_after_renewals_the_older_ones_are_superseded(history):
    ca, first, second, third, bob_old, bob = history
    result = ca.query(identity='alice')
    assert _serials(result) == [first['serial'], second['serial']]  # oldest first, never the current one
    for entry, issued in zip(result['superseded'], (first, second), strict=True):
        assert set(entry) == KEYS
        assert entry['fingerprint_sha1'] == issued['fingerprint_sha1']
        assert entry['fingerprint_sha256'] == issued['fingerprint_sha256']
        assert entry['status'] == 'valid'  # still valid, pending revocation
    assert third['serial'] not in _serials(result)
    assert _serials(ca.query(identity='bob')) == [bob_old['serial']]
    assert not {bob_old['serial'], bob['serial']} & set(_serials(result))  # never another identity's


def test_revoked_older_ones_stay_superseded_with_their_status(history):
    ca, first, second, third, _bob_old, _bob = history
    ca.revoke(serial=first['serial'], reason='superseded')
    result = ca.query(identity='alice')
    assert [(e['serial'], e['status']) for e in result['superseded']] == [
        (first['serial'], 'revoked'), (second['serial'], 'valid')]
    ca.revoke(identity='alice', which='superseded', reason='superseded')
    assert [e['status'] for e in ca.query(identity='alice')['superseded']] == ['revoked', 'revoked']
    assert third['serial'] not in _serials(ca.query(identity='alice'))


def test_a_revoked_current_certificate_leaves_no_current_one(history):
    ca, first, second, third, _bob_old, bob = history
    ca.revoke(identity='alice', which='current', reason='affiliation_changed')
    result = ca.query(identity='alice')
    assert [(e['serial'], e['status']) for e in result['superseded']] == [
        (first['serial'], 'valid'), (second['serial'], 'valid'), (third['serial'], 'revoked')]
    assert bob['serial'] not in _serials(result)


def test_expired_older_ones_are_reported_expired(ca):
    old = ca.ensure('alice', valid_days=10)
    new = ca.ensure('alice', valid_days=365, force=True)
    ca.clock.advance(days=11)
    result = ca.query(identity='alice')
    assert result['superseded'] == [{'serial': old['serial'], 'fingerprint_sha1': old['fingerprint_sha1'],
                                     'fingerprint_sha256': old['fingerprint_sha256'], 'status': 'expired'}]
    assert new['serial'] not in _serials(result)


@pytest.mark.parametrize('filters', [
    {'current_only': True},
    {'status': 'valid'},
    {'status': 'revoked'},
    {'expiring_within': 0},
    {'serial': 'current'},
    {'serial': 'first'},
])
def test_other_filters_do_not_change_superseded(history, filters):
    ca, first, second, third, _bob_old, _bob = history
    if 'serial' in filters:
        filters = {'serial': {'current': third, 'first': first}[filters['serial']]['serial'].lower()}
    assert _serials(ca.query(identity='alice', **filters)) == [first['serial'], second['serial']]


def test_an_unknown_identity_has_nothing_superseded(history):
    ca = history[0]
    result = ca.query(identity='nobody')
    assert result['certificates'] == [] and result['superseded'] == []
