# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How certificates are named in results and parameters: fingerprints and serials (private module_utils).

Fingerprints are upper-case hex without colons (SHA-256, and SHA-1: the thumbprint Windows and macOS show).
Serials are upper-case hex without colons or leading zeros (``'%X'``).
"""

from __future__ import annotations

import re

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
except ImportError:  # reported by the module through deps.require_cryptography()
    pass

_SERIAL = re.compile(r'^[0-9A-F]{1,40}$')
_FINGERPRINT = {'sha256': (re.compile(r'^[0-9A-F]{64}$'), 'SHA-256', 64),
                'sha1': (re.compile(r'^[0-9A-F]{40}$'), 'SHA-1', 40)}


def _digest(algorithm: str):
    if algorithm not in _FINGERPRINT:
        raise ValueError('unknown fingerprint algorithm %r' % (algorithm,))
    return hashes.SHA256() if algorithm == 'sha256' else hashes.SHA1()  # nosec - SHA-1 is an identifier here


def fingerprint(certificate, algorithm: str = 'sha256') -> str:
    """Upper-case hex without colons of the certificate's DER digest (``sha256`` or ``sha1``)."""
    return certificate.fingerprint(_digest(algorithm)).hex().upper()


def fingerprints(certificate) -> tuple:
    """(SHA-1, SHA-256) fingerprints: macOS identifies keychain items by the first."""
    return fingerprint(certificate, 'sha1'), fingerprint(certificate)


def public_key_sha256(public_key) -> str:
    """Upper-case hex SHA-256 of the SubjectPublicKeyInfo DER."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex().upper()


def normalize_fingerprint(value, field: str, algorithm: str = 'sha256') -> str:
    """Accept colons, spaces and either case -> upper-case hex without colons, checked for its length."""
    pattern, name, digits = _FINGERPRINT[algorithm]
    text = str(value).replace(':', '').replace(' ', '').upper()
    if not pattern.match(text):
        raise InputError('%r is not a %s fingerprint (%d hex digits, colons allowed)' % (value, name, digits), field)
    return text


def format_serial(serial_number: int) -> str:
    """A certificate's serial number as results and the store show it: upper-case hex, no leading zeros."""
    return '%X' % serial_number


def certificate_serial(certificate) -> str:
    return format_serial(certificate.serial_number)


def is_marked_ca(certificate) -> bool:
    """True when basicConstraints says cA (what stores show as a CA entry; issuing needs keyCertSign too)."""
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def certificate_summary(certificate) -> dict:
    """What every endpoint result says about a certificate: names, serial, fingerprints and validity."""
    return {
        'subject': certificate.subject.rfc4514_string(),
        'issuer': certificate.issuer.rfc4514_string(),
        'serial': certificate_serial(certificate),
        'fingerprint_sha256': fingerprint(certificate),
        'fingerprint_sha1': fingerprint(certificate, 'sha1'),
        'not_before': to_iso(certificate.not_valid_before_utc),
        'not_after': to_iso(certificate.not_valid_after_utc),
    }


def normalize_serial(value, field: str = 'serial') -> str:
    """Accept 'ab:cd', '0x0ABC', '0abc' -> 'ABC' (upper-case hex, no colons, no leading zeros)."""
    if value is None or isinstance(value, bool):
        raise InputError('expected a hexadecimal serial number', field)
    text = str(value).strip().replace(':', '').replace(' ', '').upper()
    if text.startswith('0X'):
        text = text[2:]
    text = text.lstrip('0') or '0'
    if not _SERIAL.match(text):
        raise InputError('%r is not a hexadecimal serial number' % (value,), field)
    return text
