# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service.ManagedCA.revoke."""

from __future__ import annotations

import sqlite3

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, NotFoundError
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import REVOCATION_REASONS

ISSUE_REASONS = ('unspecified', 'key_compromise', 'affiliation_changed', 'superseded', 'cessation_of_operation',
                 'certificate_hold', 'privilege_withdrawn')


@pytest.fixture
def renewed(ca):
    """alice renewed twice: two superseded certificates and a current one; bob with one current."""
    first = ca.ensure('alice')['serial']
    ca.clock.advance(hours=1)
    second = ca.ensure('alice', force=True)['serial']
    ca.clock.advance(hours=1)
    third = ca.ensure('alice', force=True)['serial']
    bob = ca.ensure('bob')['serial']
    ca.clock.advance(hours=1)
    return ca, first, second, third, bob


def _audit_revokes(ca):
    return [(e['serials'], e['detail']['reason']) for e in ca.audit() if e['action'] == 'revoke']


def test_revoke_by_serial_then_idempotent(ca):
    serial = ca.ensure('alice')['serial']
    ca.clock.advance(minutes=5)
    result = ca.revoke(serial=serial, reason='key_compromise')
    assert result['changed'] is True and result['revoked'] == [serial]
    assert result['certificates'][0]['status'] == 'revoked'
    record = ca.record(serial)
    assert record.status == 'revoked' and record.revocation_reason == 'key_compromise'
    assert record.revoked_at == ca.clock()
    assert record.is_current is False
    assert record.key_status == 'purged'  # the held key of a revoked certificate is dropped
    assert _audit_revokes(ca) == [([serial], 'key_compromise')]

    before = ca.snapshot()
    ca.clock.advance(days=1)
    again = ca.revoke(serial=serial, reason='superseded')
    assert again['changed'] is False and again['revoked'] == [] and again['already_revoked'] == [serial]
    assert ca.snapshot() == before
    # revoked stays revoked, with its first time and reason
    record = ca.record(serial)
    assert record.status == 'revoked' and record.revocation_reason == 'key_compromise'


@pytest.mark.parametrize('spelling', ['lower', 'colons', '0x', 'leading zeros'])
def test_serial_spellings(ca, spelling):
    serial = ca.ensure('alice')['serial']
    padded = serial if len(serial) % 2 == 0 else '0' + serial
    text = {'lower': serial.lower(),
            'colons': ':'.join(padded[i:i + 2] for i in range(0, len(padded), 2)).lower(),  # as OpenSSL prints
            '0x': '0x' + serial, 'leading zeros': '000' + serial}[spelling]
    assert ca.revoke(serial=text)['revoked'] == [serial]


def test_revoke_superseded_current_all(renewed):
    ca, first, second, third, bob = renewed
    superseded = ca.revoke(identity='alice', which='superseded', reason='superseded')
    assert sorted(superseded['revoked']) == sorted([first, second])
    assert ca.record(third).status == 'valid' and ca.record(third).is_current
    assert ca.record(first).pending_revocation is False
    assert ca.revoke(identity='alice', which='superseded')['changed'] is False

    current = ca.revoke(identity='alice', which='current', reason='affiliation_changed')
    assert current['revoked'] == [third]
    assert ca.record(third).revocation_reason == 'affiliation_changed'
    with ca.open() as managed, managed.store.read():
        assert managed.store.current('alice') is None
    assert ca.revoke(identity='alice', which='current')['changed'] is False
    assert ca.record(bob).status == 'valid'

    everything = ca.revoke(identity='bob', which='all', reason='cessation_of_operation')
    assert everything['revoked'] == [bob]
    assert sorted(s for s, _r in _audit_revokes(ca)) == sorted([[first], [second], [third], [bob]])


def test_revoke_default_which_is_superseded(renewed):
    ca, first, second, third, _bob = renewed
    assert sorted(ca.revoke(identity='alice')['revoked']) == sorted([first, second])
    assert ca.record(third).status == 'valid'


def test_revoke_all_for_identity(renewed):
    ca, first, second, third, bob = renewed
    result = ca.revoke(identity='alice', which='all', reason='privilege_withdrawn')
    assert sorted(result['revoked']) == sorted([first, second, third])
    assert {ca.record(s).revocation_reason for s in (first, second, third)} == {'privilege_withdrawn'}
    assert ca.record(bob).status == 'valid'


def test_check_mode_revoke_writes_nothing(renewed):
    ca, first, second, _third, _bob = renewed
    before = ca.snapshot()
    with ca.open() as managed:
        result = managed.revoke(identity='alice', which='superseded', check_mode=True)
    assert result['changed'] is True and sorted(result['revoked']) == sorted([first, second])
    assert ca.snapshot() == before


@pytest.mark.parametrize('reason', ISSUE_REASONS)
def test_every_documented_reason_is_accepted(ca, reason):
    serial = ca.ensure('alice')['serial']
    assert reason in REVOCATION_REASONS
    ca.revoke(serial=serial, reason=reason)
    assert ca.record(serial).revocation_reason == reason


@pytest.mark.parametrize('params, error, field', [
    ({'serial': 'ABCDEF0123', 'reason': 'unspecified'}, NotFoundError, 'serial'),
    ({'serial': 'not-hex'}, InputError, 'serial'),
    ({'serial': 'A' * 41}, InputError, 'serial'),
    ({'identity': 'nobody'}, NotFoundError, 'identity'),
    ({'identity': 'alice', 'which': 'oldest'}, InputError, 'which'),
    ({'identity': 'alice', 'reason': 'lost_it'}, InputError, 'reason'),
    ({'identity': 'alice', 'reason': 'keyCompromise'}, InputError, 'reason'),
    ({'identity': 'alice', 'reason': None}, InputError, 'reason'),
    ({}, InputError, 'identity'),
    ({'identity': 'alice', 'serial': 'AB'}, InputError, 'serial'),
    ({'serial': 'AB', 'which': 'all'}, InputError, 'which'),
])
def test_bad_revocations_write_nothing(renewed, params, error, field):
    ca = renewed[0]
    before = ca.snapshot()
    with pytest.raises(error) as err:
        ca.revoke(**params)
    assert err.value.field == field
    assert ca.snapshot() == before


def test_unknown_serial_message(ca):
    ca.ensure('alice')
    with pytest.raises(NotFoundError) as err:
        ca.revoke(serial='0a:bc')
    assert 'ABC' in str(err.value) and 'no certificate' in str(err.value)


def test_unknown_reason_lists_the_names(ca):
    serial = ca.ensure('alice')['serial']
    with pytest.raises(InputError) as err:
        ca.revoke(serial=serial, reason='stolen')
    for name in ISSUE_REASONS:
        assert name in str(err.value)
    assert ca.record(serial).status == 'valid'


def test_revoked_stays_revoked_even_by_direct_sql(ca):
    serial = ca.ensure('alice')['serial']
    ca.revoke(serial=serial)
    conn = sqlite3.connect(ca.state_path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match='stays revoked'):
            conn.execute("UPDATE certificates SET status = 'valid' WHERE serial = ?", (serial,))
    finally:
        conn.close()
    # renewal does not resurrect it either
    ca.ensure('alice', force=True)
    assert ca.record(serial).status == 'revoked'
