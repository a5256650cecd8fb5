# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the CA operations' input that every entry point shares (private module_utils)."""

from __future__ import annotations

import re

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import REVOCATION_REASONS
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import general_names_to_sans, normalize_sans
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pem import read_pem_argument

try:
    from cryptography import x509
except ImportError:
    pass

_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def validate_identity(value, field: str = 'identity') -> str:
    if value is None or not str(value).strip():
        raise InputError('is required and must not be empty', field)
    text = str(value).strip()
    if len(text) > 255 or _CONTROL.search(text):
        raise InputError('must be at most 255 printable characters', field)
    return text


def validate_reason(value, field: str = 'reason') -> str:
    if value not in REVOCATION_REASONS:
        raise InputError('unknown revocation reason %r (use one of %s)' % (value, ', '.join(REVOCATION_REASONS)),
                         field)
    return value


def email_san(email) -> str | None:
    """The e-mail SAN as stored: the domain lower-cased, the local part as given."""
    if not email:
        return None
    local, _at, domain = str(email).strip().rpartition('@')
    return '%s@%s' % (local, domain.lower())


def load_csr(value):
    data = read_pem_argument(value, 'csr')
    try:
        request = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise InputError('is not a PEM certificate signing request (%s)' % exc, 'csr')
    if not request.is_signature_valid:
        raise InputError('the CSR signature does not verify (damaged or forged request)', 'csr')
    return request


def csr_sans(request) -> list:
    try:
        extension = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return normalize_sans(general_names_to_sans(extension.value), None, 'csr')
