# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a certificate was issued by a CA, and if not, why not in words (private module_utils)."""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

try:
    from cryptography import x509
except ImportError:  # reported by the module through deps.require_cryptography()
    pass


def issued_by(certificate, ca_certificate) -> bool:
    """True when ``ca_certificate`` is the issuer by name and its key verifies the signature."""
    if certificate.issuer != ca_certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(ca_certificate)
        return True
    except Exception:  # InvalidSignature, unsupported algorithms: not issued by this CA
        return False


def _key_id_hex(data) -> str:
    return data.hex().upper() if data else 'none'


def issuer_mismatch(certificate, ca_certificate) -> str:
    """Why ``certificate`` is not ``ca_certificate``'s: by name, or, for two CAs of one name, by key identifier."""
    issuer = certificate.issuer.rfc4514_string()
    ca_name = ca_certificate.subject.rfc4514_string()
    if certificate.issuer != ca_certificate.subject:
        return 'was issued by %s, not by this CA (%s)' % (issuer, ca_name)
    try:
        authority = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        authority = None
    ca_key = x509.SubjectKeyIdentifier.from_public_key(ca_certificate.public_key()).digest
    return ('was issued by another CA of the same name %s, not by this CA (the certificate\'s authority key id is '
            '%s, this CA\'s key id is %s)' % (issuer, _key_id_hex(authority), _key_id_hex(ca_key)))


def refuse_foreign(entries, ca_certificate, field: str = 'issuer') -> None:
    """Refuse a removal when one of ``entries`` ((label, certificate) pairs) is not ``ca_certificate``'s."""
    for label, certificate in entries:
        if not issued_by(certificate, ca_certificate):
            raise InputError('certificate %s (%s) %s; nothing was removed'
                             % (label, certificate.subject.rfc4514_string(),
                                issuer_mismatch(certificate, ca_certificate).replace('this CA', 'the given issuer')),
                             field)
