# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key types: generation, recognition, and the weak-key floor (private module_utils)."""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, PolicyError

try:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:
    pass

KEY_TYPES = ('rsa2048', 'rsa3072', 'rsa4096', 'ec-p256', 'ec-p384')
_RSA_SIZES = {'rsa2048': 2048, 'rsa3072': 3072, 'rsa4096': 4096}
_EC_CURVES = {'ec-p256': 'secp256r1', 'ec-p384': 'secp384r1'}


def validate_key_type(name: str, field: str = 'key_type') -> str:
    if name not in KEY_TYPES:
        raise InputError('unknown key type %r (use one of %s)' % (name, ', '.join(KEY_TYPES)), field)
    return name


def generate_private_key(key_type: str):
    validate_key_type(key_type)
    if key_type in _RSA_SIZES:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_SIZES[key_type])
    curve = ec.SECP256R1() if key_type == 'ec-p256' else ec.SECP384R1()
    return ec.generate_private_key(curve)


def key_type_of(public_key, field: str = 'csr') -> str:
    """Name a public key's type; weak or unsupported keys are refused with a reason."""
    if isinstance(public_key, rsa.RSAPublicKey):
        size = public_key.key_size
        if size < 2048:
            raise PolicyError('RSA key of %d bits is too weak (at least 2048 bits are required)' % size, field)
        if public_key.public_numbers().e < 65537:
            raise PolicyError('RSA public exponent %d is too small' % public_key.public_numbers().e, field)
        if size in (2048, 3072, 4096):
            return 'rsa%d' % size
        raise PolicyError('RSA key of %d bits is not a supported size (2048, 3072 or 4096)' % size, field)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for name, curve in _EC_CURVES.items():
            if public_key.curve.name == curve:
                return name
        raise PolicyError('elliptic curve %s is not supported (use P-256 or P-384)' % public_key.curve.name, field)
    raise PolicyError('key algorithm %s is not supported (use RSA or EC P-256/P-384)' % type(public_key).__name__,
                      field)


def is_rsa(key_type: str) -> bool:
    return key_type.startswith('rsa')


def signature_hash_for(key_type: str):
    from cryptography.hazmat.primitives import hashes
    if key_type in ('ec-p384', 'rsa4096'):
        return hashes.SHA384()
    return hashes.SHA256()
