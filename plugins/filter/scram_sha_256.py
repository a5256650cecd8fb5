# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scram_sha_256: a PostgreSQL SCRAM-SHA-256 password verifier (RFC 5802, RFC 7677) with a chosen round count.

Every module run on a PostgreSQL store opens a new session, and libpq derives the SCRAM key on the client with the
round count stored in the role's verifier (4,096 by default, 4 to 5 ms). For a long random machine password the
rounds protect nothing (nobody searches 2^128 passwords), so a verifier with fewer rounds makes each session cheaper
at no cost in safety. PostgreSQL 16 and later can make it (``SET scram_iterations``); this filter makes it for any
version, in the format ``ALTER ROLE ... PASSWORD`` and community.postgresql.postgresql_user accept as already hashed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from ansible.errors import AnsibleFilterError

DEFAULT_ROUNDS = 4096
# Below this length a password might be guessed, and the rounds are what slows the guessing: refuse fewer rounds.
MIN_PASSWORD_LENGTH_FOR_FEW_ROUNDS = 24
SALT_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode('ascii')


def _salt_bytes(salt) -> bytes:
    if salt is None:
        return os.urandom(SALT_BYTES)
    try:
        raw = base64.b64decode(str(salt), validate=True)
    except ValueError as exc:
        raise AnsibleFilterError('scram_sha_256: salt must be base64 (%s)' % exc) from exc
    if len(raw) < 8:
        raise AnsibleFilterError('scram_sha_256: salt must hold at least 8 bytes, it holds %d' % len(raw))
    return raw


def scram_sha_256(password, rounds=DEFAULT_ROUNDS, salt=None) -> str:
    """``SCRAM-SHA-256$<rounds>:<salt>$<StoredKey>:<ServerKey>`` for ``password``."""
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError('scram_sha_256: the password must be a non-empty string')
    if not all(0x21 <= ord(char) <= 0x7e for char in password):
        # Printable ASCII needs no SASLprep: the verifier is then the one the server would compute itself.
        raise AnsibleFilterError('scram_sha_256: the password must be printable ASCII without spaces (a random '
                                 'machine password); let the server hash any other password')
    try:
        rounds = int(rounds)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError('scram_sha_256: rounds must be an integer, not %r' % (rounds,)) from exc
    if rounds < 1:
        raise AnsibleFilterError('scram_sha_256: rounds must be at least 1, not %d' % rounds)
    if rounds < DEFAULT_ROUNDS and len(password) < MIN_PASSWORD_LENGTH_FOR_FEW_ROUNDS:
        raise AnsibleFilterError('scram_sha_256: fewer than %d rounds need a random password of at least %d '
                                 'characters; this one has %d' % (DEFAULT_ROUNDS, MIN_PASSWORD_LENGTH_FOR_FEW_ROUNDS,
                                                                  len(password)))
    salt_bytes = _salt_bytes(salt)
    salted = hashlib.pbkdf2_hmac('sha256', password.encode('ascii'), salt_bytes, rounds)
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    server_key = hmac.new(salted, b'Server Key', hashlib.sha256).digest()
    return 'SCRAM-SHA-256$%d:%s$%s:%s' % (rounds, _b64(salt_bytes), _b64(hashlib.sha256(client_key).digest()),
                                          _b64(server_key))


class FilterModule:
    def filters(self):
        return {'scram_sha_256': scram_sha_256}
