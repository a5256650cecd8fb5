# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate profiles: what a client certificate and a CA certificate contain (private module_utils)."""

from __future__ import annotations

import datetime

from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import key_type_of, signature_hash_for
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import san_to_general_name
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ObjectIdentifier
except ImportError:
    pass

SMARTCARD_LOGON_OID = '1.3.6.1.4.1.311.20.2.2'

# profile name -> extended key usages (dotted OIDs)
PROFILES = {
    'client': ('1.3.6.1.5.5.7.3.2',),
    'client_email': ('1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.4'),
    'smartcard': ('1.3.6.1.5.5.7.3.2', SMARTCARD_LOGON_OID),
    'client_email_smartcard': ('1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.4', SMARTCARD_LOGON_OID),
}
DEFAULT_PROFILE = 'client'

# Backdating tolerates clock skew between the CA host and the endpoints.
BACKDATE = datetime.timedelta(minutes=5)


def validate_profile(name: str) -> str:
    if name not in PROFILES:
        raise InputError('unknown profile %r (use one of %s)' % (name, ', '.join(PROFILES)), 'profile')
    return name


def build_client_certificate(*, ca_certificate, ca_key, subject_name, sans: list, public_key, profile: str,
                             not_before: datetime.datetime, not_after: datetime.datetime, serial: int,
                             crl_url: str | None):
    """Sign a client certificate: CA:false, KU digitalSignature(+keyEncipherment for RSA), EKU per profile."""
    is_rsa_key = isinstance(public_key, rsa.RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=is_rsa_key, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ObjectIdentifier(oid) for oid in PROFILES[profile]]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_identifier(ca_certificate), critical=False)
    )
    if sans:
        # RFC 5280: the SAN extension is critical when the subject is empty; ours never is.
        builder = builder.add_extension(x509.SubjectAlternativeName([san_to_general_name(s) for s in sans]),
                                        critical=False)
    if crl_url:
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None, reasons=None,
            crl_issuer=None)]), critical=False)
    ca_key_type = key_type_of(ca_key.public_key(), 'ca')
    return builder.sign(ca_key, signature_hash_for(ca_key_type))


def build_ca_certificate(*, key, subject_name, not_before: datetime.datetime, not_after: datetime.datetime,
                         serial: int):
    """Self-signed root: CA:true pathlen 0 (it signs end-entity certificates only), keyCertSign + cRLSign."""
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(subject_name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, signature_hash_for(key_type_of(public_key, 'key_type')))
    )


def authority_key_identifier(ca_certificate):
    try:
        ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key())


def certificate_profile(certificate) -> str | None:
    """Recognise the profile from the EKU extension (None when no known profile matches)."""
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    oids = tuple(sorted(o.dotted_string for o in eku))
    for name, wanted in PROFILES.items():
        if tuple(sorted(wanted)) == oids:
            return name
    return None
