# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service.ManagedCA.export: PKCS#12, PEM and DER files."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import public_keys_match
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    InputError, KeyUnavailableError, NotFoundError,
)

PASSWORD = 'export pass'
FAST = 1000  # PBKDF2 rounds for tests that are not about the default strength


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _exports(ca):
    return [e for e in ca.audit() if e['action'] == 'export']


@pytest.fixture
def issued(ca):
    result = ca.ensure('alice', email='alice@example.org')
    return ca, result


@pytest.mark.parametrize('encryption', ['modern', 'legacy'])
def test_pkcs12_export_content_mode_and_idempotency(issued, tmp_path, encryption):
    ca, result = issued
    dest = tmp_path / 'alice.p12'
    first = ca.export(identity='alice', dest=str(dest), password=PASSWORD, encryption=encryption)
    assert first['changed'] is True
    assert first['serial'] == result['serial'] and first['includes_key'] is True and first['includes_chain'] is True
    assert _mode(dest) == 0o600
    data = dest.read_bytes()
    described = pkcs12_lib.describe(data)
    assert described['encryption'] == encryption
    assert described['iterations'] == pkcs12_lib.DEFAULT_ITERATIONS[encryption] == first['iterations']
    loaded = pkcs12_lib.load(data, PASSWORD)
    certificate = x509.load_pem_x509_certificate(result['certificate'].encode())
    assert loaded.cert.certificate == certificate
    assert loaded.cert.friendly_name == b'alice'
    assert public_keys_match(loaded.key.public_key(), certificate.public_key())
    ca_certificate = x509.load_pem_x509_certificate(open(ca.file('ca.pem'), 'rb').read())
    assert [c.certificate for c in loaded.additional_certs] == [ca_certificate]
    opened = subprocess.run(['openssl', 'pkcs12', '-info', '-noout', '-passin', 'pass:' + PASSWORD, '-in', str(dest)],
                            capture_output=True, text=True, check=False)
    assert opened.returncode == 0, opened.stderr
    assert len(_exports(ca)) == 1
    assert PASSWORD not in repr(ca.audit())

    second = ca.export(identity='alice', dest=str(dest), password=PASSWORD, encryption=encryption)
    assert second['changed'] is False
    assert dest.read_bytes() == data
    assert len(_exports(ca)) == 1


def test_pkcs12_rewritten_when_password_encryption_or_name_differ(issued, tmp_path):
    ca, _result = issued
    dest = tmp_path / 'alice.p12'
    ca.export(identity='alice', dest=str(dest), password=PASSWORD, iterations=FAST)
    assert ca.export(identity='alice', dest=str(dest), password=PASSWORD, iterations=FAST)['changed'] is False

    changed = ca.export(identity='alice', dest=str(dest), password='another password', iterations=FAST)
    assert changed['changed'] is True
    assert pkcs12_lib.load(dest.read_bytes(), 'another password') is not None
    assert pkcs12_lib.load(dest.read_bytes(), PASSWORD) is None

    legacy = ca.export(identity='alice', dest=str(dest), password='another password', encryption='legacy',
                       iterations=FAST)
    assert legacy['changed'] is True and pkcs12_lib.describe(dest.read_bytes())['encryption'] == 'legacy'

    renamed = ca.export(identity='alice', dest=str(dest), password='another password', encryption='legacy',
                        iterations=FAST, friendly_name='Alice (laptop)')
    assert renamed['changed'] is True
    assert pkcs12_lib.load(dest.read_bytes(), 'another password').cert.friendly_name == b'Alice (laptop)'

    more_rounds = ca.export(identity='alice', dest=str(dest), password='another password', encryption='legacy',
                            iterations=FAST + 1, friendly_name='Alice (laptop)')
    assert more_rounds['changed'] is True and pkcs12_lib.describe(dest.read_bytes())['iterations'] == FAST + 1
    assert len(_exports(ca)) == 5


def test_export_follows_renewal(issued, tmp_path):
    ca, _result = issued
    dest = tmp_path / 'alice.p12'
    ca.export(identity='alice', dest=str(dest), password=PASSWORD, iterations=FAST)
    renewed = ca.ensure('alice', email='alice@example.org', force=True)
    again = ca.export(identity='alice', dest=str(dest), password=PASSWORD, iterations=FAST)
    assert again['changed'] is True and again['serial'] == renewed['serial']
    loaded = pkcs12_lib.load(dest.read_bytes(), PASSWORD)
    assert '%X' % loaded.cert.certificate.serial_number == renewed['serial']


def test_pem_export_with_encrypted_key(issued, tmp_path):
    ca, result = issued
    dest = tmp_path / 'alice.pem'
    first = ca.export(serial=result['serial'], format='pem', dest=str(dest), password=PASSWORD, include_key=True)
    assert first['changed'] is True and first['includes_key'] is True
    data = dest.read_bytes()
    assert _mode(dest) == 0o600
    certificates = x509.load_pem_x509_certificates(data)
    assert certificates[0] == x509.load_pem_x509_certificate(result['certificate'].encode())
    assert certificates[1:] == [x509.load_pem_x509_certificate(open(ca.file('ca.pem'), 'rb').read())]
    assert b'-----BEGIN ENCRYPTED PRIVATE KEY-----' in data
    assert b'-----BEGIN PRIVATE KEY-----' not in data
    start = data.index(b'-----BEGIN ENCRYPTED PRIVATE KEY-----')
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(data[start:], password=None)
    key = serialization.load_pem_private_key(data[start:], password=PASSWORD.encode())
    assert public_keys_match(key.public_key(), certificates[0].public_key())
    assert ca.export(serial=result['serial'], format='pem', dest=str(dest), password=PASSWORD,
                     include_key=True)['changed'] is False
    assert dest.read_bytes() == data
    # a different password makes the existing key unreadable to the caller: rewrite
    assert ca.export(serial=result['serial'], format='pem', dest=str(dest), password='other',
                     include_key=True)['changed'] is True


def test_pem_export_without_key_and_chain(issued, tmp_path):
    ca, result = issued
    dest = tmp_path / 'alice.crt'
    first = ca.export(identity='alice', format='pem', dest=str(dest), include_chain=False)
    assert first['changed'] is True and first['includes_key'] is False and first['includes_chain'] is False
    assert dest.read_text() == result['certificate']
    assert ca.export(identity='alice', format='pem', dest=str(dest), include_chain=False)['changed'] is False
    # asking for the chain now changes the file
    assert ca.export(identity='alice', format='pem', dest=str(dest))['changed'] is True
    assert len(x509.load_pem_x509_certificates(dest.read_bytes())) == 2


def test_der_export(issued, tmp_path):
    ca, result = issued
    dest = tmp_path / 'alice.der'
    assert ca.export(identity='alice', format='der', dest=str(dest))['changed'] is True
    certificate = x509.load_der_x509_certificate(dest.read_bytes())
    assert certificate == x509.load_pem_x509_certificate(result['certificate'].encode())
    assert _mode(dest) == 0o600
    assert ca.export(identity='alice', format='der', dest=str(dest))['changed'] is False
    with pytest.raises(InputError) as err:
        ca.export(identity='alice', format='der', dest=str(dest), include_key=True, password='x')
    assert err.value.field == 'include_key'


def test_loose_mode_is_tightened_without_rewriting(issued, tmp_path):
    ca, _result = issued
    dest = tmp_path / 'alice.der'
    ca.export(identity='alice', format='der', dest=str(dest))
    inode = os.stat(dest).st_ino
    os.chmod(dest, 0o644)
    result = ca.export(identity='alice', format='der', dest=str(dest))
    assert result['changed'] is True
    assert _mode(dest) == 0o600
    assert os.stat(dest).st_ino == inode


def test_check_mode_export_writes_nothing(issued, tmp_path):
    ca, _result = issued
    before = ca.snapshot()
    with ca.open() as managed:
        result = managed.export(identity='alice', dest=str(tmp_path / 'a.p12'), password=PASSWORD, check_mode=True)
    assert result['changed'] is True
    assert not (tmp_path / 'a.p12').exists()
    assert ca.snapshot() == before


@pytest.mark.parametrize('params, error, field', [
    ({'password': ''}, InputError, 'password'),
    ({'password': None}, InputError, 'password'),
    ({'dest': '{tmp}/missing/alice.p12'}, InputError, 'dest'),
    ({'dest': '{tmp}'}, InputError, 'dest'),
    ({'dest': None}, InputError, 'dest'),
    ({'format': 'jks'}, InputError, 'format'),
    ({'encryption': 'rc2'}, InputError, 'encryption'),
    ({'iterations': 10}, InputError, 'iterations'),
    ({'include_key': False}, InputError, 'include_key'),
    ({'identity': None, 'serial': 'ABCDEF'}, NotFoundError, 'serial'),
    ({'identity': 'nobody'}, NotFoundError, 'identity'),
    ({'identity': None}, InputError, 'identity'),
    ({'serial': 'AB'}, InputError, 'serial'),
])
def test_bad_exports_write_nothing(issued, tmp_path, params, error, field):
    ca, _result = issued
    request = {'identity': 'alice', 'dest': '{tmp}/alice.p12', 'password': PASSWORD, 'iterations': FAST}
    request.update(params)
    if isinstance(request['dest'], str):
        request['dest'] = request['dest'].format(tmp=tmp_path)
    before = ca.snapshot()
    with pytest.raises(error) as err:
        ca.export(**request)
    assert err.value.field == field
    assert os.listdir(tmp_path) == ['ca']
    assert ca.snapshot() == before


def test_missing_dest_folder_message(issued, tmp_path):
    ca, _result = issued
    with pytest.raises(InputError) as err:
        ca.export(identity='alice', dest=str(tmp_path / 'nope' / 'a.p12'), password=PASSWORD)
    assert str(tmp_path / 'nope') in str(err.value) and 'does not exist' in str(err.value)


def test_key_past_retention_then_purged(ca, tmp_path):
    result = ca.ensure('alice', key_retention=7)
    dest = tmp_path / 'alice.p12'
    ca.clock.advance(days=6, hours=23)
    assert ca.export(identity='alice', dest=str(dest), password=PASSWORD, iterations=FAST)['changed'] is True
    dest.unlink()
    ca.clock.advance(hours=1)
    with pytest.raises(KeyUnavailableError) as err:
        ca.export(identity='alice', dest=str(dest), password=PASSWORD, iterations=FAST)
    assert err.value.field == 'identity'  # the parameter the caller used
    assert 'retention' in str(err.value) and result['serial'] in str(err.value)
    assert err.value.code == 'key_purged'  # the deploy role reissues on this code, never on the wording
    assert not dest.exists()
    ca.ensure('bob')  # the next write purges it
    assert ca.record(result['serial']).key_status == 'purged'
    with pytest.raises(KeyUnavailableError) as err:
        ca.export(serial=result['serial'], format='pem', dest=str(dest), password=PASSWORD, include_key=True)
    assert 'purged' in str(err.value) and 'can no longer be exported' in str(err.value)
    assert err.value.code == 'key_purged'
    assert not dest.exists()
    # the certificate itself is still exportable
    assert ca.export(identity='alice', format='pem', dest=str(dest))['changed'] is True


def test_revoked_certificate_is_not_exported(issued, tmp_path):
    ca, result = issued
    ca.revoke(serial=result['serial'], reason='key_compromise')
    for fmt, extra in (('pkcs12', {'password': PASSWORD}), ('der', {}), ('pem', {})):
        with pytest.raises(InputError) as err:
            ca.export(serial=result['serial'], format=fmt, dest=str(tmp_path / ('out.' + fmt)), **extra)
        assert 'revoked' in str(err.value) and 'key_compromise' in str(err.value)
    assert os.listdir(tmp_path) == ['ca']


def test_superseded_certificate_exports_by_serial(issued, tmp_path):
    ca, result = issued
    ca.ensure('alice', email='alice@example.org', force=True)
    out = ca.export(serial=result['serial'], dest=str(tmp_path / 'old.p12'), password=PASSWORD, iterations=FAST)
    assert out['serial'] == result['serial']
