# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import UPN_OID
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import (
    BACKDATE, PROFILES, SMARTCARD_LOGON_OID, certificate_profile, validate_profile,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

CRL_URL = 'http://pki.example.org/client-ca.crl'
SMARTCARD_LOGON = ObjectIdentifier('1.3.6.1.4.1.311.20.2.2')


def _load(result):
    return x509.load_pem_x509_certificate(result['certificate'].encode())


def _ext(certificate, cls):
    return certificate.extensions.get_extension_for_class(cls)


@pytest.fixture
def crl_ca(make_ca):
    return make_ca('crl', crl_url=CRL_URL)


def test_smartcard_logon_oid_is_microsofts():
    assert SMARTCARD_LOGON_OID == SMARTCARD_LOGON.dotted_string


@pytest.mark.parametrize('profile, ekus', [
    ('client', {ExtendedKeyUsageOID.CLIENT_AUTH}),
    ('client_email', {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION}),
    ('smartcard', {ExtendedKeyUsageOID.CLIENT_AUTH, SMARTCARD_LOGON}),
    ('client_email_smartcard', {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                SMARTCARD_LOGON}),
])
def test_client_profile_extensions(crl_ca, profile, ekus):
    result = crl_ca.ensure('alice', profile=profile, email='alice@example.org',
                           sans=['UPN:alice@corp.example', 'DNS:ws1.example.org', 'URI:https://id.example.org/alice'])
    certificate = _load(result)
    ca_certificate = x509.load_pem_x509_certificate(open(crl_ca.file('ca.pem'), 'rb').read())
    certificate.verify_directly_issued_by(ca_certificate)

    constraints = _ext(certificate, x509.BasicConstraints)
    assert constraints.critical is True
    assert constraints.value.ca is False

    usage = _ext(certificate, x509.KeyUsage)
    assert usage.critical is True
    assert usage.value.digital_signature is True
    assert usage.value.key_encipherment is False  # EC key
    assert usage.value.key_cert_sign is False and usage.value.crl_sign is False
    assert usage.value.content_commitment is False and usage.value.key_agreement is False

    eku = _ext(certificate, x509.ExtendedKeyUsage)
    assert set(eku.value) == ekus
    assert certificate_profile(certificate) == profile
    assert result['profile'] == profile

    ski = _ext(certificate, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(certificate.public_key())
    aki = _ext(certificate, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(ca_certificate, x509.SubjectKeyIdentifier).value.digest

    san = _ext(certificate, x509.SubjectAlternativeName)
    assert san.critical is False
    assert san.value.get_values_for_type(x509.RFC822Name) == ['alice@example.org']
    assert san.value.get_values_for_type(x509.DNSName) == ['ws1.example.org']
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == ['https://id.example.org/alice']
    assert [o.type_id.dotted_string for o in san.value.get_values_for_type(x509.OtherName)] == [UPN_OID]

    points = _ext(certificate, x509.CRLDistributionPoints).value
    assert [[n.value for n in point.full_name] for point in points] == [[CRL_URL]]

    assert certificate.issuer == ca_certificate.subject
    assert certificate.version == x509.Version.v3


def test_rsa_client_key_gets_key_encipherment(ca):
    certificate = _load(ca.ensure('rsa-user', key_type='rsa2048'))
    usage = _ext(certificate, x509.KeyUsage).value
    assert usage.digital_signature is True
    assert usage.key_encipherment is True
    assert ca.records('rsa-user')[0].key_type == 'rsa2048'


def test_no_crl_distribution_point_without_crl_url(ca):
    certificate = _load(ca.ensure('alice'))
    with pytest.raises(x509.ExtensionNotFound):
        _ext(certificate, x509.CRLDistributionPoints)
    with pytest.raises(x509.ExtensionNotFound):
        _ext(certificate, x509.SubjectAlternativeName)  # no SAN asked, none written


def test_validity_is_backdated_and_as_asked(ca):
    certificate = _load(ca.ensure('alice', valid_days=90))
    now = ca.clock()
    assert certificate.not_valid_before_utc == now - BACKDATE
    assert certificate.not_valid_after_utc == now + datetime.timedelta(days=90)


def test_signature_hash_follows_ca_key(make_ca):
    p384 = make_ca('p384', key_type='ec-p384')
    assert isinstance(_load(p384.ensure('alice')).signature_hash_algorithm, hashes.SHA384)


def test_ca_certificate_profile(ca):
    ca_certificate = x509.load_pem_x509_certificate(open(ca.file('ca.pem'), 'rb').read())
    constraints = _ext(ca_certificate, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is True and constraints.value.path_length == 0
    usage = _ext(ca_certificate, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert ca_certificate.issuer == ca_certificate.subject
    ca_certificate.verify_directly_issued_by(ca_certificate)
    assert _ext(ca_certificate, x509.SubjectKeyIdentifier).value == \
        x509.SubjectKeyIdentifier.from_public_key(ca_certificate.public_key())


def test_validate_profile():
    for name in PROFILES:
        assert validate_profile(name) == name
    with pytest.raises(InputError) as err:
        validate_profile('server')
    assert err.value.field == 'profile'
    assert 'client_email' in str(err.value)


def test_certificate_profile_unknown_eku_is_none(ca):
    certificate = _load(ca.ensure('alice'))
    assert certificate_profile(certificate) == 'client'
    ca_certificate = x509.load_pem_x509_certificate(open(ca.file('ca.pem'), 'rb').read())
    assert certificate_profile(ca_certificate) is None  # no EKU at all


# -- serial numbers ---------------------------------------------------------------------------------------------

SERIAL_SAMPLE = 150


def test_serials_positive_short_random_and_unique(ca):
    serials = []
    for index in range(SERIAL_SAMPLE):
        result = ca.ensure('user%03d' % index)
        certificate = _load(result)
        number = certificate.serial_number
        assert result['serial'] == '%X' % number  # upper-case hex, no colons, no leading zeros
        serials.append(number)
    for number in serials:
        assert number > 0
        # DER INTEGER: magnitude plus a sign bit must fit 20 octets (RFC 5280 4.1.2.2)
        assert (number.bit_length() + 8) // 8 <= 20
        assert number.bit_length() >= 64
    assert len(set(serials)) == SERIAL_SAMPLE
    # At least 64 bit positions actually vary across the sample: the serials carry >= 64 bits of randomness,
    # not a counter or a timestamp with a short random tail.
    varying = [bit for bit in range(160) if 0 < sum((n >> bit) & 1 for n in serials) < SERIAL_SAMPLE]
    assert len(varying) >= 64
    assert min(varying) == 0  # randomness reaches the low-order bits
    # and the store holds exactly these serials, once each
    stored = [record.serial for record in ca.records()]
    assert sorted(stored) == sorted('%X' % n for n in serials)
