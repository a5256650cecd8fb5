# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service.ManagedCA.ensure_certificates: many identities in one call, one write transaction, or nothing."""

from __future__ import annotations

import contextlib

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.ca import batch
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, PolicyError

from conftest import CA_SUBJECT, CAHarness, PASSPHRASE  # pylint: disable=import-error

SINGLE_KEYS = {'identity', 'serial', 'subject', 'sans', 'profile', 'key_type', 'not_before', 'not_after',
               'fingerprint_sha256', 'fingerprint_sha1', 'certificate', 'chain', 'issuer', 'issuer_cn', 'key_status',
               'key_retain_until', 'reason', 'reasons', 'reason_code', 'reason_codes', 'changed', 'action',
               'previous_serial'}


def _entries(*names, **extra) -> list:
    return [dict({'identity': name, 'subject': {'CN': name.title()}}, **extra.get(name, {})) for name in names]


def _batch(ca, entries, check_mode=False, **defaults) -> dict:
    defaults.setdefault('key_type', 'ec-p256')
    with ca.open() as managed:
        return managed.ensure_certificates(entries, check_mode=check_mode, defaults=defaults)


def _rows(ca) -> int:
    return len(ca.records())


@pytest.fixture(params=['sqlite', 'postgresql'])
def any_ca(request, make_ca, clock) -> CAHarness:
    """A fresh CA in a CA directory (SQLite) or whole in a PostgreSQL store (skipped without a server)."""
    if request.param == 'sqlite':
        return make_ca('ca')
    server = request.getfixturevalue('postgresql_server')
    url = server.url(request.getfixturevalue('postgresql_database'))
    created = ensure_ca(store_url=url, ca_passphrase=PASSPHRASE, subject=dict(CA_SUBJECT), key_type='ec-p256',
                        clock=clock)
    return CAHarness(None, PASSPHRASE, clock, created, store_url=url)


def test_issues_every_entry_in_one_call_then_changes_nothing(any_ca):
    ca = any_ca
    result = _batch(ca, _entries('alice', 'bob', 'carol', bob={'email': 'bob@Example.org', 'profile': 'client_email'}))
    assert result['changed'] is True
    assert result['counts'] == {'issued': 3, 'renewed': 0, 'unchanged': 0}
    assert [c['identity'] for c in result['certificates']] == ['alice', 'bob', 'carol']
    for entry in result['certificates']:
        assert set(entry) == SINGLE_KEYS
        assert entry['action'] == 'issued' and entry['reason_code'] == 'no_certificate' and entry['changed'] is True
        assert ca.records(entry['identity'])[0].serial == entry['serial']
    bob = result['certificates'][1]
    assert bob['sans'] == ['email:bob@example.org'] and bob['profile'] == 'client_email'
    assert 'PRIVATE KEY' not in repr(result)
    assert [d['after']['identity'] for d in result['diff']] == ['alice', 'bob', 'carol']
    assert sorted(e['identity'] for e in ca.audit() if e['action'] == 'issue') == ['alice', 'bob', 'carol']

    rows = _rows(ca)
    again = _batch(ca, _entries('alice', 'bob', 'carol', bob={'email': 'bob@Example.org', 'profile': 'client_email'}))
    assert again['changed'] is False and 'diff' not in again
    assert again['counts'] == {'issued': 0, 'renewed': 0, 'unchanged': 3}
    assert [(c['action'], c['reason_code'], c['changed']) for c in again['certificates']] == [('none', 'up_to_date',
                                                                                               False)] * 3
    assert [c['serial'] for c in again['certificates']] == [c['serial'] for c in result['certificates']]
    assert _rows(ca) == rows


def test_a_due_entry_renews_and_the_others_stay(ca):
    first = _batch(ca, _entries('alice', 'bob', 'carol', bob={'valid_days': 10, 'renew_before': '5d'}))
    serials = {c['identity']: c['serial'] for c in first['certificates']}
    ca.clock.advance(days=6)
    result = _batch(ca, _entries('alice', 'bob', 'carol', bob={'valid_days': 10, 'renew_before': '5d'}))
    assert result['counts'] == {'issued': 0, 'renewed': 1, 'unchanged': 2}
    by_identity = {c['identity']: c for c in result['certificates']}
    assert by_identity['bob']['action'] == 'renewed' and by_identity['bob']['reason_code'] == 'renew_window'
    assert by_identity['bob']['previous_serial'] == serials['bob'] and by_identity['bob']['serial'] != serials['bob']
    assert ca.record(serials['bob']).renewed_by == by_identity['bob']['serial']
    assert ca.record(serials['bob']).pending_revocation is True
    for name in ('alice', 'carol'):
        assert by_identity[name]['action'] == 'none' and by_identity[name]['serial'] == serials[name]
    assert [d['before']['serial'] for d in result['diff']] == [serials['bob']]


def test_top_level_options_are_the_defaults_of_entries_that_omit_them(ca):
    result = _batch(ca, _entries('alice', 'bob', bob={'key_type': 'ec-p384', 'valid_days': 30}), key_type='ec-p256',
                    valid_days=90, profile='client_email', key_retention=3)
    alice, bob = result['certificates']
    assert (alice['key_type'], alice['profile']) == ('ec-p256', 'client_email')
    assert (bob['key_type'], bob['profile']) == ('ec-p384', 'client_email')
    assert ca.record(alice['serial']).not_after - ca.clock() > ca.record(bob['serial']).not_after - ca.clock()
    assert (ca.record(alice['serial']).key_retain_until - ca.clock()).days == 3


def test_force_on_one_entry_renews_only_that_one(ca):
    first = _batch(ca, _entries('alice', 'bob', 'carol'))
    ca.clock.advance(hours=1)
    result = _batch(ca, _entries('alice', 'bob', 'carol', carol={'force': True}))
    assert result['counts'] == {'issued': 0, 'renewed': 1, 'unchanged': 2}
    carol = result['certificates'][2]
    assert carol['reason_code'] == 'force' and carol['previous_serial'] == first['certificates'][2]['serial']
    forced_all = _batch(ca, _entries('alice', 'bob', 'carol', carol={'force': False}), force=True)
    assert forced_all['counts'] == {'issued': 0, 'renewed': 2, 'unchanged': 1}  # the entry's false wins


def test_renew_false_keeps_a_due_certificate_and_issues_a_missing_one(ca):
    _batch(ca, _entries('alice'), valid_days=10)
    ca.clock.advance(days=9)
    result = _batch(ca, _entries('alice', 'bob'), renew=False)
    assert [(c['action'], c['reason_code']) for c in result['certificates']] == [('none', 'kept'),
                                                                                 ('issued', 'no_certificate')]


@pytest.mark.parametrize('entries, error, field, identity', [
    (_entries('alice', 'bob') + [{'identity': 'carol', 'subject': {}}], InputError, 'certificates[2].subject',
     'carol'),
    (_entries('alice', 'bob') + [{'identity': 'carol', 'subject': {'XX': 'y'}}], InputError,
     'certificates[2].subject', 'carol'),
    (_entries('alice', 'bob', 'alice'), InputError, 'certificates[2].identity', 'alice'),
    (_entries('alice') + [{'identity': ' ', 'subject': {'CN': 'x'}}], InputError, 'certificates[1].identity', None),
    (_entries('alice', 'bob', bob={'valid_days': 0}), InputError, 'certificates[1].valid_days', 'bob'),
    (_entries('alice', 'bob', bob={'renew_before': 'soon'}), InputError, 'certificates[1].renew_before', 'bob'),
    (_entries('alice', 'bob', bob={'key_type': 'dsa'}), InputError, 'certificates[1].key_type', 'bob'),
    (_entries('alice', 'bob', bob={'sans': ['nonsense']}), InputError, 'certificates[1].sans', 'bob'),
    (_entries('alice', 'bob', bob={'csr': 'x'}), InputError, 'certificates[1]', None),
    (_entries('alice') + ['bob'], InputError, 'certificates[1]', None),
    ('alice', InputError, 'certificates', None),
])
def test_an_invalid_entry_anywhere_writes_nothing(ca, entries, error, field, identity):
    ca.ensure('alice')
    ca.clock.advance(hours=1)
    rows, before = _rows(ca), ca.snapshot()
    with pytest.raises(error) as failed:
        _batch(ca, entries, force=True)  # alice would be renewed and bob issued, were the batch valid
    assert failed.value.field == field or failed.value.field.startswith(field + '.')  # subject.XX names the key
    assert failed.value.message.startswith(failed.value.field + ':')
    if identity is not None:
        assert repr(identity) in failed.value.message
    assert _rows(ca) == rows and ca.snapshot() == before


def test_a_policy_refusal_names_the_entry(make_ca):
    ca = make_ca('strict', policy={'max_valid_days': 30})
    with pytest.raises(PolicyError) as failed:
        _batch(ca, _entries('alice', 'bob', bob={'valid_days': 90}), valid_days=10)
    assert failed.value.field.startswith('certificates[1].') and "'bob'" in failed.value.message
    assert _rows(ca) == 0


def test_check_mode_predicts_and_writes_nothing(ca):
    _batch(ca, _entries('alice', 'bob', bob={'valid_days': 10, 'renew_before': '5d'}))
    ca.clock.advance(days=6)
    before = ca.snapshot()
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch, 'generate_private_key', lambda *a: calls.append(a))
        result = _batch(ca, _entries('alice', 'bob', 'carol', bob={'valid_days': 10, 'renew_before': '5d'}),
                        check_mode=True)
    assert calls == [] and ca.snapshot() == before
    assert result['changed'] is True and result['counts'] == {'issued': 1, 'renewed': 1, 'unchanged': 1}
    assert [(c['identity'], c['action'], c['changed']) for c in result['certificates']] == [
        ('alice', 'none', False), ('bob', 'renewed', True), ('carol', 'issued', True)]
    carol = result['certificates'][2]
    assert carol['serial'] is None and carol['certificate'] is None and 'diff' not in carol
    assert [d['after']['serial'] for d in result['diff']] == ['(new)', '(new)']


class _Counting:
    """Wraps a store's write(): how many write transactions were opened."""

    def __init__(self, store):
        self.store, self.write, self.count = store, store.write, 0

    @contextlib.contextmanager
    def __call__(self):
        self.count += 1
        with self.write():
            yield


def test_the_batch_commits_in_one_write_transaction(any_ca):
    ca = any_ca
    ca.ensure('bob', valid_days=10, renew_before='5d')
    ca.clock.advance(days=6)
    with ca.open() as managed:
        counter = _Counting(managed.store)
        managed.store.write = counter
        result = managed.ensure_certificates(_entries('alice', 'bob', 'carol', 'dave'),
                                             defaults={'key_type': 'ec-p256'})
    assert result['counts'] == {'issued': 3, 'renewed': 1, 'unchanged': 0}
    assert counter.count == 1
    with ca.open() as managed:
        counter = _Counting(managed.store)
        managed.store.write = counter
        managed.ensure_certificates(_entries('alice', 'bob', 'carol', 'dave'), defaults={'key_type': 'ec-p256'})
    assert counter.count == 0  # nothing due: no write transaction at all


def test_a_failure_while_committing_rolls_the_whole_batch_back(any_ca):
    ca = any_ca
    ca.ensure('alice')
    rows, audit = _rows(ca), len(ca.audit())
    with ca.open() as managed:
        insert, inserted = managed.store.insert, []

        def failing_insert(record, wrapped_key=None):
            if len(inserted) == 2:
                raise RuntimeError('disk full')
            inserted.append(record.serial)
            return insert(record, wrapped_key)

        managed.store.insert = failing_insert
        with pytest.raises(RuntimeError):
            managed.ensure_certificates(_entries('alice', 'bob', 'carol', 'dave', alice={'force': True}),
                                        defaults={'key_type': 'ec-p256'})
    assert len(inserted) == 2  # two certificates had been inserted when the third failed: none of them stayed
    assert _rows(ca) == rows and len(ca.audit()) == audit
    assert [r.is_current for r in ca.records('alice')] == [True]


def test_an_identity_changed_meanwhile_is_decided_again(ca):
    """Another run issues bob (another subject) and renews carol between the batch's decision and its commit: bob
    is renewed from the other run's certificate, carol is no longer due and is reported unchanged, alice is issued
    as decided."""
    carol_first = ca.ensure('carol', subject={'CN': 'Carol'}, valid_days=10, renew_before='5d')['serial']
    ca.clock.advance(days=6)
    other = {}
    generate = batch.generate_private_key

    def racing(key_type):
        if not other:
            other['bob'] = ca.ensure('bob', subject={'CN': 'Robert'})['serial']
            other['carol'] = ca.ensure('carol', subject={'CN': 'Carol'}, valid_days=10, force=True)['serial']
        return generate(key_type)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch, 'generate_private_key', racing)
        result = _batch(ca, _entries('alice', 'bob', 'carol', carol={'valid_days': 10, 'renew_before': '5d'}))
    alice, bob, carol = result['certificates']
    assert alice['action'] == 'issued' and alice['reason_code'] == 'no_certificate'
    assert (bob['action'], bob['reason_code'], bob['previous_serial']) == ('renewed', 'subject_changed', other['bob'])
    assert (carol['action'], carol['changed'], carol['serial']) == ('none', False, other['carol'])
    assert carol_first != other['carol']
    assert result['counts'] == {'issued': 1, 'renewed': 1, 'unchanged': 1}
    assert sorted(r.serial for r in ca.records('carol')) == sorted([carol_first, other['carol']])
    assert [r.is_current for r in ca.records('bob') if r.serial == other['bob']] == [False]


@pytest.mark.parametrize('other_run', ['issues the same subject', 'issues another subject'])
def test_a_single_issue_signed_while_another_run_issued_is_decided_again(any_ca, other_run):
    """ensure_certificate signs while the store answers whether the identity changed. When another run issued the
    identity meanwhile, the certificate signed on the stale decision is dropped: nothing but the other run's
    certificate (same subject), or a renewal of it (another subject), is recorded."""
    ca = any_ca
    from ansible_collections.certfleet.pki.plugins.module_utils.ca import service
    subject = {'CN': 'Alice'} if other_run == 'issues the same subject' else {'CN': 'Alice Liddell'}
    other = {}
    generate = service.generate_private_key

    def racing(key_type):
        if not other:
            other['serial'] = None  # the other run's own key generation is not raced again
            other['serial'] = ca.ensure('alice', subject={'CN': 'Alice'})['serial']
        return generate(key_type)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, 'generate_private_key', racing)
        result = ca.ensure('alice', subject=subject)
    records = ca.records('alice')
    if other_run == 'issues the same subject':
        assert (result['action'], result['changed'], result['serial']) == ('none', False, other['serial'])
        assert [r.serial for r in records] == [other['serial']]
    else:
        assert (result['action'], result['previous_serial']) == ('renewed', other['serial'])
        assert sorted(r.serial for r in records) == sorted([other['serial'], result['serial']])
        assert [r.serial for r in records if r.is_current] == [result['serial']]
    assert len([e for e in ca.audit() if e['identity'] == 'alice']) == len(records)


def test_a_record_read_while_opening_is_checked_again_before_writing(any_ca):
    """ManagedCA(for_identity=...) lets a shared store read the identity's record while the CA opens; another run
    that issues the identity in between is still seen before anything is written."""
    ca = any_ca
    with ca.open(for_identity='alice') as managed:
        other = ca.ensure('alice', subject={'CN': 'Alice'})['serial']  # another run, after this one opened
        result = managed.ensure_certificate(managed.build_wanted(identity='alice', subject={'CN': 'Alice'},
                                                                 key_type='ec-p256'))
    assert (result['action'], result['changed'], result['serial']) == ('none', False, other)
    assert [r.serial for r in ca.records('alice')] == [other]
    with ca.open(for_identity='alice') as managed:
        again = managed.ensure_certificate(managed.build_wanted(identity='alice', subject={'CN': 'Alice'},
                                                                key_type='ec-p256'))
    assert (again['action'], again['serial']) == ('none', other)
