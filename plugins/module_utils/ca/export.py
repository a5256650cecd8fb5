# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Export of an issued certificate, with its held key, as PKCS#12, PEM or DER (private module_utils)."""

from __future__ import annotations

import os
import re

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import encrypt_key, public_keys_match
from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import validate_identity
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    InputError, KeyUnavailableError, NotFoundError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    atomic_write, check_dest_folder, file_mode, read_bytes, writing,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import (
    CertificateRecord, KEY_ENDPOINT, KEY_PURGED,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import fingerprint, normalize_serial

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

EXPORT_FORMATS = ('pkcs12', 'pem', 'der')
# The BEGIN line of a PEM private key block; the group is the optional kind ("ENCRYPTED ", "EC ", "RSA ", "").
_PEM_KEY_BEGIN = re.compile(rb'-----BEGIN ((?:[A-Z]+ )?)PRIVATE' + rb' KEY-----')


def export(ca, *, serial=None, identity=None, format='pkcs12', dest=None, password=None, encryption='modern',
           friendly_name=None, include_chain=True, include_key=None, iterations=None, check_mode=False) -> dict:
    """Write the certificate (and its key, if held) to ``dest`` (0600); unchanged content is not rewritten."""
    include_key = _check_export_options(format=format, encryption=encryption, dest=dest, password=password,
                                        include_key=include_key, iterations=iterations)
    if (serial is None) == (identity is None):
        raise InputError('give either serial or identity', 'serial' if serial else 'identity')
    field = 'serial' if serial is not None else 'identity'
    now = ca.clock()
    record, wrapped = _exported_record(ca.store, serial, identity, include_key)
    if record.status == 'revoked':
        raise InputError('certificate %s was revoked at %s (%s); a revoked certificate is not exported'
                         % (record.serial, to_iso(record.revoked_at), record.revocation_reason), field)
    key = held_key(ca, record, wrapped, now, field) if include_key else None
    certificate = x509.load_pem_x509_certificate(record.pem.encode('ascii'))
    chain = [ca.authority.certificate] + list(ca.authority.chain) if include_chain else []
    name = friendly_name or record.identity
    rounds = iterations or pkcs12_lib.DEFAULT_ITERATIONS[encryption]
    wanted = {'format': format, 'fingerprint': record.fingerprint_sha256, 'chain': [fingerprint(c) for c in chain],
              'key': include_key, 'friendly_name': name, 'encryption': encryption if format == 'pkcs12' else None,
              'iterations': rounds if format == 'pkcs12' else None}
    existing = read_bytes(dest)
    up_to_date = existing is not None and _export_matches(existing, wanted, password, key)
    changed = not (up_to_date and file_mode(dest) == 0o600)
    result = {'changed': changed, 'dest': dest, 'format': format, 'serial': record.serial,
              'identity': record.identity, 'fingerprint_sha256': record.fingerprint_sha256,
              'fingerprint_sha1': record.fingerprint_sha1, 'not_after': to_iso(record.not_after),
              'encryption': wanted['encryption'], 'iterations': wanted['iterations'],
              'includes_key': bool(include_key), 'includes_chain': bool(chain)}
    if not changed or check_mode:
        return result
    if up_to_date:
        with writing(dest, 'dest', 'change the mode of'):
            os.chmod(dest, 0o600)
        return result
    data = _encode(format, certificate, chain=chain, key=key, password=password, encryption=encryption, name=name,
                   rounds=rounds)
    atomic_write(dest, data, 0o600, field='dest')
    with ca.store.write():
        ca.store.append_audit(now, 'export', record.identity, [record.serial], 'written',
                              {'format': format, 'dest': os.path.abspath(dest), 'includes_key': bool(key),
                               'encryption': wanted['encryption']})
    return result


def _check_export_options(*, format, encryption, dest, password, include_key, iterations) -> bool:
    """Validate the options; returns include_key with its default (the key goes with PKCS#12)."""
    if format not in EXPORT_FORMATS:
        raise InputError('unknown format %r (use pkcs12, pem or der)' % format, 'format')
    if encryption not in pkcs12_lib.ENCRYPTIONS:
        raise InputError('unknown encryption %r (use modern or legacy)' % encryption, 'encryption')
    if not dest:
        raise InputError('is required', 'dest')
    check_dest_folder(dest)
    if include_key is None:
        include_key = format == 'pkcs12'
    if format == 'pkcs12' and not include_key:
        raise InputError('a PKCS#12 export always carries the key; use format pem or der for the certificate alone',
                         'include_key')
    if format == 'der' and include_key:
        raise InputError('DER holds the certificate only', 'include_key')
    if include_key:
        pkcs12_lib.validate_password(password)
    if iterations is not None and iterations < 1000:
        raise InputError('at least 1000 PBKDF2 iterations are required, got %d' % iterations, 'iterations')
    return include_key


def _exported_record(store, serial, identity, include_key) -> tuple:
    """(record, wrapped key or None) of the serial, or of the identity's current certificate."""
    with store.read():
        if serial is not None:
            serial = normalize_serial(serial)
            record = store.get(serial)
            if record is None:
                raise NotFoundError('no certificate with serial %s was issued by this CA' % serial, 'serial')
        else:
            identity = validate_identity(identity)
            record = store.current(identity)
            if record is None:
                raise NotFoundError('identity %r has no current certificate' % identity, 'identity')
        return record, (store.wrapped_key(record.serial) if include_key else None)


def held_key(ca, record: CertificateRecord, wrapped, now, field: str):
    """The certificate's private key, unwrapped; a clear error when the CA never held it or purged it."""
    if record.key_status == KEY_ENDPOINT:
        raise KeyUnavailableError('certificate %s was issued from a CSR: its private key never left the endpoint '
                                  'and the CA cannot export it' % record.serial, field, code='key_never_held')
    if record.key_status == KEY_PURGED or wrapped is None:
        raise KeyUnavailableError('the private key of certificate %s was purged at %s after its key_retention '
                                  'window; it can no longer be exported (renew with force to get a new one)'
                                  % (record.serial, to_iso(record.key_purged_at) or 'an earlier run'), field,
                                  code='key_purged')
    if record.key_retain_until is not None and now >= record.key_retain_until:
        raise KeyUnavailableError('the retention window of the private key of certificate %s ended at %s; it can no '
                                  'longer be exported and will be purged'
                                  % (record.serial, to_iso(record.key_retain_until)), field, code='key_purged')
    return ca.key_wrapper().unwrap(wrapped, record.serial)


def _encode(format, certificate, *, chain, key, password, encryption, name, rounds) -> bytes:
    if format == 'pkcs12':
        return pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=password,
                                    encryption=encryption, friendly_name=name, iterations=rounds)
    if format == 'pem':
        parts = [certificate.public_bytes(serialization.Encoding.PEM)]
        parts += [c.public_bytes(serialization.Encoding.PEM) for c in chain]
        if key is not None:
            parts.append(encrypt_key(key, password))
        return b''.join(parts)
    return certificate.public_bytes(serialization.Encoding.DER)


def _export_matches(existing: bytes, wanted: dict, password, key) -> bool:
    """Compare the parsed content of an existing export with what would be written."""
    try:
        if wanted['format'] == 'der':
            return fingerprint(x509.load_der_x509_certificate(existing)) == wanted['fingerprint']
        if wanted['format'] == 'pem':
            return _pem_matches(existing, wanted, password, key)
        return _pkcs12_matches(existing, wanted, password, key)
    except (ValueError, TypeError, InputError):
        return False


def _pem_matches(existing: bytes, wanted: dict, password, key) -> bool:
    certificates = x509.load_pem_x509_certificates(existing)
    if [fingerprint(c) for c in certificates] != [wanted['fingerprint']] + wanted['chain']:
        return False
    key_blocks = _PEM_KEY_BEGIN.findall(existing)
    if bool(key_blocks) != bool(wanted['key']):
        return False
    if not key_blocks:
        return True
    # Only an encrypted PKCS#8 block is what this module writes; anything else is rewritten.
    if key_blocks != [b'ENCRYPTED ']:
        return False
    start = _PEM_KEY_BEGIN.search(existing).start()
    loaded = serialization.load_pem_private_key(existing[start:], password=password.encode('utf-8'))
    return public_keys_match(loaded.public_key(), key.public_key())


def _pkcs12_matches(existing: bytes, wanted: dict, password, key) -> bool:
    parsed = pkcs12_lib.load(existing, password)
    if parsed is None or parsed.cert is None or parsed.key is None:
        return False
    if fingerprint(parsed.cert.certificate) != wanted['fingerprint']:
        return False
    if not public_keys_match(parsed.key.public_key(), key.public_key()):
        return False
    if [fingerprint(c.certificate) for c in parsed.additional_certs] != wanted['chain']:
        return False
    name = parsed.cert.friendly_name.decode('utf-8') if parsed.cert.friendly_name else None
    if name != wanted['friendly_name']:
        return False
    described = pkcs12_lib.describe(existing)
    return described['encryption'] == wanted['encryption'] and described['iterations'] == wanted['iterations']
