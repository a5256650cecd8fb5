# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import public_keys_match
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import generate_private_key
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keywrap import KeyWrapper, new_salt
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import StoreError


@pytest.fixture(scope='module')
def ca_key():
    return generate_private_key('ec-p256')


def test_wrap_round_trip_and_no_plaintext(ca_key):
    salt = new_salt()
    client_key = generate_private_key('ec-p256')
    blob = KeyWrapper(ca_key, salt).wrap(client_key, 'ABC123')
    plain = client_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    assert plain not in blob
    unwrapped = KeyWrapper(ca_key, salt).unwrap(blob, 'ABC123')
    assert public_keys_match(unwrapped.public_key(), client_key.public_key())
    # a fresh nonce each time
    assert KeyWrapper(ca_key, salt).wrap(client_key, 'ABC123') != blob


def test_sealed_key_is_bound_to_serial_salt_and_ca(ca_key):
    salt = new_salt()
    blob = KeyWrapper(ca_key, salt).wrap(generate_private_key('ec-p256'), 'AA')
    with pytest.raises(StoreError, match='cannot be decrypted'):
        KeyWrapper(ca_key, salt).unwrap(blob, 'AB')
    with pytest.raises(StoreError, match='cannot be decrypted'):
        KeyWrapper(ca_key, new_salt()).unwrap(blob, 'AA')
    with pytest.raises(StoreError, match='cannot be decrypted'):
        KeyWrapper(generate_private_key('ec-p256'), salt).unwrap(blob, 'AA')
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(StoreError, match='cannot be decrypted'):
        KeyWrapper(ca_key, salt).unwrap(tampered, 'AA')
    with pytest.raises(StoreError, match='unknown format'):
        KeyWrapper(ca_key, salt).unwrap(b'\x02' + blob[1:], 'AA')
    with pytest.raises(StoreError, match='unknown format'):
        KeyWrapper(ca_key, salt).unwrap(b'', 'AA')


def test_salts_are_random():
    assert len({new_salt() for _round in range(20)}) == 20
    assert len(bytes.fromhex(new_salt())) == 16
