# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A damaged CA key and a wrong passphrase are different failures, with different messages and codes."""

from __future__ import annotations

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import load_private_key
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    CAError, CertfleetError, InputError, PassphraseError,
)


def _lose_lines(ca, first: int = 2, count: int = 2) -> None:
    """Drop base64 lines from the middle of ca.key; the BEGIN/END framing stays."""
    with open(ca.file('ca.key'), 'rb') as handle:
        lines = handle.read().splitlines()
    assert lines[0].startswith(b'-----BEGIN') and lines[-1].startswith(b'-----END')
    with open(ca.file('ca.key'), 'wb') as handle:
        handle.write(b'\n'.join(lines[:first] + lines[first + count:]) + b'\n')


def _failure(ca, passphrase) -> CertfleetError:
    with pytest.raises(CertfleetError) as err:
        ca.open(passphrase=passphrase)
    return err.value


def test_wrong_passphrase_is_reported_as_such(ca):
    err = _failure(ca, 'wrong horse')
    assert isinstance(err, PassphraseError)
    assert err.code == 'wrong_passphrase'
    assert err.field == 'ca_passphrase'
    assert 'wrong passphrase' in err.message
    assert 'damaged' not in err.message


@pytest.mark.parametrize('first,count', [(2, 2), (1, 1), (3, 1)])
def test_key_that_lost_lines_is_damaged_not_a_wrong_passphrase(ca, first, count):
    _lose_lines(ca, first, count)
    err = _failure(ca, ca.passphrase)
    assert isinstance(err, CAError) and not isinstance(err, PassphraseError)
    assert err.code == 'ca_key_damaged'
    assert err.field == 'ca_path'
    assert ca.file('ca.key') in err.message
    assert 'damaged' in err.message
    assert 'wrong passphrase' not in err.message
    assert 'Backup and recovery' in err.message


def test_damaged_key_with_a_wrong_passphrase_still_says_damaged(ca):
    _lose_lines(ca)
    err = _failure(ca, 'wrong horse')
    assert err.code == 'ca_key_damaged'
    assert 'wrong passphrase' not in err.message


def test_the_two_codes_differ(ca):
    wrong = _failure(ca, 'wrong horse')
    _lose_lines(ca)
    damaged = _failure(ca, ca.passphrase)
    assert wrong.code != damaged.code
    assert wrong.message != damaged.message


def test_load_private_key_names_damage_for_any_key(ca):
    with open(ca.file('ca.key'), 'rb') as handle:
        lines = handle.read().splitlines()
    damaged = b'\n'.join(lines[:2] + lines[4:]) + b'\n'
    with pytest.raises(InputError) as err:
        load_private_key(damaged, ca.passphrase, 'import_private_key', 'import_passphrase')
    assert err.value.code == 'key_damaged'
    assert err.value.field == 'import_private_key'
    assert 'damaged' in err.value.message
    with pytest.raises(PassphraseError) as err:
        load_private_key(b'\n'.join(lines) + b'\n', 'wrong horse', 'import_private_key', 'import_passphrase')
    assert err.value.code == 'wrong_passphrase'
    assert err.value.field == 'import_passphrase'


def test_wrong_passphrase_that_passes_the_padding_check_is_still_a_wrong_passphrase():
    """About one wrong passphrase in 256 decrypts to garbage with valid CBC padding; OpenSSL then reports a parse
    error, not "bad decrypt". The intact encrypted envelope shows it is the passphrase, not the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b'the right one'))
    unlucky = None
    for attempt in range(5000):
        guess = 'wrong-%d' % attempt
        try:
            serialization.load_pem_private_key(pem, password=guess.encode())
        except ValueError as exc:
            text = str(exc).lower()
            if 'incorrect password' not in text and 'bad decrypt' not in text:
                unlucky = guess
                break
    assert unlucky is not None, 'no passphrase among 5000 passed the padding check (expected about 1 in 256)'
    with pytest.raises(PassphraseError) as err:
        load_private_key(pem, unlucky, 'import_private_key', 'import_passphrase')
    assert err.value.code == 'wrong_passphrase' and err.value.field == 'import_passphrase'
