# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Error types of certfleet.pki (private module_utils, not a public API).

Library code raises these; modules turn them into ``fail_json``. Messages say what, where and why, and never
carry a secret.
"""

from __future__ import annotations


class CertfleetError(Exception):
    """Base error. ``field`` names the offending module parameter when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    @property
    def message(self) -> str:
        text = str(self.args[0]) if self.args else ''
        if self.field and not text.startswith(self.field):
            return '%s: %s' % (self.field, text)
        return text


class InputError(CertfleetError):
    """A parameter is malformed."""


class PolicyError(InputError):
    """A request breaks the CA's issuance policy."""


class NotFoundError(CertfleetError):
    """A serial or identity is not in the store."""


class CAError(CertfleetError):
    """The CA directory, its key or its certificate cannot be used."""


class PassphraseError(CAError):
    """The CA passphrase is missing or wrong."""


class StoreError(CertfleetError):
    """The state database is missing, corrupted, foreign or of an unknown schema."""


class KeyUnavailableError(CertfleetError):
    """A private key was never held, or has been purged after its retention window."""
