# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encryption of held client keys at rest (private module_utils).

The key-encryption key is derived (HKDF-SHA256) from the CA private key and a per-store salt: whoever can unlock
the CA key can read held keys, nobody else can, and no second secret has to be managed. Each key is sealed with
AES-256-GCM; the serial is bound as associated data so a sealed key cannot be moved to another row.
"""

from __future__ import annotations

import os

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import StoreError

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
except ImportError:
    pass

_VERSION = b'\x01'
_INFO = b'certfleet.pki held-key wrap v1'


def new_salt() -> str:
    return os.urandom(16).hex()


class KeyWrapper:
    def __init__(self, ca_key, salt_hex: str):
        ca_der = ca_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes.fromhex(salt_hex), info=_INFO).derive(ca_der)
        self._aead = AESGCM(kek)

    def wrap(self, key, serial: str) -> bytes:
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, der, serial.encode('ascii'))

    def unwrap(self, blob: bytes, serial: str):
        if not blob or blob[:1] != _VERSION:
            raise StoreError('the held key of %s has an unknown format' % serial)
        try:
            der = self._aead.decrypt(blob[1:13], blob[13:], serial.encode('ascii'))
        except InvalidTag:
            raise StoreError('the held key of %s cannot be decrypted with this CA key (tampered, or another CA)'
                             % serial)
        return serialization.load_der_private_key(der, password=None)
