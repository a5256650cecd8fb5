# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import (
    certificate_serial, certificate_summary, fingerprint, fingerprints, format_serial, is_marked_ca,
    normalize_fingerprint, normalize_serial, public_key_sha256,
)

SHA256 = 'AB' * 32
SHA1 = '0F' * 20


NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def _certificate(serial: int, ca=None):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'identity test')])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(serial).not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=1)))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize('value, expected', [
    ('ABC', 'ABC'),
    ('abc', 'ABC'),
    ('0abc', 'ABC'),
    ('0x0ABC', 'ABC'),
    ('0X0abc', 'ABC'),
    ('0a:bc', 'ABC'),
    ('0A BC', 'ABC'),
    ('  ab:cd  ', 'ABCD'),
    ('00', '0'),
    ('0', '0'),
    (255, '255'),
    ('1' * 40, '1' * 40),
    ('00' + 'F' * 40, 'F' * 40),
])
def test_normalize_serial(value, expected):
    assert normalize_serial(value) == expected


@pytest.mark.parametrize('value, message', [
    (None, 'expected a hexadecimal serial number'),
    (True, 'expected a hexadecimal serial number'),
    ('xyz', "'xyz' is not a hexadecimal serial number"),
    ('12-34', "'12-34' is not a hexadecimal serial number"),
    ('1' * 41, "'%s' is not a hexadecimal serial number" % ('1' * 41)),
])
def test_normalize_serial_refuses_naming_the_field(value, message):
    with pytest.raises(InputError) as error:
        normalize_serial(value, 'certificates[0].serial')
    assert error.value.field == 'certificates[0].serial'
    assert message in str(error.value)


@pytest.mark.parametrize('number, text', [
    (0, '0'),
    (10, 'A'),
    (0x0ABC, 'ABC'),
    (0x00FF00, 'FF00'),
    (2 ** 159 - 1, '7' + 'F' * 39),
])
def test_format_serial_is_upper_hex_without_leading_zeros(number, text):
    assert format_serial(number) == text
    assert normalize_serial(text) == text  # what results show is what parameters accept back


def test_certificate_serial_renders_the_certificate_serial_number():
    certificate = _certificate(0x01AB)
    assert certificate_serial(certificate) == '1AB'


@pytest.mark.parametrize('value, algorithm, expected', [
    (SHA256, 'sha256', SHA256),
    (SHA256.lower(), 'sha256', SHA256),
    (':'.join(SHA256[i:i + 2] for i in range(0, 64, 2)), 'sha256', SHA256),
    (' '.join(SHA256[i:i + 2] for i in range(0, 64, 2)).lower(), 'sha256', SHA256),
    (SHA1, 'sha1', SHA1),
    (':'.join(SHA1[i:i + 2] for i in range(0, 40, 2)).lower(), 'sha1', SHA1),
])
def test_normalize_fingerprint(value, algorithm, expected):
    assert normalize_fingerprint(value, 'fingerprint', algorithm) == expected


@pytest.mark.parametrize('value, algorithm, message', [
    (SHA1, 'sha256', 'is not a SHA-256 fingerprint (64 hex digits, colons allowed)'),
    (SHA256, 'sha1', 'is not a SHA-1 fingerprint (40 hex digits, colons allowed)'),
    ('G' * 64, 'sha256', 'is not a SHA-256 fingerprint'),
    ('', 'sha1', 'is not a SHA-1 fingerprint'),
    (SHA256 + 'AB', 'sha256', 'is not a SHA-256 fingerprint'),
])
def test_normalize_fingerprint_refuses_naming_the_field(value, algorithm, message):
    with pytest.raises(InputError) as error:
        normalize_fingerprint(value, 'keep_fingerprint', algorithm)
    assert error.value.field == 'keep_fingerprint'
    assert message in str(error.value)


def test_fingerprints_are_upper_hex_without_colons():
    certificate = _certificate(7)
    sha256 = certificate.fingerprint(hashes.SHA256()).hex().upper()
    sha1 = certificate.fingerprint(hashes.SHA1()).hex().upper()
    assert fingerprint(certificate) == sha256
    assert fingerprint(certificate, 'sha256') == sha256
    assert fingerprint(certificate, 'sha1') == sha1
    assert fingerprints(certificate) == (sha1, sha256)
    assert normalize_fingerprint(sha256, 'f') == sha256 and normalize_fingerprint(sha1, 'f', 'sha1') == sha1


def test_fingerprint_of_an_unknown_algorithm_is_a_programming_error():
    with pytest.raises(ValueError):
        fingerprint(_certificate(7), 'md5')


def test_public_key_sha256_is_of_the_subject_public_key_info():
    certificate = _certificate(9)
    value = public_key_sha256(certificate.public_key())
    assert len(value) == 64 and value == value.upper()
    assert value != fingerprint(certificate)
    assert value == public_key_sha256(certificate.public_key())


@pytest.mark.parametrize('ca, expected', [(None, False), (False, False), (True, True)])
def test_is_marked_ca_reads_basic_constraints(ca, expected):
    assert is_marked_ca(_certificate(5, ca)) is expected


def test_certificate_summary_is_what_endpoint_results_show():
    certificate = _certificate(0x00BEEF)
    assert certificate_summary(certificate) == {
        'subject': 'CN=identity test', 'issuer': 'CN=identity test', 'serial': 'BEEF',
        'fingerprint_sha256': fingerprint(certificate), 'fingerprint_sha1': fingerprint(certificate, 'sha1'),
        'not_before': '2026-01-02T03:04:05Z', 'not_after': '2026-01-03T03:04:05Z',
    }
