# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""endpoints.nss against real NSS databases with the real certutil and pk12util (apt: libnss3-tools).

Certificates come from the managed CA library (conftest ``make_ca``); PKCS#12 files from ``ManagedCA.export``.
Every change is checked with certutil itself, not only through the library's own listing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess

import pytest
from cryptography import x509

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import nss

P12_PASSWORD = 'p12 secret'
TOKEN_PASSWORD = 'token secret'
FAST = 1000  # PBKDF2 rounds: these tests are not about PKCS#12 strength

pytestmark = pytest.mark.skipif(shutil.which('certutil') is None or shutil.which('pk12util') is None,
                                reason='certutil and pk12util (libnss3-tools) are required')


# -- helpers: certutil as an auditor would run it ----------------------------------------------------------------
def certutil_list(db) -> list:
    """[(nickname, trust)] from `certutil -L`."""
    out = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db], capture_output=True, text=True, check=True).stdout
    entries = []
    for line in out.splitlines()[4:]:
        if line.strip():
            nickname, trust = line.rsplit(None, 1)
            entries.append((nickname.strip(), trust))
    return entries


def nicknames(db) -> list:
    return [nickname for nickname, _trust in certutil_list(db)]


def certutil_keys(db, password: str = '') -> list:
    """Key IDs from `certutil -K` (empty list when there are none)."""
    pwfile = os.path.join(str(db), '..', 'pw.txt')
    with open(pwfile, 'w') as handle:
        handle.write(password)
    completed = subprocess.run(['certutil', '-K', '-d', 'sql:%s' % db, '-f', pwfile], capture_output=True, text=True,
                               check=False)
    os.unlink(pwfile)
    if 'no keys found' in completed.stdout + completed.stderr:
        return []
    assert completed.returncode == 0, completed.stderr
    return [match.group(1) for match in re.finditer(r'^<\s*\d+>\s+\S+\s+([0-9a-f]+)\s', completed.stdout, re.M)]


def db_sums(db) -> dict:
    return {name: hashlib.sha256(open(os.path.join(str(db), name), 'rb').read()).hexdigest()
            for name in sorted(os.listdir(str(db))) if name.endswith('.db')}


def make_db(db, password=None) -> None:
    os.makedirs(str(db), exist_ok=True)
    args = ['certutil', '-N', '-d', 'sql:%s' % db]
    if password:
        pwfile = str(db) + '.pw'
        with open(pwfile, 'w') as handle:
            handle.write(password)
        args += ['-f', pwfile]
    else:
        args += ['--empty-password']
    subprocess.run(args, capture_output=True, check=True)


def fingerprints(result) -> list:
    return sorted(c['fingerprint_sha256'] for c in result['certificates'])


def ensure(db, **params) -> dict:
    return nss.ensure_nss_certificate(db=str(db), **params)


# -- fixtures --------------------------------------------------------------------------------------------------------
class Issued:
    """alice's first certificate, its renewal with the same subject, bob's RSA certificate, each as a PKCS#12."""

    def __init__(self, ca, tmp_path):
        self.ca = ca
        self.ca_pem = ca.file('ca.pem')
        self.old = ca.ensure('alice')
        self.old_p12 = str(tmp_path / 'alice-old.p12')
        ca.export(identity='alice', dest=self.old_p12, password=P12_PASSWORD, iterations=FAST)
        self.new = ca.ensure('alice', force=True)
        self.new_p12 = str(tmp_path / 'alice-new.p12')
        ca.export(identity='alice', dest=self.new_p12, password=P12_PASSWORD, iterations=FAST)
        self.rsa = ca.ensure('bob', key_type='rsa2048')
        self.rsa_p12 = str(tmp_path / 'bob.p12')
        ca.export(identity='bob', dest=self.rsa_p12, password=P12_PASSWORD, encryption='legacy')


@pytest.fixture
def issued(ca, tmp_path) -> Issued:
    return Issued(ca, tmp_path)


@pytest.fixture
def foreign(make_ca, tmp_path):
    """A certificate with the same subject as alice's, from another CA with the same CA subject."""
    other = make_ca('other-ca')
    result = other.ensure('alice')
    path = str(tmp_path / 'alice-foreign.p12')
    other.export(identity='alice', dest=path, password=P12_PASSWORD, iterations=FAST)
    return other, result, path


@pytest.fixture
def db(tmp_path):
    return tmp_path / 'profile'


# -- import ----------------------------------------------------------------------------------------------------------
def test_import_creates_the_database_once_and_check_mode_creates_nothing(issued, db):
    check = ensure(db, create_db=True, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD, check_mode=True)
    assert check['changed'] is True and check['created'] is True
    assert check['imported'] == issued.old['fingerprint_sha256']
    assert check['certificates'] == [] and check['removed'] == []
    assert not db.exists()

    first = ensure(db, create_db=True, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD)
    assert first['changed'] is True and first['created'] is True and first['db'] == str(db)
    assert first['imported'] == issued.old['fingerprint_sha256']
    assert sorted(os.listdir(db)) >= ['cert9.db', 'key4.db']
    assert os.stat(db).st_mode & 0o777 == 0o700
    by_fp = {c['fingerprint_sha256']: c for c in first['certificates']}
    alice = by_fp[issued.old['fingerprint_sha256']]
    assert alice['has_key'] is True and alice['is_ca'] is False and alice['nickname'] == 'alice'
    assert alice['serial'] == issued.old['serial'] and alice['subject'] == issued.old['subject']
    assert alice['fingerprint_sha1'] == issued.old['fingerprint_sha1']
    assert alice['not_after'] == issued.old['not_after']
    # pk12util also imports the CA from the PKCS#12 chain, without trust
    ca_entry = [c for c in first['certificates'] if c['is_ca']]
    assert len(ca_entry) == 1 and ca_entry[0]['trust'] == ',,' and ca_entry[0]['has_key'] is False
    assert len(certutil_list(db)) == 2 and len(certutil_keys(db)) == 1

    sums = db_sums(db)
    again = ensure(db, create_db=True, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD)
    again_check = ensure(db, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD, check_mode=True)
    for result in (again, again_check):
        assert result['changed'] is False and result['created'] is False and result['imported'] is None
        assert fingerprints(result) == fingerprints(first)
    assert db_sums(db) == sums
    assert len(certutil_list(db)) == 2 and len(certutil_keys(db)) == 1


def test_check_mode_import_into_an_existing_database_writes_nothing(issued, db):
    make_db(db)
    sums = db_sums(db)
    check = ensure(db, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD, ca_certificate=issued.ca_pem,
                   check_mode=True)
    assert check['changed'] is True and check['created'] is False and check['ca_changed'] == 'add'
    assert check['imported'] == issued.old['fingerprint_sha256']
    assert 'alice' not in check['diff']['after']  # the diff shows the database, not a guess
    assert certutil_list(db) == [] and certutil_keys(db) == []
    assert db_sums(db) == sums


def test_rsa_legacy_pkcs12_imports_and_is_removed_exactly(issued, db):
    ensure(db, create_db=True, pkcs12_path=issued.rsa_p12, pkcs12_password=P12_PASSWORD)
    assert len(certutil_keys(db)) == 1
    removed = ensure(db, state='absent', fingerprint_sha256=issued.rsa['fingerprint_sha256'])
    assert [c['serial'] for c in removed['removed']] == [issued.rsa['serial']]
    assert certutil_keys(db) == []
    assert nicknames(db) == [c['nickname'] for c in removed['certificates']]


# -- renewal with the same subject -------------------------------------------------------------------------------------
def test_superseded_certificate_with_the_same_nickname_is_removed_exactly(issued, db):
    ensure(db, create_db=True, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD)
    renewed = ensure(db, pkcs12_path=issued.new_p12, pkcs12_password=P12_PASSWORD, ca_certificate=issued.ca_pem)
    assert renewed['changed'] is True and renewed['imported'] == issued.new['fingerprint_sha256']
    assert renewed['ca_changed'] == 'trust'  # the CA came with the first PKCS#12; only its trust was missing
    alices = [c for c in renewed['certificates'] if not c['is_ca']]
    assert {c['nickname'] for c in alices} == {'alice'} and len(alices) == 2  # NSS gave both the same nickname
    assert nicknames(db).count('alice') == 2
    assert len(certutil_keys(db)) == 2

    keep = [issued.new['fingerprint_sha256'].lower()]
    check = ensure(db, state='absent', issuer=issued.ca_pem, keep_fingerprint_sha256=keep, check_mode=True)
    assert check['changed'] is True
    assert [c['fingerprint_sha256'] for c in check['removed']] == [issued.old['fingerprint_sha256']]
    assert nicknames(db).count('alice') == 2 and len(certutil_keys(db)) == 2

    removed = ensure(db, state='absent', issuer=issued.ca_pem, keep_fingerprint_sha256=keep)
    assert removed['changed'] is True
    assert [c['serial'] for c in removed['removed']] == [issued.old['serial']]
    left = [c for c in removed['certificates'] if not c['is_ca']]
    assert [c['fingerprint_sha256'] for c in left] == [issued.new['fingerprint_sha256']] and left[0]['has_key']
    # counted with certutil itself: one alice, one key, and it is the new certificate's key
    assert nicknames(db).count('alice') == 1
    new_certificate = x509.load_pem_x509_certificate(issued.new['certificate'].encode())
    assert certutil_keys(db) == [nss.certificate_key_id(new_certificate)]
    # the CA stays, with its trust
    assert [t for n, t in certutil_list(db) if n != 'alice'] == ['T,,']

    again = ensure(db, state='absent', issuer=issued.ca_pem, keep_fingerprint_sha256=keep)
    assert again['changed'] is False and again['removed'] == []


def test_issuer_without_keep_removes_every_certificate_of_the_ca_but_not_the_ca(issued, db):
    for p12 in (issued.old_p12, issued.new_p12, issued.rsa_p12):
        ensure(db, create_db=True, pkcs12_path=p12, pkcs12_password=P12_PASSWORD)
    result = ensure(db, state='absent', issuer=issued.ca_pem)
    assert sorted(c['serial'] for c in result['removed']) == sorted(
        [issued.old['serial'], issued.new['serial'], issued.rsa['serial']])
    assert certutil_keys(db) == []
    assert len(certutil_list(db)) == 1 and result['certificates'][0]['is_ca']


# -- removal by fingerprint, serial, nickname --------------------------------------------------------------------------
def _two_alices(issued, db):
    ensure(db, create_db=True, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD)
    ensure(db, pkcs12_path=issued.new_p12, pkcs12_password=P12_PASSWORD)


def _colons(hex_text: str) -> str:
    return ':'.join(hex_text[i:i + 2] for i in range(0, len(hex_text), 2)).lower()


@pytest.mark.parametrize('spelling', ['plain', 'colons'])
def test_removal_by_fingerprint(issued, db, spelling):
    _two_alices(issued, db)
    fp = issued.old['fingerprint_sha256']
    result = ensure(db, state='absent', fingerprint_sha256=fp if spelling == 'plain' else _colons(fp))
    assert [c['fingerprint_sha256'] for c in result['removed']] == [fp]
    assert fp not in fingerprints(result) and issued.new['fingerprint_sha256'] in fingerprints(result)
    assert nicknames(db).count('alice') == 1 and len(certutil_keys(db)) == 1
    assert ensure(db, state='absent', fingerprint_sha256=fp)['changed'] is False


def _three_of_one_ca(issued, db):
    """alice's old and new certificate (same subject, same nickname) and bob's, all with keys, from one CA."""
    _two_alices(issued, db)
    ensure(db, pkcs12_path=issued.rsa_p12, pkcs12_password=P12_PASSWORD, ca_certificate=issued.ca_pem)
    assert len(certutil_keys(db)) == 3


def _key_ids(*results) -> list:
    return sorted(nss.certificate_key_id(x509.load_pem_x509_certificate(r['certificate'].encode())) for r in results)


def test_removal_by_fingerprint_list_takes_exactly_the_listed_certificates(issued, db):
    """The CA's superseded list: only what it names goes, not bob, another identity of the same CA."""
    _three_of_one_ca(issued, db)
    listed = [_colons(issued.old['fingerprint_sha256'])]
    keep = [issued.new['fingerprint_sha256']]
    sums = db_sums(db)
    check = ensure(db, state='absent', fingerprint_sha256=listed, issuer=issued.ca_pem,
                   keep_fingerprint_sha256=keep, check_mode=True)
    assert check['changed'] is True
    assert [c['serial'] for c in check['removed']] == [issued.old['serial']]
    assert db_sums(db) == sums and len(certutil_keys(db)) == 3

    result = ensure(db, state='absent', fingerprint_sha256=listed, issuer=issued.ca_pem, keep_fingerprint_sha256=keep)
    assert result['changed'] is True
    assert [c['serial'] for c in result['removed']] == [issued.old['serial']]
    left = sorted(c['serial'] for c in result['certificates'] if not c['is_ca'])
    assert left == sorted([issued.new['serial'], issued.rsa['serial']])
    # counted with certutil itself: alice's new key and bob's key are there, alice's old one is gone
    assert sorted(certutil_keys(db)) == _key_ids(issued.new, issued.rsa)
    assert nicknames(db).count('alice') == 1

    again = ensure(db, state='absent', fingerprint_sha256=listed, issuer=issued.ca_pem, keep_fingerprint_sha256=keep)
    assert again['changed'] is False and again['removed'] == []


def test_removal_by_fingerprint_list_of_several_keeps_the_kept_one(issued, db):
    """Several fingerprints, one of them also to keep: the kept one stays, the others go; what is not there is no
    error."""
    _three_of_one_ca(issued, db)
    absent_fp = 'AB' * 32
    listed = [issued.old['fingerprint_sha256'].lower(), issued.rsa['fingerprint_sha256'],
              issued.new['fingerprint_sha256'], absent_fp]
    result = ensure(db, state='absent', fingerprint_sha256=listed, issuer=issued.ca_pem,
                    keep_fingerprint_sha256=[issued.new['fingerprint_sha256']])
    assert sorted(c['serial'] for c in result['removed']) == sorted([issued.old['serial'], issued.rsa['serial']])
    assert [c['fingerprint_sha256'] for c in result['certificates'] if not c['is_ca']] == [
        issued.new['fingerprint_sha256']]
    assert certutil_keys(db) == _key_ids(issued.new)


def test_empty_fingerprint_list_removes_nothing_and_does_not_sweep_by_issuer(issued, db):
    _three_of_one_ca(issued, db)
    sums = db_sums(db)
    for check_mode in (True, False):
        result = ensure(db, state='absent', fingerprint_sha256=[], issuer=issued.ca_pem, check_mode=check_mode)
        assert result['changed'] is False and result['removed'] == []
        assert len([c for c in result['certificates'] if not c['is_ca']]) == 3
    assert db_sums(db) == sums and len(certutil_keys(db)) == 3


def test_fingerprint_list_with_a_certificate_of_another_ca_is_refused_and_nothing_is_removed(issued, foreign, db):
    _other, foreign_result, foreign_p12 = foreign
    _two_alices(issued, db)
    ensure(db, pkcs12_path=foreign_p12, pkcs12_password=P12_PASSWORD)
    listed = certutil_list(db)
    keys = certutil_keys(db)
    with pytest.raises(InputError) as failure:
        ensure(db, state='absent', issuer=issued.ca_pem,
               fingerprint_sha256=[issued.old['fingerprint_sha256'], foreign_result['fingerprint_sha256']])
    assert failure.value.field == 'issuer' and 'nothing was removed' in failure.value.message
    assert certutil_list(db) == listed and certutil_keys(db) == keys


def test_fingerprint_list_with_a_malformed_element_fails_naming_the_field(issued, db):
    _two_alices(issued, db)
    sums = db_sums(db)
    with pytest.raises(InputError) as failure:
        ensure(db, state='absent', issuer=issued.ca_pem, fingerprint_sha256=[issued.old['fingerprint_sha256'], 'AB:CD'])
    assert failure.value.field == 'fingerprint_sha256' and 'not a SHA-256' in failure.value.message
    assert db_sums(db) == sums


@pytest.mark.parametrize('spelling', ['plain', 'colons', '0x-leading-zeros'])
def test_removal_by_serial(issued, db, spelling):
    _two_alices(issued, db)
    serial = issued.new['serial']
    given = {'plain': serial, 'colons': _colons(serial if len(serial) % 2 == 0 else '0' + serial),
             '0x-leading-zeros': '0x00' + serial.lower()}[spelling]
    result = ensure(db, state='absent', serial=given, issuer=issued.ca_pem)
    assert [c['serial'] for c in result['removed']] == [serial]
    left = [c for c in result['certificates'] if not c['is_ca']]
    assert [c['serial'] for c in left] == [issued.old['serial']]
    new_certificate = x509.load_pem_x509_certificate(issued.new['certificate'].encode())
    assert nss.certificate_key_id(new_certificate) not in certutil_keys(db)
    assert len(certutil_keys(db)) == 1


def test_removal_by_nickname_takes_every_certificate_of_that_nickname(issued, db):
    _two_alices(issued, db)
    result = ensure(db, state='absent', nickname='alice')
    assert len(result['removed']) == 2 and certutil_keys(db) == []
    assert all(c['is_ca'] for c in result['certificates'])


def test_removal_of_what_is_not_there_changes_nothing(issued, db):
    _two_alices(issued, db)
    sums = db_sums(db)
    result = ensure(db, state='absent', serial='DEADBEEF')
    assert result['changed'] is False and result['removed'] == []
    assert db_sums(db) == sums


def test_certificate_of_another_ca_is_refused_and_nothing_is_removed(issued, foreign, db):
    _other, foreign_result, foreign_p12 = foreign
    _two_alices(issued, db)
    ensure(db, pkcs12_path=foreign_p12, pkcs12_password=P12_PASSWORD)
    listed = certutil_list(db)
    keys = certutil_keys(db)
    assert len(keys) == 3
    for selector in ({'fingerprint_sha256': foreign_result['fingerprint_sha256']},
                     {'serial': foreign_result['serial']},
                     {'nickname': 'alice'}):
        with pytest.raises(InputError) as failure:
            ensure(db, state='absent', issuer=issued.ca_pem, **selector)
        assert failure.value.field == 'issuer'
        assert 'nothing was removed' in failure.value.message
        assert certutil_list(db) == listed and certutil_keys(db) == keys
    # By issuer alone, the same-subject certificate of the other CA (same CA subject too) is not touched.
    keep = [issued.new['fingerprint_sha256']]
    result = ensure(db, state='absent', issuer=issued.ca_pem, keep_fingerprint_sha256=keep)
    assert [c['serial'] for c in result['removed']] == [issued.old['serial']]
    assert foreign_result['fingerprint_sha256'] in fingerprints(result)
    assert len(certutil_keys(db)) == 2


# -- token (primary) password ----------------------------------------------------------------------------------------
def test_database_with_a_token_password(issued, db):
    created = ensure(db, create_db=True, db_password=TOKEN_PASSWORD, ca_certificate=issued.ca_pem)
    assert created['created'] is True and created['ca_changed'] == 'add'
    sums = db_sums(db)
    listed = certutil_list(db)

    for password, message in ((None, 'give db_password'), ('wrong', 'wrong')):
        with pytest.raises(CertfleetError) as failure:
            ensure(db, db_password=password, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD)
        assert failure.value.field == 'db_password' and message in failure.value.message
        assert certutil_list(db) == listed and db_sums(db) == sums

    with pytest.raises(CertfleetError) as failure:
        ensure(db, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD, check_mode=True)
    assert failure.value.field == 'db_password'

    imported = ensure(db, db_password=TOKEN_PASSWORD, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD)
    assert imported['changed'] is True and imported['imported'] == issued.old['fingerprint_sha256']
    assert len(certutil_keys(db, TOKEN_PASSWORD)) == 1
    again = ensure(db, db_password=TOKEN_PASSWORD, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD)
    assert again['changed'] is False

    locked = nss.nss_certificate_info(db=str(db))
    assert {c['has_key'] for c in locked['certificates']} == {None}
    unlocked = nss.nss_certificate_info(db=str(db), db_password=TOKEN_PASSWORD)
    assert {c['fingerprint_sha256']: c['has_key'] for c in unlocked['certificates']}[
        issued.old['fingerprint_sha256']] is True
    with pytest.raises(CertfleetError) as failure:
        nss.nss_certificate_info(db=str(db), db_password='wrong')
    assert failure.value.field == 'db_password'

    listed = certutil_list(db)
    with pytest.raises(CertfleetError) as failure:
        ensure(db, state='absent', issuer=issued.ca_pem)
    assert failure.value.field == 'db_password'
    assert certutil_list(db) == listed
    removed = ensure(db, state='absent', issuer=issued.ca_pem, db_password=TOKEN_PASSWORD)
    assert [c['serial'] for c in removed['removed']] == [issued.old['serial']]
    assert certutil_keys(db, TOKEN_PASSWORD) == []


def test_secrets_never_reach_a_command_line(issued, db):
    seen = []

    def recording_runner(args):
        seen.append(list(args))
        return nss.default_runner(args)

    ensure(db, create_db=True, db_password=TOKEN_PASSWORD, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD,
           ca_certificate=issued.ca_pem, runner=recording_runner)
    ensure(db, state='absent', issuer=issued.ca_pem, db_password=TOKEN_PASSWORD, runner=recording_runner)
    assert seen
    text = repr(seen)
    assert TOKEN_PASSWORD not in text and P12_PASSWORD not in text
    # and the 0600 password files are gone
    password_files = [a for args in seen for a in args if 'certfleet-nss-' in a]
    assert password_files and not any(os.path.exists(p) for p in password_files)


def test_tool_paths_are_used(issued, db):
    seen = []

    def recording_runner(args):
        seen.append(args[0])
        return nss.default_runner(args)

    certutil, pk12util = shutil.which('certutil'), shutil.which('pk12util')
    ensure(db, create_db=True, pkcs12_path=issued.old_p12, pkcs12_password=P12_PASSWORD, runner=recording_runner,
           certutil=certutil, pk12util=pk12util)
    assert set(seen) == {certutil, pk12util}


# -- bad input: clear error, nothing changed ---------------------------------------------------------------------------
def test_wrong_pkcs12_password(issued, db):
    make_db(db)
    sums = db_sums(db)
    with pytest.raises(InputError) as failure:
        ensure(db, pkcs12_path=issued.old_p12, pkcs12_password='not the password')
    assert failure.value.field == 'pkcs12_password' and 'wrong password' in failure.value.message
    assert db_sums(db) == sums and certutil_list(db) == []


@pytest.mark.parametrize('content', [b'', b'not a PKCS#12 file', b'0\x82\x01\x00garbage'])
def test_corrupt_pkcs12(issued, db, tmp_path, content):
    make_db(db)
    sums = db_sums(db)
    corrupt = tmp_path / 'corrupt.p12'
    corrupt.write_bytes(content)
    with pytest.raises(InputError) as failure:
        ensure(db, pkcs12_path=str(corrupt), pkcs12_password=P12_PASSWORD)
    assert failure.value.field in ('pkcs12_path', 'pkcs12_password')
    assert db_sums(db) == sums


def test_truncated_pkcs12(issued, db, tmp_path):
    make_db(db)
    truncated = tmp_path / 'truncated.p12'
    truncated.write_bytes(open(issued.old_p12, 'rb').read()[:200])
    with pytest.raises(InputError) as failure:
        ensure(db, pkcs12_path=str(truncated), pkcs12_password=P12_PASSWORD)
    assert failure.value.field in ('pkcs12_path', 'pkcs12_password')
    assert certutil_list(db) == []


@pytest.mark.parametrize('params, field, message', [
    ({'pkcs12_path': 'MISSING', 'pkcs12_password': P12_PASSWORD}, 'pkcs12_path', 'does not exist'),
    ({'pkcs12_path': 'OLD'}, 'pkcs12_password', 'required'),
    ({}, 'pkcs12_path', 'needs pkcs12_path'),
    ({'ca_certificate': 'MISSING'}, 'ca_certificate', 'does not exist'),
    ({'ca_certificate': '-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n'}, 'ca_certificate',
     'not a PEM certificate'),
    ({'ca_certificate': 'CA', 'trust': 'X,,'}, 'trust', 'not an NSS trust string'),
    ({'ca_certificate': 'CA', 'trust': 'CT'}, 'trust', 'not an NSS trust string'),
    ({'state': 'absent'}, 'fingerprint_sha256', 'needs'),
    ({'state': 'absent', 'fingerprint_sha256': 'abc'}, 'fingerprint_sha256', 'not a SHA-256'),
    ({'state': 'absent', 'serial': 'xyz'}, 'serial', 'not a hexadecimal'),
    ({'state': 'absent', 'issuer': 'CA', 'keep_fingerprint_sha256': ['nope']}, 'keep_fingerprint_sha256', 'SHA-256'),
    ({'state': 'gone', 'issuer': 'CA'}, 'state', 'present or absent'),
])
def test_bad_parameters_fail_naming_the_field(issued, db, tmp_path, params, field, message):
    make_db(db)
    sums = db_sums(db)
    replace = {'MISSING': str(tmp_path / 'nowhere'), 'OLD': issued.old_p12, 'CA': issued.ca_pem}
    params = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    with pytest.raises(InputError) as failure:
        ensure(db, **params)
    assert failure.value.field == field and message in failure.value.message
    assert db_sums(db) == sums


def test_ca_that_did_not_issue_the_pkcs12_certificate_is_refused(issued, foreign, db):
    make_db(db)
    with pytest.raises(InputError) as failure:
        ensure(db, pkcs12_path=foreign[2], pkcs12_password=P12_PASSWORD, ca_certificate=issued.ca_pem)
    assert failure.value.field == 'ca_certificate' and 'not by this CA' in failure.value.message
    # Both CAs carry one name: the message tells them apart by key identifier.
    assert 'another CA of the same name' in failure.value.message and "this CA's key id is" in failure.value.message
    assert certutil_list(db) == []


@pytest.mark.parametrize('state', ['present', 'absent'])
def test_missing_database(issued, db, state):
    params = ({'pkcs12_path': issued.old_p12, 'pkcs12_password': P12_PASSWORD} if state == 'present'
              else {'issuer': issued.ca_pem})
    with pytest.raises(InputError) as failure:
        ensure(db, state=state, **params)
    assert failure.value.field == 'db' and 'does not exist' in failure.value.message
    assert not db.exists()
    db.mkdir()
    with pytest.raises(InputError) as failure:
        ensure(db, state=state, create_db=False, **params)
    assert failure.value.field == 'db' and 'holds no NSS database' in failure.value.message
    assert os.listdir(db) == []


def test_db_that_is_a_file_is_refused(issued, tmp_path):
    path = tmp_path / 'file'
    path.write_text('x')
    with pytest.raises(InputError) as failure:
        ensure(path, create_db=True, ca_certificate=issued.ca_pem)
    assert failure.value.field == 'db'


def test_sql_prefix_and_user_folder(issued, db):
    result = ensure('sql:%s' % db, create_db=True, ca_certificate=issued.ca_pem)
    assert result['db'] == str(db) and result['created'] is True


# -- CA trust ----------------------------------------------------------------------------------------------------------
def test_ca_trust_flags(issued, db):
    make_db(db)
    pem_text = open(issued.ca_pem).read()
    added = ensure(db, ca_certificate=pem_text)
    assert added['changed'] is True and added['ca_changed'] == 'add'
    assert certutil_list(db) == [('Certfleet Test Client CA', 'T,,')]
    assert ensure(db, ca_certificate=issued.ca_pem)['changed'] is False
    assert ensure(db, ca_certificate=issued.ca_pem, trust='T,,', check_mode=True)['changed'] is False

    check = ensure(db, ca_certificate=issued.ca_pem, trust='CT,,', check_mode=True)
    assert check['changed'] is True and check['ca_changed'] == 'trust'
    assert certutil_list(db) == [('Certfleet Test Client CA', 'T,,')]

    widened = ensure(db, ca_certificate=issued.ca_pem, trust='CT,,')
    assert widened['ca_changed'] == 'trust'
    (nickname, trust), = certutil_list(db)
    assert set(trust.split(',')[0]) >= {'C', 'T'}
    # flags are only ever added: asking for T,, again keeps C
    assert ensure(db, ca_certificate=issued.ca_pem)['changed'] is False


def test_ca_nickname(issued, db):
    make_db(db)
    ensure(db, ca_certificate=issued.ca_pem, ca_nickname='Example Org client CA (certfleet)')
    assert certutil_list(db) == [('Example Org client CA (certfleet)', 'T,,')]


# -- info --------------------------------------------------------------------------------------------------------------
def test_info_filters_and_missing_database(issued, foreign, db):
    missing = nss.nss_certificate_info(db=str(db))
    assert missing == {'changed': False, 'db': str(db), 'exists': False, 'certificates': [], 'count': 0}
    _two_alices(issued, db)
    ensure(db, pkcs12_path=foreign[2], pkcs12_password=P12_PASSWORD)
    everything = nss.nss_certificate_info(db=str(db))
    assert everything['exists'] is True and everything['changed'] is False
    assert everything['count'] == len(certutil_list(db)) == 5  # two alices, foreign alice, two CAs (same subject)
    ours = nss.nss_certificate_info(db=str(db), issuer=issued.ca_pem)
    assert sorted(c['serial'] for c in ours['certificates']) == sorted([issued.old['serial'], issued.new['serial']])
    assert all(c['has_key'] for c in ours['certificates'])
    by_fp = nss.nss_certificate_info(db=str(db), fingerprint_sha256=_colons(issued.new['fingerprint_sha256']))
    assert by_fp['count'] == 1 and by_fp['certificates'][0]['serial'] == issued.new['serial']
    by_serial = nss.nss_certificate_info(db=str(db), serial=issued.old['serial'].lower())
    assert [c['fingerprint_sha256'] for c in by_serial['certificates']] == [issued.old['fingerprint_sha256']]
    assert nss.nss_certificate_info(db=str(db), serial='1')['count'] == 0
    keys = set(everything['certificates'][0])
    assert keys == {'nickname', 'trust', 'subject', 'issuer', 'serial', 'fingerprint_sha256', 'fingerprint_sha1',
                    'not_before', 'not_after', 'has_key', 'is_ca'}


# -- pure helpers ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('key_id, uri', [
    ('2ad3', 'pkcs11:id=%2a%d3'),
    ('00ff10', 'pkcs11:id=%00%ff%10'),
])
def test_pkcs11_id_uri(key_id, uri):
    assert nss.pkcs11_id_uri(key_id) == uri


@pytest.mark.parametrize('trust, ok', [
    ('T,,', True), ('CT,,', True), ('u,u,u', True), (',,', True), ('CT,C,C', True), ('P,,', True),
    ('X,,', False), ('T,', False), ('', False), ('T,,,', False), ('T ,,', False),
])
def test_validate_trust(trust, ok):
    if ok:
        assert nss.validate_trust(trust) == trust
    else:
        with pytest.raises(InputError):
            nss.validate_trust(trust)
