# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CRL building and reading (private module_utils)."""

from __future__ import annotations

import base64
import datetime
import hashlib

from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import key_type_of, signature_hash_for
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import authority_key_identifier
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import format_serial

try:
    from cryptography import x509
except ImportError:
    pass

_REASON_FLAGS = {
    'key_compromise': 'key_compromise',
    'ca_compromise': 'ca_compromise',
    'affiliation_changed': 'affiliation_changed',
    'superseded': 'superseded',
    'cessation_of_operation': 'cessation_of_operation',
    'certificate_hold': 'certificate_hold',
    'privilege_withdrawn': 'privilege_withdrawn',
    'aa_compromise': 'aa_compromise',
}


def revocation_digest(entries) -> str:
    """A fingerprint of the revocation list: changes whenever a revocation is added or altered."""
    text = ''.join(['%s|%s|%s\n' % (entry.serial, to_iso(entry.revoked_at), entry.reason)
                    for entry in sorted(entries, key=lambda e: e.serial)])
    return hashlib.sha256(text.encode('ascii')).hexdigest()


def build_crl(*, ca_certificate, ca_key, entries, number: int, this_update: datetime.datetime,
              next_update: datetime.datetime):
    """Sign a CRL of ``entries``. The builder gets the whole list at once: adding entries one by one copies the list
    each time (quadratic; 7.6 s instead of 0.7 s for 100,000 entries)."""
    if not this_update < next_update:
        raise ValueError('the CRL this_update %s must be before next_update %s' % (this_update, next_update))
    aki = authority_key_identifier(ca_certificate)
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=ca_certificate.subject, last_update=_naive_utc(this_update), next_update=_naive_utc(next_update),
        extensions=[x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
                    x509.Extension(aki.oid, False, aki)],
        revoked_certificates=[_revoked(entry) for entry in entries])
    return builder.sign(ca_key, signature_hash_for(key_type_of(ca_key.public_key(), 'ca')))


def _revoked(entry):
    revoked = (x509.RevokedCertificateBuilder()
               .serial_number(int(entry.serial, 16))
               .revocation_date(entry.revoked_at))
    # RFC 5280 5.3.1: reasonCode unspecified SHOULD be absent.
    if entry.reason in _REASON_FLAGS:
        revoked = revoked.add_extension(x509.CRLReason(getattr(x509.ReasonFlags, _REASON_FLAGS[entry.reason])),
                                        critical=False)
    return revoked.build()


def _naive_utc(moment: datetime.datetime) -> datetime.datetime:
    """What the builder's own setters store: naive UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment


def crl_number(crl) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def crl_serials(crl) -> set:
    return {format_serial(revoked.serial_number) for revoked in crl}


def der_to_pem(der: bytes) -> bytes:
    """The PEM form of a DER CRL (what public_bytes(PEM) gives, without encoding the CRL a second time)."""
    text = base64.b64encode(der)
    return (b'-----BEGIN X509 CRL-----\n' + b''.join(text[i:i + 64] + b'\n' for i in range(0, len(text), 64))
            + b'-----END X509 CRL-----\n')
