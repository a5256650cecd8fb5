# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PEM certificates given as parameters: PEM text or a path to a PEM file (private module_utils).

Every error is an InputError that names the parameter.
"""

from __future__ import annotations

import os

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import read_bytes

try:
    from cryptography import x509
except ImportError:  # reported by the module through deps.require_cryptography()
    pass


def read_pem_argument(value: str, field: str) -> bytes:
    """A parameter that holds PEM text or a path to a PEM file."""
    if value is None:
        raise InputError('is required', field)
    text = str(value)
    if '-----BEGIN' in text:
        return text.encode('utf-8')
    data = read_bytes(text)
    if data is None:
        raise InputError('file %s does not exist (expected a path or PEM text)' % text, field)
    return data


def load_certificates(data: bytes, field: str) -> list:
    """Every certificate in PEM ``data`` (a chain)."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise InputError('is not a PEM certificate (%s)' % exc, field)


def load_pem_certificate(value: str, field: str):
    """One certificate from PEM text or a file (``~`` expanded)."""
    text = str(value)
    if '-----BEGIN' in text:
        data = text.encode('utf-8')
    else:
        try:
            with open(os.path.expanduser(text), 'rb') as handle:
                data = handle.read()
        except FileNotFoundError:
            raise InputError('%s does not exist' % text, field)
        except OSError as exc:
            raise InputError('%s cannot be read (%s)' % (text, exc.strerror or exc), field)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InputError('is not a PEM certificate (%s)' % exc, field)
