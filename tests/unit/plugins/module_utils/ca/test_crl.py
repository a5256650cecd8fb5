# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CRL publication: content, numbering, regeneration, OpenSSL interop, and the lost-revocation guard."""

from __future__ import annotations

import datetime
import os
import shutil
import sqlite3
import stat
import subprocess

import pytest
from cryptography import x509

from ansible_collections.certfleet.pki.plugins.module_utils.ca.crl import crl_number, crl_serials
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import BACKDATE
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CAError, InputError, StoreError


def _crl(ca):
    return x509.load_der_x509_crl(open(ca.file('crl.der'), 'rb').read())


def _ca_certificate(ca):
    return x509.load_pem_x509_certificate(open(ca.file('ca.pem'), 'rb').read())


def _openssl_verify(ca, certificate_pem, tmp_path):
    path = tmp_path / 'leaf.pem'
    path.write_text(certificate_pem)
    return subprocess.run(['openssl', 'verify', '-crl_check', '-CAfile', ca.file('ca.pem'), '-CRLfile',
                           ca.file('crl.pem'), str(path)], capture_output=True, text=True, check=False)


def test_first_crl_content(ca):
    result = ca.publish_crl(next_update_days=7)
    assert result['changed'] is True and result['regenerated'] is True
    assert result['reasons'] == ['no CRL published yet']
    assert result['crl_number'] == 1 and result['revoked_count'] == 0
    crl = _crl(ca)
    ca_certificate = _ca_certificate(ca)
    assert crl.is_signature_valid(ca_certificate.public_key())
    assert crl.issuer == ca_certificate.subject
    assert crl_number(crl) == 1
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest
    assert crl.last_update_utc == ca.clock() - BACKDATE
    assert crl.next_update_utc == ca.clock() + datetime.timedelta(days=7)
    assert len(crl) == 0
    pem = x509.load_pem_x509_crl(open(ca.file('crl.pem'), 'rb').read())
    assert pem == crl
    for name in ('crl.pem', 'crl.der'):
        assert stat.S_IMODE(os.stat(ca.file(name)).st_mode) == 0o644
    text = subprocess.run(['openssl', 'crl', '-noout', '-text', '-in', ca.file('crl.pem')], capture_output=True,
                          text=True, check=True).stdout
    assert 'X509v3 CRL Number' in text and 'X509v3 Authority Key Identifier' in text
    assert [e['action'] for e in ca.audit()][-1] == 'crl_publish'


def test_number_increments_only_on_change(ca):
    serial = ca.ensure('alice')['serial']
    assert ca.publish_crl()['crl_number'] == 1
    before = ca.snapshot()
    crl_bytes = open(ca.file('crl.der'), 'rb').read()
    again = ca.publish_crl()
    assert again['changed'] is False and again['regenerated'] is False and again['crl_number'] == 1
    assert open(ca.file('crl.der'), 'rb').read() == crl_bytes
    assert ca.snapshot() == before
    ca.ensure('bob')  # issuing is not a change of the revocation list
    assert ca.publish_crl()['regenerated'] is False

    ca.revoke(serial=serial, reason='key_compromise')
    changed = ca.publish_crl()
    assert changed['regenerated'] is True and 'revocations changed' in changed['reasons']
    assert changed['crl_number'] == 2 and crl_number(_crl(ca)) == 2
    assert ca.publish_crl()['crl_number'] == 2

    ca.revoke(serial=serial, reason='superseded')  # already revoked: no change, no new CRL
    assert ca.publish_crl()['regenerated'] is False


def test_revoked_serials_listed_with_reasons(ca):
    alice = ca.ensure('alice')['serial']
    bob = ca.ensure('bob')['serial']
    carol = ca.ensure('carol')['serial']
    ca.revoke(serial=alice, reason='key_compromise')
    ca.clock.advance(minutes=1)
    ca.revoke(serial=bob)  # unspecified
    result = ca.publish_crl()
    assert result['revoked_count'] == 2
    crl = _crl(ca)
    assert crl_serials(crl) == {alice, bob}
    assert carol not in crl_serials(crl)
    entry = crl.get_revoked_certificate_by_serial_number(int(alice, 16))
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert entry.revocation_date_utc == ca.record(alice).revoked_at
    unspecified = crl.get_revoked_certificate_by_serial_number(int(bob, 16))
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280: reasonCode unspecified is left out
        unspecified.extensions.get_extension_for_class(x509.CRLReason)


def test_openssl_verify_accepts_valid_and_rejects_revoked(ca, tmp_path):
    valid = ca.ensure('alice')
    revoked = ca.ensure('bob')
    ca.revoke(serial=revoked['serial'], reason='key_compromise')
    ca.publish_crl()
    good = _openssl_verify(ca, valid['certificate'], tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert ': OK' in good.stdout
    bad = _openssl_verify(ca, revoked['certificate'], tmp_path)
    assert bad.returncode == 2
    assert 'certificate revoked' in bad.stdout + bad.stderr
    # renewal keeps the old certificate valid (pending revocation) until it is revoked
    renewed = ca.ensure('alice', force=True)
    ca.publish_crl()
    assert _openssl_verify(ca, valid['certificate'], tmp_path).returncode == 0
    ca.revoke(identity='alice', which='superseded', reason='superseded')
    ca.publish_crl()
    assert _openssl_verify(ca, valid['certificate'], tmp_path).returncode == 2
    assert _openssl_verify(ca, renewed['certificate'], tmp_path).returncode == 0


def test_regenerated_when_next_update_is_near(ca):
    ca.publish_crl(next_update_days=4)
    ca.clock.advance(days=1)
    assert ca.publish_crl(next_update_days=4)['regenerated'] is False
    ca.clock.advance(days=1, minutes=5)  # past half of the CRL's validity
    result = ca.publish_crl(next_update_days=4)
    assert result['regenerated'] is True and result['reasons'] == ['next update is near']
    assert result['crl_number'] == 2
    assert _crl(ca).next_update_utc == ca.clock() + datetime.timedelta(days=4)
    changed_days = ca.publish_crl(next_update_days=2)
    assert changed_days['reasons'] == ['next_update_days changed'] and changed_days['crl_number'] == 3


def test_dest_copy_and_idempotency(ca, tmp_path):
    ca.ensure('alice')
    dest = tmp_path / 'public' / 'client-ca.crl'
    dest.parent.mkdir()
    first = ca.publish_crl(dest=str(dest), format='der')
    assert first['changed'] is True
    assert dest.read_bytes() == open(ca.file('crl.der'), 'rb').read()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644
    assert ca.publish_crl(dest=str(dest), format='der')['changed'] is False
    dest.unlink()
    restored = ca.publish_crl(dest=str(dest), format='der')
    assert restored['changed'] is True and restored['regenerated'] is False
    pem_dest = tmp_path / 'public' / 'client-ca.pem'
    ca.publish_crl(dest=str(pem_dest), format='pem')
    assert pem_dest.read_bytes() == open(ca.file('crl.pem'), 'rb').read()
    # a regenerated CRL replaces the copy at dest
    ca.revoke(serial=ca.records('alice')[0].serial)
    updated = ca.publish_crl(dest=str(pem_dest), format='pem')
    assert updated['changed'] is True and updated['crl_number'] == 2
    assert crl_number(x509.load_pem_x509_crl(pem_dest.read_bytes())) == 2
    # and a copy that was tampered with (same mode) is put right
    dest.write_bytes(b'stale')
    os.chmod(dest, 0o644)
    assert ca.publish_crl(dest=str(dest), format='der')['changed'] is True
    assert dest.read_bytes() == open(ca.file('crl.der'), 'rb').read()


@pytest.mark.parametrize('params, field', [
    ({'dest': '{tmp}/missing/ca.crl'}, 'dest'),
    ({'format': 'p7b'}, 'format'),
    ({'next_update_days': 0}, 'next_update_days'),
    ({'next_update_days': 'weekly'}, 'next_update_days'),
])
def test_bad_crl_requests_write_nothing(ca, tmp_path, params, field):
    if 'dest' in params:
        params = dict(params, dest=params['dest'].format(tmp=tmp_path))
    before = ca.snapshot()
    with pytest.raises(InputError) as err:
        ca.publish_crl(**params)
    assert err.value.field == field
    assert ca.snapshot() == before
    assert not os.path.exists(ca.file('crl.der'))


def test_check_mode_publish_writes_nothing(ca):
    before = ca.snapshot()
    with ca.open() as managed:
        result = managed.publish_crl(check_mode=True)
    assert result['changed'] is True and result['crl_number'] == 1
    assert ca.snapshot() == before
    assert not os.path.exists(ca.file('crl.der')) and not os.path.exists(ca.file('crl.pem'))


def _backup(source: str, target: str) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def test_refuses_to_publish_when_the_store_lost_revocations(ca, tmp_path):
    alice = ca.ensure('alice')['serial']
    ca.ensure('bob')
    ca.publish_crl()
    old_copy = str(tmp_path / 'state-before-revocation.db')
    _backup(ca.state_path, old_copy)

    ca.revoke(serial=alice, reason='key_compromise')
    published = ca.publish_crl()
    assert published['crl_number'] == 2 and published['revoked_count'] == 1
    crl_before = open(ca.file('crl.der'), 'rb').read()

    # The state is restored from a backup taken before the revocation.
    for suffix in ('-wal', '-shm'):
        if os.path.exists(ca.state_path + suffix):
            os.unlink(ca.state_path + suffix)
    shutil.copyfile(old_copy, ca.state_path)
    assert ca.record(alice).status == 'valid'
    with pytest.raises(StoreError) as err:
        ca.publish_crl()
    assert err.value.field == 'ca_path'
    assert alice in str(err.value) and 'un-revoke' in str(err.value)
    assert open(ca.file('crl.der'), 'rb').read() == crl_before
    with pytest.raises(StoreError):
        ca.publish_crl(next_update_days=1)
    # Revoking it again in the restored store makes publication possible, with a number that keeps growing.
    ca.revoke(serial=alice, reason='key_compromise')
    again = ca.publish_crl()
    assert again['crl_number'] == 3 and alice in crl_serials(_crl(ca))


def test_published_crl_of_another_ca_is_refused(make_ca):
    first, second = make_ca('first'), make_ca('second')
    first.publish_crl()
    shutil.copyfile(first.file('crl.der'), second.file('crl.der'))
    with pytest.raises(StoreError, match='not signed by this CA'):
        second.publish_crl()


def test_expired_ca_does_not_publish(make_ca):
    short = make_ca('short', valid_days=5)
    short.clock.advance(days=6)
    with pytest.raises(CAError, match='expired'):
        short.publish_crl()
    assert not os.path.exists(short.file('crl.der'))


def test_crl_number_never_repeats_when_state_is_restored(ca, tmp_path):
    """The published CRL's own number counts too, even when that CRL is empty (and so has no entries)."""
    old_copy = str(tmp_path / 'state-before-any-crl.db')
    _backup(ca.state_path, old_copy)
    assert ca.publish_crl()['crl_number'] == 1
    assert len(_crl(ca)) == 0
    for suffix in ('-wal', '-shm'):
        if os.path.exists(ca.state_path + suffix):
            os.unlink(ca.state_path + suffix)
    shutil.copyfile(old_copy, ca.state_path)
    result = ca.publish_crl()
    assert result['regenerated'] is True
    assert result['crl_number'] == 2 and crl_number(_crl(ca)) == 2


def test_crl_built_from_the_whole_list_equals_the_one_by_one_builder():
    """build_crl hands the builder the whole list (one-by-one adding copies it each time); the signed content is
    byte for byte what the builder's own setters make."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.crl import build_crl
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import (
        authority_key_identifier, build_ca_certificate,
    )
    from ansible_collections.certfleet.pki.plugins.module_utils.store.base import RevokedEntry
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    ca_certificate = build_ca_certificate(
        key=key, subject_name=x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, 'CRL CA')]),
        not_before=now - datetime.timedelta(days=1), not_after=now + datetime.timedelta(days=30), serial=7)
    reasons = ['unspecified', 'key_compromise', 'superseded', 'cessation_of_operation']
    entries = [RevokedEntry('%X' % (4096 + i), now - datetime.timedelta(minutes=i), reasons[i % 4]) for i in range(40)]
    built = build_crl(ca_certificate=ca_certificate, ca_key=key, entries=entries, number=12, this_update=now,
                      next_update=now + datetime.timedelta(days=7))
    reference = (x509.CertificateRevocationListBuilder().issuer_name(ca_certificate.subject).last_update(now)
                 .next_update(now + datetime.timedelta(days=7))
                 .add_extension(x509.CRLNumber(12), critical=False)
                 .add_extension(authority_key_identifier(ca_certificate), critical=False))
    for entry in entries:
        revoked = (x509.RevokedCertificateBuilder().serial_number(int(entry.serial, 16))
                   .revocation_date(entry.revoked_at))
        if entry.reason != 'unspecified':
            revoked = revoked.add_extension(x509.CRLReason(getattr(x509.ReasonFlags, entry.reason)), critical=False)
        reference = reference.add_revoked_certificate(revoked.build())
    expected = reference.sign(key, hashes.SHA256())
    assert built.tbs_certlist_bytes == expected.tbs_certlist_bytes
    assert built.is_signature_valid(key.public_key())
    assert len(built) == 40 and crl_number(built) == 12
    with pytest.raises(ValueError):
        build_crl(ca_certificate=ca_certificate, ca_key=key, entries=[], number=13, this_update=now, next_update=now)


def test_unchanged_publish_reads_neither_the_list_nor_the_crl(ca, monkeypatch):
    """Nothing changed: the store's revocation generation and the recorded identity of the published files decide,
    so the cost does not grow with the revocations (the list is not read and the CRL not parsed)."""
    from ansible_collections.certfleet.pki.plugins.module_utils.ca import revocation
    alice = ca.ensure('alice')['serial']
    ca.revoke(serial=alice, reason='key_compromise')
    first = ca.publish_crl()
    monkeypatch.setattr(revocation, '_published_crl', _must_not_run)
    monkeypatch.setattr(revocation.crl_lib, 'revocation_digest', _must_not_run)
    again = ca.publish_crl()
    assert again['changed'] is False and again['regenerated'] is False
    assert (again['crl_number'], again['revoked_count']) == (first['crl_number'], 1)
    assert (again['this_update'], again['next_update']) == (first['this_update'], first['next_update'])


def _must_not_run(*args, **kwargs):
    raise AssertionError('the unchanged publish read the whole list or the published CRL')


@pytest.mark.parametrize('revoke_in_restored', [False, True])
def test_restored_state_after_a_newer_crl_is_refused_despite_the_fast_path(ca, tmp_path, revoke_in_restored):
    """A state.db copy from before a newer CRL was published carries the record of the older CRL: the files on disk
    do not match it, so the full check runs and refuses, even when the restored store's generation has caught up
    with the newer CRL's by other revocations."""
    alice, bob = ca.ensure('alice')['serial'], ca.ensure('bob')['serial']
    ca.publish_crl()
    assert ca.publish_crl()['regenerated'] is False  # the record is in place: the fast path
    old_copy = str(tmp_path / 'state-after-first-crl.db')
    _backup(ca.state_path, old_copy)
    ca.revoke(serial=alice, reason='key_compromise')
    assert ca.publish_crl()['revoked_count'] == 1
    crl_before = open(ca.file('crl.der'), 'rb').read()
    for suffix in ('-wal', '-shm'):
        if os.path.exists(ca.state_path + suffix):
            os.unlink(ca.state_path + suffix)
    shutil.copyfile(old_copy, ca.state_path)
    if revoke_in_restored:
        ca.revoke(serial=bob, reason='superseded')  # the restored generation is 1 again, with other contents
    with pytest.raises(StoreError, match='un-revoke'):
        ca.publish_crl()
    assert open(ca.file('crl.der'), 'rb').read() == crl_before


def test_a_store_with_fewer_revocations_than_the_recorded_crl_gets_the_full_check(ca):
    """The record matches the files, but the store lists fewer revocations than that CRL did (rows lost without the
    integrity check noticing): the record is not trusted, the published CRL is read, and publishing is refused."""
    alice = ca.ensure('alice')['serial']
    ca.revoke(serial=alice, reason='key_compromise')
    ca.publish_crl()
    conn = sqlite3.connect(ca.state_path)
    try:
        with conn:
            conn.execute('DROP TRIGGER certificates_stay_revoked')
            conn.execute("UPDATE certificates SET status = 'valid', revoked_at = NULL WHERE serial = ?", (alice,))
    finally:
        conn.close()
    with pytest.raises(StoreError, match='un-revoke'):
        ca.publish_crl(next_update_days=3)
