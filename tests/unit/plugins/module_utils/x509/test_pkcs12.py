# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ansible_collections.certfleet.pki.plugins.module_utils.x509 import der
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import public_keys_match
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import generate_private_key
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

PASSWORD = 'p12 secret \u00e9'


@pytest.fixture
def material(ca):
    """A real client certificate with a key, and the CA certificate as its chain."""
    ca.ensure('alice')
    with ca.open() as managed:
        with managed.store.read():
            record = managed.store.current('alice')
            wrapped = managed.store.wrapped_key(record.serial)
        key = managed.key_wrapper().unwrap(wrapped, record.serial)
        chain = [managed.authority.certificate]
    certificate = x509.load_pem_x509_certificate(record.pem.encode())
    return key, certificate, chain


def _openssl_info(path, password):
    return subprocess.run(['openssl', 'pkcs12', '-info', '-noout', '-passin', 'pass:' + password, '-in', str(path)],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize('encryption, iterations, expected_mac, openssl_words', [
    ('modern', None, 'sha256', ['PBES2', 'PBKDF2', 'AES-256-CBC', 'hmacWithSHA256']),
    ('legacy', None, 'sha1', ['pbeWithSHA1And3-KeyTripleDES-CBC']),
    ('modern', 4096, 'sha256', ['AES-256-CBC']),
    ('legacy', 3000, 'sha1', ['TripleDES']),
])
def test_serialize_describe_and_openssl_agree(material, tmp_path, encryption, iterations, expected_mac,
                                              openssl_words):
    key, certificate, chain = material
    data = pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=PASSWORD,
                                encryption=encryption, friendly_name='alice@example', iterations=iterations)
    wanted_rounds = iterations or pkcs12_lib.DEFAULT_ITERATIONS[encryption]
    described = pkcs12_lib.describe(data)
    assert described == {'encryption': encryption, 'iterations': wanted_rounds, 'mac': expected_mac}

    path = tmp_path / 'alice.p12'
    path.write_bytes(data)
    opened = _openssl_info(path, PASSWORD)
    assert opened.returncode == 0, opened.stderr
    report = opened.stdout + opened.stderr
    for word in openssl_words:
        assert word in report
    # OpenSSL's own reading of the key bag's iteration count is the one describe() found
    keybag = [line for line in report.splitlines() if line.startswith('Shrouded Keybag')]
    assert len(keybag) == 1
    assert int(re.search(r'Iteration (\d+)', keybag[0]).group(1)) == described['iterations']
    assert re.search(r'MAC: %s' % expected_mac, report, re.IGNORECASE)

    wrong = _openssl_info(path, 'not the password')
    assert wrong.returncode != 0

    loaded = pkcs12_lib.load(data, PASSWORD)
    assert loaded.cert.certificate == certificate
    assert loaded.cert.friendly_name == b'alice@example'
    assert public_keys_match(loaded.key.public_key(), certificate.public_key())
    assert [c.certificate for c in loaded.additional_certs] == chain
    assert pkcs12_lib.load(data, 'not the password') is None


def test_default_iterations_are_the_documented_strengths():
    # Modern follows OWASP's PBKDF2-HMAC-SHA256 guidance; legacy stays at what old importers accept.
    assert pkcs12_lib.DEFAULT_ITERATIONS['modern'] >= 600000
    assert pkcs12_lib.DEFAULT_ITERATIONS['legacy'] >= 2048


@pytest.mark.parametrize('password', ['', None])
def test_empty_password_refused(material, password):
    key, certificate, chain = material
    with pytest.raises(InputError) as err:
        pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=password)
    assert err.value.field == 'password'
    with pytest.raises(InputError):
        pkcs12_lib.validate_password(password)


def test_unknown_encryption_and_low_iterations_refused(material):
    key, certificate, chain = material
    with pytest.raises(InputError) as err:
        pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password='x', encryption='aes')
    assert err.value.field == 'encryption'
    with pytest.raises(InputError) as err:
        pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password='x', iterations=999)
    assert err.value.field == 'iterations'


def test_describe_file_made_by_openssl(material, tmp_path):
    """describe() reads what another implementation wrote, not only our own output."""
    key, certificate, _chain = material
    (tmp_path / 'key.pem').write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / 'cert.pem').write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    subprocess.run(['openssl', 'pkcs12', '-export', '-inkey', str(tmp_path / 'key.pem'), '-in',
                    str(tmp_path / 'cert.pem'), '-out', str(tmp_path / 'o.p12'), '-passout', 'pass:pw', '-iter', '7777',
                    '-keypbe', 'AES-256-CBC', '-certpbe', 'AES-256-CBC', '-macalg', 'sha256'],
                   check=True, capture_output=True)
    described = pkcs12_lib.describe((tmp_path / 'o.p12').read_bytes())
    assert described == {'encryption': 'modern', 'iterations': 7777, 'mac': 'sha256'}
    subprocess.run(['openssl', 'pkcs12', '-export', '-inkey', str(tmp_path / 'key.pem'), '-in',
                    str(tmp_path / 'cert.pem'), '-out', str(tmp_path / 'l.p12'), '-passout', 'pass:pw', '-iter', '2500',
                    '-keypbe', 'PBE-SHA1-3DES', '-certpbe', 'PBE-SHA1-3DES', '-macalg', 'sha1'],
                   check=True, capture_output=True)
    assert pkcs12_lib.describe((tmp_path / 'l.p12').read_bytes()) == {'encryption': 'legacy', 'iterations': 2500,
                                                                      'mac': 'sha1'}


@pytest.mark.parametrize('data', [b'', b'\x30', b'not a pkcs12 file at all', b'\x30\x82\xff\xff\x02\x01\x03',
                                  bytes(range(256))])
def test_describe_refuses_garbage(data):
    with pytest.raises(InputError, match='not a readable PKCS#12'):
        pkcs12_lib.describe(data)


def test_describe_detects_tampered_structure(material):
    key, certificate, chain = material
    data = pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password='pw', iterations=1000)
    with pytest.raises(InputError):
        pkcs12_lib.describe(data[: len(data) // 2])


# -- the DER reader ---------------------------------------------------------------------------------------------

def test_der_reader_against_real_encodings():
    certificate_der = x509.load_pem_x509_certificate(_self_signed_pem()).public_bytes(serialization.Encoding.DER)
    tag, value, end = der.read_tlv(certificate_der)
    assert tag == der.SEQUENCE and end == len(certificate_der)
    tbs, algorithm, signature = der.children(value)
    assert tbs[0] == der.SEQUENCE and signature[0] == 0x03
    assert der.decode_oid(der.children(algorithm[1])[0][1]) == '1.2.840.10045.4.3.2'  # ecdsa-with-SHA256
    assert der.decode_oid(bytes.fromhex('2a864886f70d01010b')) == '1.2.840.113549.1.1.11'
    assert der.decode_oid(bytes.fromhex('550403')) == '2.5.4.3'
    assert der.decode_int(b'\x00\x80') == 128 and der.decode_int(b'\xff') == -1
    for bad in (b'\x30', b'\x30\x05\x01', b'\x30\x85\x01\x01\x01\x01\x01', b'\x30\x80'):
        with pytest.raises(der.DERError):
            der.read_tlv(bad)
    with pytest.raises(der.DERError):
        der.decode_oid(b'')


def _self_signed_pem() -> bytes:
    key = generate_private_key('ec-p256')
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, 'der')])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize('encryption, compatible', [('legacy', True), ('modern', False)])
def test_apple_compatible(material, encryption, compatible):
    key, certificate, chain = material
    data = pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=PASSWORD,
                                encryption=encryption)
    assert pkcs12_lib.apple_compatible(data) == (compatible, encryption)
    assert pkcs12_lib.apple_compatible(b'not a pkcs12 file') == (False, 'unknown')


def test_open_pkcs12_and_load_pkcs12(material, tmp_path):
    key, certificate, chain = material
    path = tmp_path / 'alice.p12'
    path.write_bytes(pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=PASSWORD))
    parsed, data = pkcs12_lib.open_pkcs12(str(path), PASSWORD)
    assert data == path.read_bytes()
    assert parsed.cert.certificate == certificate and public_keys_match(parsed.key.public_key(), key.public_key())
    assert pkcs12_lib.load_pkcs12(str(path), PASSWORD) == (certificate, chain)


def test_open_pkcs12_errors_name_the_parameter(material, tmp_path):
    key, certificate, chain = material
    good = tmp_path / 'alice.p12'
    good.write_bytes(pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=PASSWORD))
    garbage = tmp_path / 'garbage.p12'
    garbage.write_bytes(b'not a pkcs12 file at all')
    without_key = tmp_path / 'nokey.p12'
    without_key.write_bytes(serialization.pkcs12.serialize_key_and_certificates(
        None, None, certificate, None, serialization.BestAvailableEncryption(PASSWORD.encode())))
    cases = [
        ('', PASSWORD, 'pkcs12_path', 'is required'),
        (str(tmp_path / 'missing.p12'), PASSWORD, 'pkcs12_path', 'does not exist'),
        (str(tmp_path), PASSWORD, 'pkcs12_path', 'is a folder, expected a PKCS#12 file'),
        (str(good), '', 'pkcs12_password', 'is required to open'),
        (str(good), None, 'pkcs12_password', 'is required to open'),
        (str(good), 'wrong', 'pkcs12_password', '(wrong password)'),
        (str(garbage), PASSWORD, 'pkcs12_path', 'is not a readable PKCS#12 file'),
        (str(without_key), PASSWORD, 'pkcs12_path', 'must hold a certificate and its private key'),
    ]
    for path, password, field, message in cases:
        with pytest.raises(InputError) as error:
            pkcs12_lib.open_pkcs12(path, password)
        assert (error.value.field, message in str(error.value)) == (field, True), (path, str(error.value))


def test_open_pkcs12_data_opens_bytes_with_the_same_errors(material):
    key, certificate, chain = material
    data = pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=PASSWORD)
    assert pkcs12_lib.open_pkcs12_data(data, PASSWORD).cert.certificate == certificate
    for value, password, field, message in [
        (data, None, 'pkcs12_password', 'is required to open the PKCS#12 data'),
        (data, 'wrong', 'pkcs12_password', 'does not open the PKCS#12 data (wrong password)'),
        (b'garbage', PASSWORD, 'pkcs12_path', 'the PKCS#12 data is not a readable PKCS#12 file'),
    ]:
        with pytest.raises(InputError) as error:
            pkcs12_lib.open_pkcs12_data(value, password)
        assert (error.value.field, message in str(error.value)) == (field, True), str(error.value)


@pytest.mark.parametrize('name, default, expected', [('alice@example', None, 'alice@example'),
                                                     ('alice@example', 'fallback', 'alice@example'),
                                                     (None, 'fallback', 'fallback'), (None, None, None)])
def test_repack_keeps_key_certificate_and_friendly_name(material, name, default, expected):
    key, certificate, chain = material
    data = pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=PASSWORD, friendly_name=name)
    parsed = pkcs12_lib.open_pkcs12_data(data, PASSWORD)
    assert pkcs12_lib.friendly_name(parsed) == name
    copy = pkcs12_lib.repack(parsed, 'one time', 'legacy', default_name=default)
    assert pkcs12_lib.describe(copy)['encryption'] == 'legacy'
    reopened = pkcs12_lib.open_pkcs12_data(copy, 'one time')
    assert reopened.cert.certificate == certificate
    assert [c.certificate for c in reopened.additional_certs] == chain
    assert public_keys_match(reopened.key.public_key(), key.public_key())
    assert pkcs12_lib.friendly_name(reopened) == expected
    assert pkcs12_lib.open_pkcs12_data(pkcs12_lib.repack(parsed, 'x', 'modern', chain=[]), 'x').additional_certs == []
