# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service.ManagedCA.ensure_certificate, decide() and query()."""

from __future__ import annotations

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import public_keys_match
from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import decide
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    InputError, KeyUnavailableError, PolicyError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso

SECOND = datetime.timedelta(seconds=1)


def _cert(result):
    return x509.load_pem_x509_certificate(result['certificate'].encode())


def _csr(key=None, cn='csr-user', sans=None, digest=None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(s) for s in sans]),
                                        critical=False)
    return builder.sign(key, digest or hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


# -- issuing ----------------------------------------------------------------------------------------------------

def test_issue_result_store_and_audit(ca):
    result = ca.ensure('alice', subject={'CN': 'Alice Example', 'O': 'Example Org'}, email='alice@example.org',
                       valid_days=90)
    assert result['changed'] is True and result['action'] == 'issued'
    assert result['previous_serial'] is None
    assert result['reason'] == 'no current certificate'
    certificate = _cert(result)
    assert result['serial'] == '%X' % certificate.serial_number
    assert result['fingerprint_sha256'] == certificate.fingerprint(hashes.SHA256()).hex().upper()
    assert result['fingerprint_sha1'] == certificate.fingerprint(hashes.SHA1()).hex().upper()
    assert result['not_before'] == to_iso(certificate.not_valid_before_utc)
    assert result['not_after'] == to_iso(certificate.not_valid_after_utc)
    assert result['not_after'].endswith('Z')
    assert result['subject'] == certificate.subject.rfc4514_string()
    assert result['sans'] == ['email:alice@example.org']
    assert result['chain'] == open(ca.file('ca.pem')).read()
    assert not any('PRIVATE KEY' in text for text in _strings(result))

    record = ca.record(result['serial'])
    assert record.identity == 'alice' and record.is_current and record.status == 'valid'
    assert record.key_status == 'held'
    assert record.key_retain_until == ca.clock() + datetime.timedelta(days=30)
    assert record.pem == result['certificate']
    assert record.subject == {'CN': ['Alice Example'], 'O': ['Example Org']}
    assert record.renews is None and record.renewed_by is None and record.pending_revocation is False

    audit = ca.audit()
    assert [(e['action'], e['identity'], e['serials'], e['outcome']) for e in audit[1:]] == [
        ('issue', 'alice', [result['serial']], 'issued')]
    assert 'PRIVATE' not in json.dumps(audit)


def test_rerun_changes_nothing(ca):
    first = ca.ensure('alice', email='alice@example.org')
    before = ca.snapshot()
    again = ca.ensure('alice', email='alice@example.org')
    assert again['changed'] is False and again['action'] == 'none'
    assert again['serial'] == first['serial']
    assert again['certificate'] == first['certificate']
    assert ca.snapshot() == before


def test_sans_order_and_case_do_not_trigger_renewal(ca):
    first = ca.ensure('alice', sans=['DNS:b.example.org', 'email:alice@Example.org', 'DNS:a.example.org'])
    again = ca.ensure('alice', sans=['email:alice@example.ORG', 'dns:A.example.org', 'DNS:b.example.org.'])
    assert again['action'] == 'none' and again['serial'] == first['serial']


def test_check_mode_predicts_issue_and_writes_nothing(ca):
    before = ca.snapshot()
    predicted = ca.ensure('alice', check_mode=True)
    assert predicted['changed'] is True and predicted['action'] == 'issued'
    assert predicted['serial'] is None and predicted['certificate'] is None
    assert ca.snapshot() == before
    assert ca.audit()[-1]['action'] == 'ca_created'


def test_check_mode_predicts_renewal_and_writes_nothing(ca):
    first = ca.ensure('alice')
    before = ca.snapshot()
    predicted = ca.ensure('alice', force=True, check_mode=True)
    assert predicted['changed'] is True and predicted['action'] == 'renewed'
    assert predicted['previous_serial'] == first['serial']
    assert 'force is set' in predicted['reasons']
    assert ca.snapshot() == before


# -- renewal ----------------------------------------------------------------------------------------------------

def _check_renewal_links(ca, old_serial, result):
    assert result['action'] == 'renewed' and result['changed'] is True
    assert result['previous_serial'] == old_serial
    assert result['serial'] != old_serial
    old, new = ca.record(old_serial), ca.record(result['serial'])
    assert old.is_current is False and old.pending_revocation is True and old.status == 'valid'
    assert old.renewed_by == new.serial
    assert new.renews == old.serial and new.is_current is True and new.pending_revocation is False
    entry = ca.audit()[-1]
    assert entry['action'] == 'renew' and entry['outcome'] == 'renewed'
    assert entry['serials'] == [new.serial, old.serial]
    assert entry['detail']['previous_serial'] == old.serial
    assert len([r for r in ca.records('alice') if r.is_current]) == 1


def test_renew_inside_fixed_window(ca):
    first = ca.ensure('alice', valid_days=60, renew_before='30d')
    issued_at = ca.clock()
    ca.clock.now = issued_at + datetime.timedelta(days=30) - SECOND
    assert ca.ensure('alice', valid_days=60, renew_before='30d')['action'] == 'none'
    ca.clock.now = issued_at + datetime.timedelta(days=30)
    result = ca.ensure('alice', valid_days=60, renew_before='30d')
    _check_renewal_links(ca, first['serial'], result)
    assert 'within renew_before 30d' in result['reason']
    # the fresh certificate is outside the window again
    assert ca.ensure('alice', valid_days=60, renew_before='30d')['action'] == 'none'


def test_renew_inside_percentage_window(ca):
    first = ca.ensure('alice', valid_days=100, renew_before='20%')
    certificate = _cert(first)
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    starts = certificate.not_valid_after_utc - lifetime / 5
    ca.clock.now = starts - SECOND
    assert ca.ensure('alice', valid_days=100, renew_before='20%')['action'] == 'none'
    ca.clock.now = starts
    result = ca.ensure('alice', valid_days=100, renew_before='20%')
    _check_renewal_links(ca, first['serial'], result)
    assert 'renew_before 20%' in result['reason']


def test_renew_expired_certificate(ca):
    first = ca.ensure('alice', valid_days=10, renew_before='1d')
    ca.clock.advance(days=11)
    result = ca.ensure('alice', valid_days=10, renew_before='1d')
    _check_renewal_links(ca, first['serial'], result)
    assert 'expired at' in result['reason']


@pytest.mark.parametrize('change, reason', [
    ({'subject': {'CN': 'Alice Renamed'}}, 'subject differs'),
    ({'subject': {'CN': 'alice', 'OU': 'Ops'}}, 'subject differs'),
    ({'email': 'alice@new.example.org'}, 'SANs differ'),
    ({'sans': ['DNS:ws2.example.org']}, 'SANs differ'),
    ({'sans': []}, 'SANs differ'),
    ({'profile': 'client_email'}, 'profile differs'),
    ({'key_type': 'ec-p384'}, 'key type differs'),
    ({'force': True}, 'force is set'),
])
def test_renew_on_change(ca, change, reason):
    base = {'subject': {'CN': 'alice'}, 'email': 'alice@example.org', 'sans': ['DNS:ws1.example.org'],
            'profile': 'client', 'key_type': 'ec-p256'}
    first = ca.ensure('alice', **base)
    wanted = dict(base, **change)
    result = ca.ensure('alice', **wanted)
    _check_renewal_links(ca, first['serial'], result)
    assert any(r.startswith(reason) for r in result['reasons']), result['reasons']
    new = _cert(result)
    if 'email' in change:
        assert 'alice@new.example.org' in new.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.RFC822Name)
        assert '-email:alice@example.org' in result['reason'] and '+email:alice@new.example.org' in result['reason']
    wanted.pop('force', None)
    assert ca.ensure('alice', **wanted)['action'] == 'none'


def test_rerun_after_renewal_reports_previous_serial(ca):
    first = ca.ensure('alice')
    second = ca.ensure('alice', force=True)
    again = ca.ensure('alice')
    assert again['action'] == 'none' and again['serial'] == second['serial']
    assert again['previous_serial'] == first['serial']


def test_issue_after_current_was_revoked(ca):
    first = ca.ensure('alice')
    ca.revoke(identity='alice', which='current', reason='key_compromise')
    result = ca.ensure('alice')
    assert result['action'] == 'issued' and result['serial'] != first['serial']
    assert 'revoked' in result['reason']
    assert result['previous_serial'] is None
    assert ca.record(first['serial']).status == 'revoked'


# -- decide() on its own ----------------------------------------------------------------------------------------

@pytest.fixture
def current_and_ca(ca):
    first = ca.ensure('alice', subject={'CN': 'alice', 'O': 'Example Org'}, sans=['DNS:ws1.example.org'],
                      email='alice@example.org', valid_days=100, key_type='ec-p256')
    return ca.record(first['serial']), ca


BASE = {'subject': {'CN': 'alice', 'O': 'Example Org'}, 'sans': ['DNS:ws1.example.org'], 'email': 'alice@example.org',
        'valid_days': 100, 'key_type': 'ec-p256', 'renew_before': '30d'}


@pytest.mark.parametrize('change, days_later, action, code, reason', [
    ({}, 0, 'none', 'up_to_date', None),
    ({'subject': {'O': 'Example Org', 'CN': 'alice'}}, 0, 'none', 'up_to_date', None),
    ({'sans': ['dns:WS1.example.org']}, 0, 'none', 'up_to_date', None),
    ({'email': 'alice@EXAMPLE.org'}, 0, 'none', 'up_to_date', None),
    ({'valid_days': 30}, 0, 'none', 'up_to_date', None),  # a new lifetime alone waits for the renewal window
    ({}, 69, 'none', 'up_to_date', None),
    ({}, 71, 'renew', 'renew_window', 'expires at'),
    ({'renew_before': '50%'}, 49, 'none', 'up_to_date', None),
    ({'renew_before': '50%'}, 51, 'renew', 'renew_window', 'within renew_before 50%'),
    ({}, 101, 'renew', 'expired', 'expired at'),
    ({'force': True}, 0, 'renew', 'force', 'force is set'),
    ({'subject': {'CN': 'alice'}}, 0, 'renew', 'subject_changed', 'subject differs'),
    ({'email': 'a.smith@example.org'}, 0, 'renew', 'sans_changed', 'SANs differ'),
    ({'sans': ['DNS:ws1.example.org', 'IP:192.0.2.1']}, 0, 'renew', 'sans_changed', 'SANs differ'),
    ({'profile': 'smartcard'}, 0, 'renew', 'profile_changed', 'profile differs'),
    ({'key_type': 'rsa2048'}, 0, 'renew', 'key_type_changed', 'key type differs'),
])
def test_decide_table(current_and_ca, change, days_later, action, code, reason):
    current, ca = current_and_ca
    with ca.open() as managed:
        wanted = managed.build_wanted(identity='alice', **dict(BASE, **change))
    now = ca.clock() + datetime.timedelta(days=days_later)
    decision = decide(current, wanted, now)
    assert decision.action == action
    assert decision.code == code
    assert decision.window_reached == (code in ('expired', 'renew_window'))
    if reason is None:
        assert decision.texts == [] and decision.codes == []
    else:
        assert any(reason in r for r in decision.texts), decision.texts


def test_decide_without_current(current_and_ca):
    current, ca = current_and_ca
    with ca.open() as managed:
        wanted = managed.build_wanted(identity='bob', subject={'CN': 'bob'}, key_type='ec-p256')
    decision = decide(None, wanted, ca.clock())
    assert (decision.action, decision.texts, decision.codes) == ('issue', ['no current certificate'],
                                                                 ['no_certificate'])
    decision = decide(None, wanted, ca.clock(), had_history=True)
    assert decision.action == 'issue' and 'revoked' in decision.texts[0]
    assert decision.code == 'previous_revoked'


def test_decide_collects_every_reason(current_and_ca):
    current, ca = current_and_ca
    with ca.open() as managed:
        request = dict(BASE, subject={'CN': 'x'}, profile='client_email', force=True)
        wanted = managed.build_wanted(identity='alice', **request)
    decision = decide(current, wanted, ca.clock())
    assert decision.action == 'renew'
    assert [r.split(':', maxsplit=1)[0].split(' ', maxsplit=1)[0] for r in decision.texts] == [
        'force', 'subject', 'profile']
    assert decision.codes == ['force', 'subject_changed', 'profile_changed']
    assert [r.code for r in decision.changes()] == ['subject_changed', 'profile_changed']


# -- CSR --------------------------------------------------------------------------------------------------------

def test_csr_issuance_keeps_key_on_endpoint(ca, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = _csr(key, cn='laptop-7', sans=['owner@example.org'])
    result = ca.ensure('laptop-7', subject=None, csr=csr)
    assert result['action'] == 'issued'
    assert result['key_status'] == 'endpoint' and result['key_retain_until'] is None
    certificate = _cert(result)
    assert public_keys_match(certificate.public_key(), key.public_key())
    assert certificate.subject.rfc4514_string() == 'CN=laptop-7'
    assert result['sans'] == ['email:owner@example.org']
    with ca.open() as managed, managed.store.read():
        assert managed.store.wrapped_key(result['serial']) is None
    # the same CSR again: nothing to do; given as a path this time
    path = tmp_path / 'req.pem'
    path.write_text(csr)
    assert ca.ensure('laptop-7', subject=None, csr=str(path))['action'] == 'none'
    # its key cannot be exported: it never reached the CA
    for fmt in ('pkcs12', 'pem'):
        with pytest.raises(KeyUnavailableError) as err:
            ca.export(serial=result['serial'], format=fmt, dest=str(tmp_path / 'out'), password='pw',
                      include_key=True)
        assert 'never left the endpoint' in str(err.value)
        assert err.value.code == 'key_never_held'
    assert not (tmp_path / 'out').exists()
    # the certificate alone can be exported
    assert ca.export(serial=result['serial'], format='der', dest=str(tmp_path / 'cert.der'))['changed'] is True


def test_csr_with_new_key_renews_and_explicit_subject_wins(ca):
    first = ca.ensure('laptop', subject=None, csr=_csr(cn='laptop'))
    second = ca.ensure('laptop', subject=None, csr=_csr(cn='laptop'))
    assert second['action'] == 'renewed' and 'the CSR carries a different key' in second['reasons']
    assert second['previous_serial'] == first['serial']
    third = ca.ensure('laptop', subject={'CN': 'Laptop of Alice'}, csr=_csr(cn='ignored'))
    assert _cert(third).subject.rfc4514_string() == 'CN=Laptop of Alice'
    # back to a CA-generated key
    fourth = ca.ensure('laptop', subject={'CN': 'Laptop of Alice'})
    assert fourth['action'] == 'renewed'
    assert any('came from a CSR' in r for r in fourth['reasons'])


def test_csr_with_bad_signature_refused(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    good = x509.load_pem_x509_csr(_csr(key, cn='alice').encode())
    der = good.public_bytes(serialization.Encoding.DER)
    forged_der = der.replace(b'alice', b'mallo')  # same length: the structure parses, the signature no longer fits
    assert forged_der != der
    forged = x509.load_der_x509_csr(forged_der).public_bytes(serialization.Encoding.PEM).decode()
    before = ca.snapshot()
    with pytest.raises(InputError) as err:
        ca.ensure('mallory', subject=None, csr=forged)
    assert err.value.field == 'csr'
    assert 'signature' in str(err.value)
    assert ca.snapshot() == before


@pytest.mark.parametrize('make_key, words', [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), 'too weak'),
    (lambda: ec.generate_private_key(ec.SECP521R1()), 'not supported'),
    (lambda: ec.generate_private_key(ec.SECP256K1()), 'not supported'),
])
def test_csr_with_weak_or_unsupported_key_refused(ca, make_key, words):
    before = ca.snapshot()
    with pytest.raises(PolicyError) as err:
        ca.ensure('weak', subject=None, csr=_csr(make_key(), cn='weak'))
    assert err.value.field == 'csr'
    assert words in str(err.value)
    assert ca.snapshot() == before


@pytest.mark.parametrize('csr, words', [
    ('-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n', 'not a PEM'),
    ('/nonexistent/request.csr', 'does not exist'),
])
def test_malformed_csr_refused(ca, csr, words):
    before = ca.snapshot()
    with pytest.raises(InputError) as err:
        ca.ensure('x', subject=None, csr=csr)
    assert err.value.field == 'csr'
    assert words in str(err.value)
    assert ca.snapshot() == before


# -- bad input --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('params, field', [
    ({'identity': ''}, 'identity'),
    ({'identity': '   '}, 'identity'),
    ({'identity': None}, 'identity'),
    ({'identity': 'a\nb'}, 'identity'),
    ({'identity': 'x' * 256}, 'identity'),
    ({'subject': None}, 'subject'),
    ({'subject': {}}, 'subject'),
    ({'subject': {'CN': 'bad\x00name'}}, 'subject.CN'),
    ({'subject': {'CN': 'x' * 65}}, 'subject.CN'),
    ({'subject': {'CN': 'x', 'C': 'de'}}, 'subject.C'),
    ({'subject': {'CN': 'x', 'Shoe': '42'}}, 'subject.Shoe'),
    ({'subject': 'CN=x'}, 'subject'),
    ({'sans': ['DNS:bad_name.example.org']}, 'sans'),
    ({'sans': ['smtp:x@example.org']}, 'sans'),
    ({'sans': 'DNS:x.example.org'}, 'sans'),
    ({'email': 'not-an-address'}, 'email'),
    ({'profile': 'server'}, 'profile'),
    ({'key_type': 'rsa1024'}, 'key_type'),
    ({'key_type': 'ec-p521'}, 'key_type'),
    ({'renew_before': '30 parsecs'}, 'renew_before'),
    ({'renew_before': '100%'}, 'renew_before'),
    ({'valid_days': 0}, 'valid_days'),
    ({'valid_days': 'forever'}, 'valid_days'),
    ({'key_retention': -1}, 'key_retention'),
])
def test_bad_input_writes_no_row_and_no_audit(ca, params, field):
    ca.ensure('existing')
    before = ca.snapshot()
    request = dict({'identity': 'alice', 'subject': {'CN': 'alice'}, 'key_type': 'ec-p256'}, **params)
    with pytest.raises(InputError) as err:
        with ca.open() as managed:
            managed.ensure_certificate(managed.build_wanted(**request))
    assert err.value.field == field
    assert err.value.message.startswith(field)
    assert ca.snapshot() == before


# -- keys held for pickup ---------------------------------------------------------------------------------------

def test_held_keys_are_purged_after_retention_by_the_next_write(ca):
    first = ca.ensure('alice', key_retention=2)
    with ca.open() as managed, managed.store.read():
        assert managed.store.wrapped_key(first['serial']) is not None
    ca.clock.advance(days=2)
    ca.ensure('bob')  # any write transaction purges what is due
    record = ca.record(first['serial'])
    assert record.key_status == 'purged'
    assert record.key_purged_at == ca.clock()
    with ca.open() as managed, managed.store.read():
        assert managed.store.wrapped_key(first['serial']) is None
        assert managed.store.wrapped_key(ca.records('bob')[0].serial) is not None


# -- query ------------------------------------------------------------------------------------------------------

def test_query_statuses_and_expiry(ca):
    old = ca.ensure('alice', valid_days=30)
    new = ca.ensure('alice', valid_days=365, force=True)
    bob = ca.ensure('bob', valid_days=10)
    carol = ca.ensure('carol', valid_days=365)
    ca.revoke(serial=carol['serial'], reason='cessation_of_operation')

    def serials(**kw):
        return sorted(c['serial'] for c in ca.query(**kw)['certificates'])

    assert serials() == sorted([old['serial'], new['serial'], bob['serial'], carol['serial']])
    assert serials(identity='alice') == sorted([old['serial'], new['serial']])
    assert serials(status='pending_revocation') == [old['serial']]
    assert serials(status='revoked') == [carol['serial']]
    assert serials(expiring_within=15) == [bob['serial']]
    assert serials(expiring_within=40) == sorted([bob['serial'], old['serial']])
    ca.clock.advance(days=11)
    assert serials(status='expired') == [bob['serial']]
    result = ca.query()
    assert result['changed'] is False
    assert result['totals'] == {'total': 4, 'valid': 2, 'revoked': 1, 'expired': 1, 'pending_revocation': 1,
                                'identities': 3}
    assert result['count'] == 4
    assert not any('PRIVATE KEY' in text for text in _strings(result))
    with pytest.raises(InputError) as err:
        ca.query(status='lost')
    assert err.value.field == 'status'


def test_query_by_identity_does_not_count_the_whole_store(ca, monkeypatch):
    """The per-identity path (deploy role, superseded) stays flat as the store grows: no whole-store totals."""
    from ansible_collections.certfleet.pki.plugins.module_utils.store.sqlite import SQLiteStore
    ca.ensure('alice')
    ca.ensure('bob')
    assert ca.query()['totals']['total'] == 2

    def refuse(*args, **kwargs):
        raise AssertionError('counts() on the per-identity path')

    monkeypatch.setattr(SQLiteStore, 'counts', refuse)
    result = ca.query(identity='alice')
    assert result['count'] == 1 and 'totals' not in result and result['superseded'] == []


def test_query_include_deployments_and_ca_pem(ca):
    alice = ca.ensure('alice')
    bob = ca.ensure('bob')
    with ca.open() as managed:
        managed.record_deployments([
            {'identity': 'alice', 'host': 'h1', 'serial': alice['serial'], 'stores': ['firefox']},
            {'identity': 'alice', 'host': 'h2', 'serial': alice['serial'], 'stores': ['chromium']},
            {'identity': 'bob', 'host': 'h2', 'serial': bob['serial'], 'stores': ['firefox']},
        ])
    assert 'deployments' not in ca.query()
    assert 'certificate' not in ca.query()['ca']
    everything = ca.query(include_deployments=True)['deployments']
    assert [(d['identity'], d['host'], d['serial']) for d in everything] == [
        ('alice', 'h1', alice['serial']), ('alice', 'h2', alice['serial']), ('bob', 'h2', bob['serial'])]
    assert {d['host'] for d in ca.query(identity='bob', include_deployments=True)['deployments']} == {'h2'}
    assert ca.query(serial=alice['serial'], include_deployments=True)['deployments'] == everything[:2]
    ca.revoke(serial=bob['serial'])
    assert ca.query(status='revoked', include_deployments=True)['deployments'] == everything[2:]
    pem = ca.query(include_certificate=True)['ca']['certificate']
    assert pem.startswith('-----BEGIN CERTIFICATE-----') and 'PRIVATE' not in pem
