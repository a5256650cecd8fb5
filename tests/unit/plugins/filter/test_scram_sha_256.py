# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SCRAM-SHA-256 verifier filter: the same verifier as PostgreSQL's own, accepted by a real server with few
rounds, and clear refusals."""

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.certfleet.pki.plugins.filter.scram_sha_256 import FilterModule, scram_sha_256

RANDOM_PASSWORD = 'q7Vt2LxR9pKm4sWc8ZbN3hJd6FgY1aEu5TnQ0rMx'  # 40 characters, like a generated credential
VERIFIER = re.compile(r'^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]{44}):([A-Za-z0-9+/=]{44})$')


def test_the_filter_is_registered():
    assert FilterModule().filters()['scram_sha_256'] is scram_sha_256


def test_a_verifier_has_the_rounds_a_random_salt_and_both_keys():
    first, second = scram_sha_256(RANDOM_PASSWORD, 16), scram_sha_256(RANDOM_PASSWORD, 16)
    assert VERIFIER.match(first).group(1) == '16'
    assert first != second  # a new salt each call
    assert scram_sha_256(RANDOM_PASSWORD, 16, 'c2FsdHNhbHRzYWx0MTIzNA==') == \
        scram_sha_256(RANDOM_PASSWORD, 16, 'c2FsdHNhbHRzYWx0MTIzNA==')


@pytest.mark.parametrize(('args', 'reason'), [
    (('', 4096), 'non-empty string'),
    ((None, 4096), 'non-empty string'),
    (('pass word with spaces and more than 24', 16), 'printable ASCII'),
    (('pässwörd-long-enough-for-few-rounds-123', 16), 'printable ASCII'),
    ((RANDOM_PASSWORD, 0), 'at least 1'),
    ((RANDOM_PASSWORD, 'many'), 'rounds must be an integer'),
    (('short-password', 16), 'at least 24 characters; this one has 14'),
    ((RANDOM_PASSWORD, 16, 'not base64!'), 'salt must be base64'),
    ((RANDOM_PASSWORD, 16, 'c2FsdA=='), 'at least 8 bytes, it holds 4'),
])
def test_bad_input_is_refused_naming_the_reason(args, reason):
    with pytest.raises(AnsibleFilterError, match=re.escape(reason)):
        scram_sha_256(*args)


def test_a_short_password_keeps_the_default_rounds():
    assert VERIFIER.match(scram_sha_256('short-password')).group(1) == '4096'


def test_the_verifier_is_the_one_postgresql_computes(postgresql_server):
    """The server hashes a password itself; the filter given the same salt and rounds yields the same text."""
    with postgresql_server.admin() as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute("CREATE ROLE certfleet_scram_same PASSWORD '%s'" % RANDOM_PASSWORD)
        try:
            stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'certfleet_scram_same'"
                                  ).fetchone()[0]
        finally:
            conn.execute('DROP ROLE certfleet_scram_same')
    rounds, salt = VERIFIER.match(stored).group(1, 2)
    assert scram_sha_256(RANDOM_PASSWORD, int(rounds), salt) == stored


def test_a_role_with_few_rounds_logs_in_with_its_password_and_only_with_it(postgresql_server):
    import psycopg  # pylint: disable=import-outside-toplevel
    from postgresql_server import (  # pylint: disable=import-error,import-outside-toplevel
        FAST_SCRAM_PASSWORD, FAST_SCRAM_ROLE, PORT,
    )
    role = FAST_SCRAM_ROLE
    with postgresql_server.admin() as conn:
        stored = conn.execute('SELECT rolpassword FROM pg_authid WHERE rolname = %s', (role,)).fetchone()[0]
    assert VERIFIER.match(stored).group(1) == '16'
    with psycopg.connect(host=postgresql_server.socket_dir, port=PORT, user=role,
                         password=FAST_SCRAM_PASSWORD, dbname='postgres') as conn:
        assert conn.execute('SELECT current_user').fetchone()[0] == role
    with pytest.raises(psycopg.OperationalError, match='password authentication failed'):
        psycopg.connect(host=postgresql_server.socket_dir, port=PORT, user=role,
                        password=RANDOM_PASSWORD, dbname='postgres')
