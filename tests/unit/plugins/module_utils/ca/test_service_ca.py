# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""setup.ensure_ca: creating, re-running, updating and importing the CA."""

from __future__ import annotations

import datetime
import os
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import public_keys_match
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import generate_private_key
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    CAError, InputError, PassphraseError, PolicyError,
)

SUBJECT = {'CN': 'Certfleet Test Client CA', 'O': 'Example Org', 'C': 'DE'}
PASSPHRASE = 'correct horse battery staple'


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _create(path, clock, **params):
    params.setdefault('subject', dict(SUBJECT))
    params.setdefault('key_type', 'ec-p256')
    params.setdefault('ca_passphrase', PASSPHRASE)
    return ensure_ca(ca_path=str(path), clock=clock, **params)


def _openssl(*args, cwd):
    return subprocess.run(['openssl', *args], cwd=str(cwd), check=True, capture_output=True)


# -- creation ---------------------------------------------------------------------------------------------------

def test_create_writes_private_folder_encrypted_key_and_state(tmp_path, clock):
    path = tmp_path / 'ca'
    result = _create(path, clock, valid_days=1000)
    assert result['changed'] is True and result['action'] == 'created'
    assert result['warnings'] == []
    assert _mode(path) == 0o700
    assert _mode(path / 'ca.key') == 0o600
    assert _mode(path / 'ca.pem') == 0o644
    assert _mode(path / 'state.db') == 0o600
    for name in os.listdir(path):
        if name.startswith('state.db') or name in ('ca.key', '.lock'):
            assert _mode(path / name) & 0o077 == 0, name
    key_pem = (path / 'ca.key').read_bytes()
    assert b'-----BEGIN ENCRYPTED PRIVATE KEY-----' in key_pem
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(key_pem, password=None)
    key = serialization.load_pem_private_key(key_pem, password=PASSPHRASE.encode())
    certificate = x509.load_pem_x509_certificate((path / 'ca.pem').read_bytes())
    assert public_keys_match(key.public_key(), certificate.public_key())
    assert certificate.not_valid_after_utc == clock() + datetime.timedelta(days=1000)
    assert result['ca']['fingerprint_sha256'] == certificate.fingerprint(hashes.SHA256()).hex().upper()
    assert result['ca']['fingerprint_sha1'] == certificate.fingerprint(hashes.SHA1()).hex().upper()
    assert result['ca']['key_type'] == 'ec-p256'
    assert result['certificate'] == certificate.public_bytes(serialization.Encoding.PEM).decode()
    with ManagedCA(str(path), PASSPHRASE, clock=clock) as managed, managed.store.read():
        audit = managed.store.audit_entries()
    assert [(entry['action'], entry['outcome']) for entry in audit] == [('ca_created', 'ok')]
    assert audit[0]['detail']['key_encrypted'] is True
    assert PASSPHRASE not in repr(audit)


def test_create_rsa_ca(tmp_path, clock):
    result = _create(tmp_path / 'ca', clock, key_type='rsa2048')
    assert result['ca']['key_type'] == 'rsa2048'
    certificate = x509.load_pem_x509_certificate((tmp_path / 'ca' / 'ca.pem').read_bytes())
    assert certificate.public_key().key_size == 2048


def test_wrong_and_missing_passphrase(ca):
    ca.ensure('alice')
    before = ca.snapshot()
    with pytest.raises(PassphraseError) as err:
        ca.open(passphrase='wrong horse')
    assert err.value.field == 'ca_passphrase'
    assert 'wrong passphrase' in str(err.value)
    assert 'wrong horse' not in str(err.value)
    with pytest.raises(PassphraseError) as err:
        ca.open(passphrase=None)
    assert err.value.field == 'ca_passphrase'
    assert 'encrypted' in str(err.value)
    with pytest.raises(PassphraseError):
        ensure_ca(ca_path=ca.path, ca_passphrase='wrong horse', subject=SUBJECT, key_type='ec-p256', clock=ca.clock,
                  policy={'max_valid_days': 1})
    with pytest.raises(PassphraseError):
        ca.open(passphrase='wrong horse', unlock=True).revoke(identity='alice', which='current')
    # The ca module without a passphrase on an existing encrypted CA: the key is encrypted, not "unencrypted?".
    with pytest.raises(PassphraseError) as err:
        ensure_ca(ca_path=ca.path, ca_passphrase=None, subject=SUBJECT, key_type='ec-p256', clock=ca.clock)
    assert err.value.code == 'passphrase_missing' and 'is encrypted; give ca_passphrase' in str(err.value)
    assert ca.snapshot() == before
    assert ca.records('alice')[0].status == 'valid'


def test_missing_passphrase_refused_unless_allowed(tmp_path, clock):
    path = tmp_path / 'ca'
    with pytest.raises(PassphraseError) as err:
        _create(path, clock, ca_passphrase=None)
    assert err.value.field == 'ca_passphrase'
    assert 'allow_unencrypted_key' in str(err.value)
    assert not path.exists()
    result = _create(path, clock, ca_passphrase=None, allow_unencrypted_key=True)
    assert result['action'] == 'created'
    assert len(result['warnings']) == 1 and 'unencrypted' in result['warnings'][0]
    key_pem = (path / 'ca.key').read_bytes()
    assert b'ENCRYPTED' not in key_pem
    serialization.load_pem_private_key(key_pem, password=None)
    assert _mode(path / 'ca.key') == 0o600
    with ManagedCA(str(path), None, clock=clock) as managed:
        assert managed.authority.key_is_encrypted() is False


def test_rerun_is_idempotent_and_writes_nothing(ca):
    before = ca.snapshot()
    result = ensure_ca(ca_path=ca.path, ca_passphrase=ca.passphrase, subject=SUBJECT, key_type='ec-p256',
                       clock=ca.clock)
    assert result['changed'] is False and result['action'] == 'none'
    assert result['ca']['fingerprint_sha256'] == ca.created['ca']['fingerprint_sha256']
    assert ca.snapshot() == before
    # attribute aliases and order do not count as a different subject
    again = ensure_ca(ca_path=ca.path, ca_passphrase=ca.passphrase, key_type='ec-p256', clock=ca.clock,
                      subject={'countryName': 'DE', 'organizationName': 'Example Org',
                               'commonName': 'Certfleet Test Client CA'})
    assert again['changed'] is False


def test_check_mode_create_touches_nothing(tmp_path, clock):
    result = _create(tmp_path / 'ca', clock, check_mode=True)
    assert result['changed'] is True and result['action'] == 'created'
    assert os.listdir(tmp_path) == []


def test_policy_and_crl_url_update(ca):
    policy = {'allowed_domains': ['example.org'], 'max_valid_days': 90}
    params = dict(ca_path=ca.path, ca_passphrase=ca.passphrase, subject=SUBJECT, key_type='ec-p256', clock=ca.clock,
                  policy=policy, crl_url='http://pki.example.org/ca.crl')
    before = ca.snapshot()
    predicted = ensure_ca(check_mode=True, **params)
    assert predicted['changed'] is True and predicted['action'] == 'updated'
    assert ca.snapshot() == before
    result = ensure_ca(**params)
    assert result['changed'] is True and result['action'] == 'updated'
    assert result['diff']['before']['policy']['allowed_domains'] == []
    assert result['diff']['after']['policy']['allowed_domains'] == ['example.org']
    assert result['diff']['after']['crl_url'] == 'http://pki.example.org/ca.crl'
    assert [e['action'] for e in ca.audit()] == ['ca_created', 'ca_settings']
    assert ensure_ca(**params)['action'] == 'none'
    with ca.open() as managed:
        assert managed.policy.max_valid_days == 90
        assert managed.crl_url == 'http://pki.example.org/ca.crl'
    with pytest.raises(PolicyError):
        ca.ensure('alice', valid_days=91)
    # the certificate and key were not replaced by the update
    assert ca.created['ca']['fingerprint_sha256'] == result['ca']['fingerprint_sha256']


def test_different_subject_or_key_type_refused(ca):
    before = ca.snapshot()
    with pytest.raises(CAError) as err:
        ensure_ca(ca_path=ca.path, ca_passphrase=ca.passphrase, subject={'CN': 'Another CA'}, key_type='ec-p256',
                  clock=ca.clock)
    assert err.value.field == 'subject'
    assert 'refusing to replace' in str(err.value)
    with pytest.raises(CAError) as err:
        ensure_ca(ca_path=ca.path, ca_passphrase=ca.passphrase, subject=SUBJECT, key_type='ec-p384', clock=ca.clock)
    assert err.value.field == 'key_type'
    assert ca.snapshot() == before


@pytest.mark.parametrize('params, error, field', [
    ({'subject': {'CN': 'CA', 'C': 'Germany'}}, InputError, 'subject.C'),
    ({'subject': {}}, InputError, 'subject'),
    ({'subject': None}, InputError, 'subject'),
    ({'key_type': 'rsa1024'}, InputError, 'key_type'),
    ({'valid_days': 0}, InputError, 'valid_days'),
    ({'crl_url': 'not a url'}, InputError, 'crl_url'),
    ({'policy': {'allowed_key_types': ['dsa']}}, InputError, 'policy.allowed_key_types'),
    ({'import_certificate': '/nonexistent.pem'}, InputError, 'import_private_key'),
])
def test_bad_input_creates_nothing(tmp_path, clock, params, error, field):
    path = tmp_path / 'ca'
    with pytest.raises(error) as err:
        _create(path, clock, **params)
    assert err.value.field == field
    assert not path.exists()


def test_missing_parent_folder(tmp_path, clock):
    with pytest.raises(InputError) as err:
        _create(tmp_path / 'missing' / 'ca', clock)
    assert err.value.field == 'ca_path'
    assert not (tmp_path / 'missing').exists()


def test_missing_parent_folder_in_check_mode(tmp_path, clock):
    """Check mode predicts the failure of the real run."""
    with pytest.raises(InputError) as err:
        _create(tmp_path / 'missing' / 'ca', clock, check_mode=True)
    assert err.value.field == 'ca_path'


# -- import -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def openssl_ca(tmp_path_factory):
    """An existing OpenSSL CA: ca.crt and an encrypted ca.key, made by `openssl req -x509` (read-only for tests)."""
    folder = tmp_path_factory.mktemp('legacy')
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650',
             '-subj', '/C=DE/O=Example Org/CN=Legacy OpenSSL CA', '-passout', 'pass:old secret', cwd=folder)
    return folder


def test_import_openssl_ca_reencrypts_key_and_issues(openssl_ca, tmp_path, clock):
    path = tmp_path / 'ca'
    result = ensure_ca(ca_path=str(path), ca_passphrase=PASSPHRASE, import_certificate=str(openssl_ca / 'ca.crt'),
                       import_private_key=str(openssl_ca / 'ca.key'), import_passphrase='old secret', clock=clock)
    assert result['changed'] is True and result['action'] == 'imported'
    original = x509.load_pem_x509_certificate((openssl_ca / 'ca.crt').read_bytes())
    stored = x509.load_pem_x509_certificate((path / 'ca.pem').read_bytes())
    assert stored == original
    assert result['ca']['key_type'] == 'rsa2048' and result['ca']['self_signed'] is True
    key_pem = (path / 'ca.key').read_bytes()
    with pytest.raises((ValueError, TypeError)):
        serialization.load_pem_private_key(key_pem, password=b'old secret')
    serialization.load_pem_private_key(key_pem, password=PASSPHRASE.encode())
    assert _mode(path / 'ca.key') == 0o600 and _mode(path) == 0o700

    with ManagedCA(str(path), PASSPHRASE, clock=clock) as managed:
        issued = managed.ensure_certificate(managed.build_wanted(identity='alice', subject={'CN': 'alice'},
                                                                 key_type='ec-p256'))
    (tmp_path / 'alice.pem').write_text(issued['certificate'])
    verify = subprocess.run(['openssl', 'verify', '-CAfile', str(openssl_ca / 'ca.crt'), str(tmp_path / 'alice.pem')],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    again = ensure_ca(ca_path=str(path), ca_passphrase=PASSPHRASE, import_certificate=str(openssl_ca / 'ca.crt'),
                      import_private_key=str(openssl_ca / 'ca.key'), import_passphrase='old secret', clock=clock)
    assert again['changed'] is False and again['action'] == 'none'


def test_import_easy_rsa_style_traditional_key_given_as_text(openssl_ca, tmp_path, clock):
    _openssl('rsa', '-in', str(openssl_ca / 'ca.key'), '-passin', 'pass:old secret', '-traditional', '-out',
             'plain.key', cwd=tmp_path)
    assert b'BEGIN RSA PRIVATE KEY' in (tmp_path / 'plain.key').read_bytes()
    result = ensure_ca(ca_path=str(tmp_path / 'ca'), ca_passphrase=PASSPHRASE,
                       import_certificate=(openssl_ca / 'ca.crt').read_text(),
                       import_private_key=(tmp_path / 'plain.key').read_text(), clock=clock)
    assert result['action'] == 'imported'


def test_import_with_wrong_or_missing_import_passphrase(openssl_ca, tmp_path, clock):
    for passphrase, words in (('nope', 'wrong passphrase'), (None, 'encrypted')):
        with pytest.raises(PassphraseError) as err:
            ensure_ca(ca_path=str(tmp_path / 'ca'), ca_passphrase=PASSPHRASE,
                      import_certificate=str(openssl_ca / 'ca.crt'), import_private_key=str(openssl_ca / 'ca.key'),
                      import_passphrase=passphrase, clock=clock)
        assert err.value.field == 'import_passphrase'
        assert words in str(err.value)
        assert not (tmp_path / 'ca').exists()


def test_import_intermediate_with_chain(tmp_path, clock):
    folder = tmp_path / 'offline'
    folder.mkdir()
    (folder / 'int.ext').write_text('basicConstraints=critical,CA:true,pathlen:0\n'
                                    'keyUsage=critical,keyCertSign,cRLSign\n'
                                    'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n')
    _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-noenc', '-keyout', 'root.key',
             '-out', 'root.pem', '-days', '3650', '-subj', '/O=Example Org/CN=Offline Root', cwd=folder)
    _openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', 'int.key',
             '-passout', 'pass:int secret', '-out', 'int.csr', '-subj', '/O=Example Org/CN=Issuing CA 1', cwd=folder)
    _openssl('x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial',
             '-days', '1825', '-extfile', 'int.ext', '-out', 'int.pem', cwd=folder)
    # OpenSSL starts validity at its own second, which may be after the test clock's start: step past it.
    clock.advance(seconds=2)
    path = tmp_path / 'ca'
    result = ensure_ca(ca_path=str(path), ca_passphrase=PASSPHRASE, import_certificate=str(folder / 'int.pem'),
                       import_private_key=str(folder / 'int.key'), import_passphrase='int secret',
                       import_chain=str(folder / 'root.pem'), clock=clock)
    assert result['action'] == 'imported'
    assert result['ca']['self_signed'] is False
    assert _mode(path / 'chain.pem') == 0o644
    root = x509.load_pem_x509_certificate((folder / 'root.pem').read_bytes())
    intermediate = x509.load_pem_x509_certificate((folder / 'int.pem').read_bytes())
    assert x509.load_pem_x509_certificates((path / 'chain.pem').read_bytes()) == [root]

    with ManagedCA(str(path), PASSPHRASE, clock=clock) as managed:
        issued = managed.ensure_certificate(managed.build_wanted(identity='alice', subject={'CN': 'alice'},
                                                                 key_type='ec-p256'))
    assert x509.load_pem_x509_certificates(issued['chain'].encode()) == [intermediate, root]
    (tmp_path / 'alice.pem').write_text(issued['certificate'])
    verify = subprocess.run(['openssl', 'verify', '-CAfile', str(folder / 'root.pem'), '-untrusted',
                             str(folder / 'int.pem'), str(tmp_path / 'alice.pem')],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # a chain that did not sign the intermediate is refused
    with pytest.raises(InputError) as err:
        ensure_ca(ca_path=str(tmp_path / 'other'), ca_passphrase=PASSPHRASE,
                  import_certificate=str(folder / 'int.pem'), import_private_key=str(folder / 'int.key'),
                  import_passphrase='int secret', import_chain=str(path / 'ca.pem'), clock=clock)
    assert err.value.field == 'import_chain'
    assert not (tmp_path / 'other').exists()


def test_import_of_non_ca_certificate_refused(tmp_path, clock):
    _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-keyout', 'leaf.key',
             '-out', 'leaf.pem', '-days', '30', '-subj', '/CN=not a ca',
             '-addext', 'basicConstraints=critical,CA:FALSE', cwd=tmp_path)
    with pytest.raises(InputError) as err:
        ensure_ca(ca_path=str(tmp_path / 'ca'), ca_passphrase=PASSPHRASE, import_certificate=str(tmp_path / 'leaf.pem'),
                  import_private_key=str(tmp_path / 'leaf.key'), clock=clock)
    assert err.value.field == 'import_certificate'
    assert 'not a CA certificate' in str(err.value)
    assert not (tmp_path / 'ca').exists()


def test_import_with_ca_usage_missing_keycertsign_refused(tmp_path, clock):
    _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-keyout', 'x.key',
             '-out', 'x.pem', '-days', '30', '-subj', '/CN=half a ca', '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,digitalSignature', cwd=tmp_path)
    with pytest.raises(InputError) as err:
        ensure_ca(ca_path=str(tmp_path / 'ca'), ca_passphrase=PASSPHRASE, import_certificate=str(tmp_path / 'x.pem'),
                  import_private_key=str(tmp_path / 'x.key'), clock=clock)
    assert err.value.field == 'import_certificate'


def test_import_with_mismatched_key_refused(openssl_ca, tmp_path, clock):
    other = generate_private_key('rsa2048').private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption())
    with pytest.raises(InputError) as err:
        ensure_ca(ca_path=str(tmp_path / 'ca'), ca_passphrase=PASSPHRASE, import_certificate=str(openssl_ca / 'ca.crt'),
                  import_private_key=other.decode(), clock=clock)
    assert err.value.field == 'import_private_key'
    assert 'public keys differ' in str(err.value)
    assert not (tmp_path / 'ca').exists()


def test_import_into_existing_other_ca_refused(ca, openssl_ca):
    before = ca.snapshot()
    with pytest.raises(CAError) as err:
        ensure_ca(ca_path=ca.path, ca_passphrase=ca.passphrase, import_certificate=str(openssl_ca / 'ca.crt'),
                  import_private_key=str(openssl_ca / 'ca.key'), import_passphrase='old secret', clock=ca.clock)
    assert err.value.field == 'import_certificate'
    assert ca.snapshot() == before


def _expired_ca(tmp_path, clock):
    key = generate_private_key('ec-p256')
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, 'Expired CA')])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(clock() - datetime.timedelta(days=400))
                   .not_valid_after(clock() - datetime.timedelta(days=35))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / 'expired.pem', tmp_path / 'expired.key'
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b'old')))
    return cert_path, key_path


def test_import_of_expired_ca_refused(tmp_path, clock):
    cert_path, key_path = _expired_ca(tmp_path, clock)
    with pytest.raises(InputError) as err:
        ensure_ca(ca_path=str(tmp_path / 'ca'), ca_passphrase=PASSPHRASE, import_certificate=str(cert_path),
                  import_private_key=str(key_path), import_passphrase='old', clock=clock)
    assert err.value.field == 'import_certificate'
    assert 'expired' in str(err.value)
    assert not (tmp_path / 'ca').exists()


def test_expired_ca_refuses_to_issue_and_publish(make_ca):
    short = make_ca('short', valid_days=30)
    issued = short.ensure('alice', valid_days=10)
    short.clock.advance(days=31)
    before = short.snapshot()
    with pytest.raises(CAError) as err:
        short.ensure('bob', valid_days=1)
    assert err.value.field == 'ca_path'
    assert 'expired' in str(err.value)
    with pytest.raises(CAError, match='expired'):
        short.ensure('alice', valid_days=1, force=True)
    with pytest.raises(CAError, match='expired'):
        short.publish_crl()
    with pytest.raises(CAError, match='expired'):  # re-running the CA task says so too
        ensure_ca(ca_path=short.path, ca_passphrase=short.passphrase, subject=SUBJECT, key_type='ec-p256',
                  clock=short.clock)
    assert short.snapshot() == before
    # reading and revoking what it issued still works
    assert short.query(identity='alice')['certificates'][0]['status'] == 'expired'
    assert short.revoke(serial=issued['serial'])['revoked'] == [issued['serial']]
