# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import (
    KEY_TYPES, generate_private_key, is_rsa, key_type_of, signature_hash_for, validate_key_type,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, PolicyError


@pytest.mark.parametrize('key_type', ['rsa2048', 'ec-p256', 'ec-p384'])
def test_generated_keys_are_recognised(key_type):
    key = generate_private_key(key_type)
    assert key_type_of(key.public_key()) == key_type
    assert is_rsa(key_type) == isinstance(key, rsa.RSAPrivateKey)
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.public_key().public_numbers().e == 65537


def test_key_types_are_the_documented_ones():
    assert set(KEY_TYPES) == {'rsa2048', 'rsa3072', 'rsa4096', 'ec-p256', 'ec-p384'}
    for name in KEY_TYPES:
        assert validate_key_type(name) == name


@pytest.mark.parametrize('name', ['rsa1024', 'RSA2048', 'ec-p521', 'ed25519', '', None])
def test_unknown_key_type_names(name):
    with pytest.raises(InputError) as err:
        validate_key_type(name)
    assert err.value.field == 'key_type'
    with pytest.raises(InputError):
        generate_private_key(name)


def test_weak_rsa_is_refused():
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(PolicyError) as err:
        key_type_of(key.public_key(), 'csr')
    assert err.value.field == 'csr'
    assert '1024' in str(err.value) and 'too weak' in str(err.value)


def test_rsa_with_small_exponent_is_refused():
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    with pytest.raises(PolicyError, match='exponent 3'):
        key_type_of(key.public_key())


def test_rsa_of_unsupported_size_is_refused():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2056)
    with pytest.raises(PolicyError, match='2056 bits is not a supported size'):
        key_type_of(key.public_key())


@pytest.mark.parametrize('curve', [ec.SECP521R1(), ec.SECP256K1(), ec.SECP224R1(), ec.BrainpoolP256R1()])
def test_unsupported_curves_are_refused(curve):
    key = ec.generate_private_key(curve)
    with pytest.raises(PolicyError) as err:
        key_type_of(key.public_key(), 'import_private_key')
    assert err.value.field == 'import_private_key'
    assert curve.name in str(err.value)


def test_other_algorithms_are_refused():
    with pytest.raises(PolicyError, match='not supported'):
        key_type_of(ed25519.Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize('key_type, digest', [
    ('rsa2048', hashes.SHA256), ('rsa3072', hashes.SHA256), ('rsa4096', hashes.SHA384),
    ('ec-p256', hashes.SHA256), ('ec-p384', hashes.SHA384),
])
def test_signature_hash(key_type, digest):
    assert isinstance(signature_hash_for(key_type), digest)
