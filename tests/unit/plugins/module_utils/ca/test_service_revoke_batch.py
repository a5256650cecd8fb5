# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service.ManagedCA.revoke_many: many serials and identities in one transaction, or nothing."""

from __future__ import annotations

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, NotFoundError


def _revoke_many(ca, **params):
    with ca.open() as managed:
        return managed.revoke_many(**params)


@pytest.fixture
def renewed(ca):
    """alice and bob renewed once (each has a superseded and a current certificate); carol has one."""
    old = {name: ca.ensure(name)['serial'] for name in ('alice', 'bob', 'carol')}
    ca.clock.advance(hours=1)
    new = {name: ca.ensure(name, force=True)['serial'] for name in ('alice', 'bob')}
    ca.clock.advance(hours=1)
    return ca, old, new


def _revoke_entries(ca) -> list:
    return sorted(s for e in ca.audit() if e['action'] == 'revoke' for s in e['serials'])


def test_identities_superseded_and_serials_in_one_call(renewed):
    ca, old, new = renewed
    result = _revoke_many(ca, identities=['alice', 'bob'], which='superseded', serials=[old['carol'].lower()],
                          reason='superseded')
    assert result['changed'] is True
    assert sorted(result['revoked']) == sorted([old['alice'], old['bob'], old['carol']])
    assert all(c['status'] == 'revoked' for c in result['certificates'])
    for serial in (old['alice'], old['bob'], old['carol']):
        record = ca.record(serial)
        assert record.status == 'revoked' and record.revocation_reason == 'superseded'
    assert ca.record(new['alice']).status == 'valid' and ca.record(new['bob']).status == 'valid'
    assert _revoke_entries(ca) == sorted([old['alice'], old['bob'], old['carol']])

    before = ca.snapshot()
    again = _revoke_many(ca, identities=['alice', 'bob'], which='superseded', serials=[old['carol']],
                         reason='superseded')
    assert again['changed'] is False and again['revoked'] == [] and again['already_revoked'] == [old['carol']]
    assert ca.snapshot() == before


def test_a_serial_named_twice_or_also_selected_by_identity_is_revoked_once(renewed):
    ca, old, new = renewed
    result = _revoke_many(ca, serials=[old['alice'], '0x' + old['alice']], identities=['alice'], which='all')
    assert sorted(result['revoked']) == sorted([old['alice'], new['alice']])
    assert len(_revoke_entries(ca)) == 2


def test_check_mode_predicts_and_changes_nothing(renewed):
    ca, old, _new = renewed
    before = ca.snapshot()
    result = _revoke_many(ca, identities=['alice', 'bob'], check_mode=True)  # which defaults to superseded
    assert result['changed'] is True and sorted(result['revoked']) == sorted([old['alice'], old['bob']])
    assert ca.snapshot() == before


@pytest.mark.parametrize('params, error, field', [
    ({'serials': ['{alice}', 'ABCDEF']}, NotFoundError, 'serials[1]'),
    ({'serials': ['{alice}', 'not hex']}, InputError, 'serials[1]'),
    ({'serials': ['{alice}', None]}, InputError, 'serials[1]'),
    ({'serials': ['{alice}'], 'identities': ['bob', 'nobody']}, NotFoundError, 'identities[1]'),
    ({'serials': ['{alice}'], 'identities': ['bob', '']}, InputError, 'identities[1]'),
    ({'serials': ['{alice}'], 'identities': ['bob'], 'which': 'some'}, InputError, 'which'),
    ({'serials': ['{alice}'], 'which': 'all'}, InputError, 'which'),
    ({'serials': ['{alice}'], 'reason': 'boredom'}, InputError, 'reason'),
    ({'serials': '{alice}'}, InputError, 'serials'),
    ({}, InputError, 'serials'),
])
def test_bad_item_anywhere_revokes_nothing(renewed, params, error, field):
    ca, old, _new = renewed
    for key in ('serials',):
        if isinstance(params.get(key), list):
            params[key] = [v.format(alice=old['alice']) if isinstance(v, str) else v for v in params[key]]
        elif isinstance(params.get(key), str):
            params[key] = params[key].format(alice=old['alice'])
    before = ca.snapshot()
    with pytest.raises(error) as err:
        _revoke_many(ca, **params)
    assert err.value.field == field
    assert field in err.value.message
    assert ca.snapshot() == before


def test_single_revoke_keeps_its_fields(renewed):
    """The single-item options go through the same rule and keep naming serial and identity."""
    ca, _old, _new = renewed
    with pytest.raises(NotFoundError) as err:
        ca.revoke(serial='ABCDEF')
    assert err.value.field == 'serial'
    with pytest.raises(NotFoundError) as err:
        ca.revoke(identity='nobody')
    assert err.value.field == 'identity'
    with pytest.raises(InputError) as err:
        ca.revoke(serial='zz')
    assert err.value.field == 'serial'


def test_empty_lists_revoke_nothing(renewed):
    ca, _old, _new = renewed
    before = ca.snapshot()
    result = _revoke_many(ca, serials=[], identities=[])
    assert result['changed'] is False and result['revoked'] == [] and result['already_revoked'] == []
    assert ca.snapshot() == before
