# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Error types of certfleet.pki (private module_utils, not a public API).

Library code raises these; modules turn them into ``fail_json``. Messages say what, where and why, and never
carry a secret.
"""

from __future__ import annotations


class CertfleetError(Exception):
    """Base error. ``field`` names the offending module parameter when there is one; ``code`` is the stable name
    of the kind of failure that playbooks may branch on (the message is for people and may change)."""

    code = 'error'

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.field = field
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        text = str(self.args[0]) if self.args else ''
        if self.field and not text.startswith(self.field):
            return '%s: %s' % (self.field, text)
        return text


class InputError(CertfleetError):
    """A parameter is malformed."""

    code = 'invalid_input'


class PolicyError(InputError):
    """A request breaks the CA's issuance policy."""

    code = 'policy'


class NotFoundError(CertfleetError):
    """A serial or identity is not in the store."""

    code = 'not_found'


class CAError(CertfleetError):
    """The CA directory, its key or its certificate cannot be used."""

    code = 'ca_unusable'


class PassphraseError(CAError):
    """The CA passphrase is missing or wrong."""

    code = 'passphrase'


class StoreError(CertfleetError):
    """The store is missing, corrupted, foreign, of an unknown schema, or stayed locked too long."""

    code = 'store'


class KeyUnavailableError(CertfleetError):
    """A private key was never held (code ``key_never_held``), or has been purged after its retention window
    (``key_purged``)."""

    code = 'key_unavailable'


class StoreDamagedError(StoreError):
    """The store reports its storage as damaged (for SQLite a malformed page, not a database): restore from a
    backup."""

    code = 'store_damaged'


class WriteError(CertfleetError):
    """A file could not be written (read-only or immutable folder, full disk, path too long...).

    ``path`` is the file that was being written and ``reason`` the operating system's words for why.
    """

    code = 'write_failed'

    def __init__(self, message: str, field: str | None = None, code: str | None = None, path: str | None = None,
                 reason: str | None = None):
        super().__init__(message, field, code)
        self.path = path
        self.reason = reason
