# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Export of an issued certificate, with its held key, as PKCS#12, PEM or DER (private module_utils)."""

from __future__ import annotations

import os
import re

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import encrypt_key, public_keys_match
from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BULK_ITERATIONS, new_password
from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import validate_identity
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    InputError, KeyUnavailableError, NotFoundError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    PRIVATE_DIR_MODE, SECRET_FILE_MODE, atomic_write, check_dest_folder, ensure_private_dir, file_mode, read_bytes,
    writing,
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
# A batch file name: letters, digits and . _ @ + -, not starting with a dot (so never '.', '..' or hidden).
_SAFE_FILE = re.compile(r'^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]{0,200}$')
_UNSAFE_FILE_CHARS = re.compile(r'[^A-Za-z0-9._@+-]')
# The file next to each PKCS#12 of a batch with generate_passwords: its one-time password, 0600.
PASSWORD_SUFFIX = '.password'


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


# -- many exports in one call ------------------------------------------------------------------------------------

def export_many(ca, *, batch, dest_dir, password=None, generate_passwords=False, format='pkcs12',
                encryption='modern', iterations=None, include_chain=True, friendly_name=None,
                check_mode=False) -> dict:
    """One PKCS#12 file per item of ``batch`` in ``dest_dir`` (0700), from one store read and one audit transaction.

    Every item is validated, looked up and its held key unwrapped before any file is written: a bad item anywhere
    fails the call naming it (``batch[2].identity``) and nothing is written. With ``generate_passwords`` each file
    gets its own one-time random password, written next to it as ``<file>.password`` (0600) and never returned,
    as the bulk module hands its passwords over in a file; such files use the bulk module's PBKDF2 rounds
    (``BULK_ITERATIONS``) since a random password needs no slow hashing. An existing file that the same password
    (the given one, or the one in its password file) opens and that holds the same content is left alone.
    """
    rounds = _check_batch_options(format=format, encryption=encryption, dest_dir=dest_dir, password=password,
                                  generate_passwords=generate_passwords, iterations=iterations,
                                  friendly_name=friendly_name)
    items = [_batch_item(index, item) for index, item in enumerate(_batch_list(batch))]
    now = ca.clock()
    _resolve_batch(ca.store, items)
    _name_batch_files(items, dest_dir)
    chain = [ca.authority.certificate] + list(ca.authority.chain) if include_chain else []
    chain_fingerprints = [fingerprint(c) for c in chain]
    for item in items:
        record = item['record']
        if record.status == 'revoked':
            raise InputError('certificate %s was revoked at %s (%s); a revoked certificate is not exported'
                             % (record.serial, to_iso(record.revoked_at), record.revocation_reason), item['field'])
        item['key'] = held_key(ca, record, item['wrapped'], now, item['field'])
    folder_changed = not os.path.isdir(dest_dir) or file_mode(dest_dir) != PRIVATE_DIR_MODE
    for item in items:
        files_changed = _batch_item_changed(item, rounds, encryption, chain_fingerprints, password,
                                            generate_passwords)
        item['changed'] = folder_changed or files_changed
    changed = any(item['changed'] for item in items)  # an empty batch changes nothing, not even the folder
    result = {'changed': changed, 'dest_dir': dest_dir, 'format': format, 'encryption': encryption,
              'iterations': rounds, 'includes_chain': bool(chain), 'generate_passwords': bool(generate_passwords),
              'exports': [_batch_result(item, generate_passwords) for item in items]}
    if not changed or check_mode:
        return result
    ensure_private_dir(dest_dir, 'dest_dir')
    written = []
    for item in items:
        if item['changed']:
            _write_batch_item(item, chain, password, generate_passwords, encryption, rounds)
            if item['rewrite']:
                written.append(item)
    if written:
        with ca.store.write():
            for item in written:
                ca.store.append_audit(now, 'export', item['record'].identity, [item['record'].serial], 'written',
                                      {'format': format, 'dest': os.path.abspath(item['dest']), 'includes_key': True,
                                       'encryption': encryption, 'batch': len(items),
                                       'generated_password': bool(generate_passwords)})
    return result


def _check_batch_options(*, format, encryption, dest_dir, password, generate_passwords, iterations,
                         friendly_name) -> int:
    """Validate the options shared by the batch; returns the PBKDF2 rounds."""
    if format != 'pkcs12':
        raise InputError('a batch exports PKCS#12 files only, got %r' % format, 'format')
    if encryption not in pkcs12_lib.ENCRYPTIONS:
        raise InputError('unknown encryption %r (use modern or legacy)' % encryption, 'encryption')
    if not dest_dir:
        raise InputError('is required with batch: the folder that receives the PKCS#12 files', 'dest_dir')
    if os.path.exists(dest_dir) and not os.path.isdir(dest_dir):
        raise InputError('%s exists and is not a folder' % dest_dir, 'dest_dir')
    parent = os.path.dirname(os.path.abspath(dest_dir))
    if not os.path.isdir(parent):
        raise InputError('the folder %s does not exist' % parent, 'dest_dir')
    if friendly_name is not None:
        raise InputError('give friendly_name per batch item (every file would get the same name)', 'friendly_name')
    if generate_passwords:
        if password is not None:
            raise InputError('is generated for each file with generate_passwords; do not give one', 'password')
    else:
        pkcs12_lib.validate_password(password)
    if iterations is not None and iterations < 1000:
        raise InputError('at least 1000 PBKDF2 iterations are required, got %d' % iterations, 'iterations')
    if iterations:
        return iterations
    return BULK_ITERATIONS[encryption] if generate_passwords else pkcs12_lib.DEFAULT_ITERATIONS[encryption]


def _batch_list(batch) -> list:
    if not isinstance(batch, (list, tuple)):
        raise InputError('must be a list of items with identity or serial', 'batch')
    return list(batch)


_BATCH_KEYS = ('identity', 'serial', 'file', 'friendly_name')


def _batch_item(index: int, item) -> dict:
    """One validated item of the batch; ``field`` names it in errors (``batch[2]``)."""
    field = 'batch[%d]' % index
    if not isinstance(item, dict):
        raise InputError('must be a dictionary with identity or serial', field)
    unknown = sorted(set(item) - set(_BATCH_KEYS))
    if unknown:
        raise InputError('unknown key%s %s (use %s)'
                         % ('s' if len(unknown) > 1 else '', ', '.join(unknown), ', '.join(_BATCH_KEYS)), field)
    identity, serial = item.get('identity'), item.get('serial')
    if (identity is None) == (serial is None):
        raise InputError('give either identity or serial', field)
    parsed = {'index': index, 'field': field + ('.serial' if serial is not None else '.identity'),
              'identity': None, 'serial': None, 'file': item.get('file'), 'friendly_name': item.get('friendly_name')}
    if serial is not None:
        parsed['serial'] = normalize_serial(serial, parsed['field'])
    else:
        parsed['identity'] = validate_identity(identity, parsed['field'])
    if parsed['file'] is not None and not _SAFE_FILE.match(str(parsed['file'])):
        raise InputError('%r is not a plain file name (letters, digits and . _ @ + -, no folder, not starting '
                         'with a dot); the file is written in dest_dir' % (parsed['file'],), field + '.file')
    if parsed['friendly_name'] is not None and not str(parsed['friendly_name']).strip():
        raise InputError('must not be empty', field + '.friendly_name')
    return parsed


def _resolve_batch(store, items: list) -> None:
    """Each item's record and wrapped key, from one read of the store."""
    with store.read():
        for item in items:
            if item['serial'] is not None:
                record = store.get(item['serial'])
                if record is None:
                    raise NotFoundError('no certificate with serial %s was issued by this CA' % item['serial'],
                                        item['field'])
            else:
                record = store.current(item['identity'])
                if record is None:
                    raise NotFoundError('identity %r has no current certificate' % item['identity'], item['field'])
            item['record'] = record
            item['wrapped'] = store.wrapped_key(record.serial) if record.status == 'valid' else None


def _name_batch_files(items: list, dest_dir: str) -> None:
    """``<identity>.p12`` unless the item names its file; two items with one file name are refused."""
    used: dict = {}
    for item in items:
        name = item['file'] or (_UNSAFE_FILE_CHARS.sub('_', item['record'].identity)[:120].lstrip('.') or 'identity'
                                ) + '.p12'
        other = used.get(name.lower())
        if other is not None:
            raise InputError('writes %s, as batch[%d] does; give one of them another file' % (name, other['index']),
                             'batch[%d].file' % item['index'])
        used[name.lower()] = item
        item['dest'] = os.path.join(dest_dir, name)
        item['password_file'] = item['dest'] + PASSWORD_SUFFIX


def _batch_item_changed(item: dict, rounds: int, encryption: str, chain: list, password,
                        generate_passwords: bool) -> bool:
    """Whether the item's files need writing; sets ``rewrite`` (content) apart from a mode-only fix."""
    record = item['record']
    wanted = {'format': 'pkcs12', 'fingerprint': record.fingerprint_sha256, 'chain': chain, 'key': True,
              'friendly_name': item['friendly_name'] or record.identity, 'encryption': encryption,
              'iterations': rounds}
    item['wanted'] = wanted
    secret = password
    modes = [file_mode(item['dest'])]
    if generate_passwords:
        stored = read_bytes(item['password_file'])
        secret = stored.decode('utf-8', 'replace').strip() if stored else None
        modes.append(file_mode(item['password_file']))
    existing = read_bytes(item['dest'])
    item['rewrite'] = not (existing is not None and secret and _export_matches(existing, wanted, secret, item['key']))
    return item['rewrite'] or any(mode != SECRET_FILE_MODE for mode in modes)


def _write_batch_item(item: dict, chain: list, password, generate_passwords: bool, encryption: str,
                      rounds: int) -> None:
    if not item['rewrite']:
        with writing(item['dest'], 'dest_dir', 'change the mode of'):
            for path in (item['dest'], item['password_file']) if generate_passwords else (item['dest'],):
                os.chmod(path, SECRET_FILE_MODE)
        return
    secret = new_password() if generate_passwords else password
    certificate = x509.load_pem_x509_certificate(item['record'].pem.encode('ascii'))
    data = pkcs12_lib.serialize(key=item['key'], certificate=certificate, chain=chain, password=secret,
                                encryption=encryption, friendly_name=item['wanted']['friendly_name'],
                                iterations=rounds)
    if generate_passwords:
        # The password first: a run stopped between the two leaves a file its password cannot open, which the
        # next run rewrites, never a new file whose password is lost.
        atomic_write(item['password_file'], (secret + '\n').encode('utf-8'), SECRET_FILE_MODE, field='dest_dir')
    atomic_write(item['dest'], data, SECRET_FILE_MODE, field='dest_dir')


def _batch_result(item: dict, generate_passwords: bool) -> dict:
    record = item['record']
    return {'identity': record.identity, 'serial': record.serial, 'dest': item['dest'],
            'password_file': item['password_file'] if generate_passwords else None, 'changed': item['changed'],
            'fingerprint_sha256': record.fingerprint_sha256, 'fingerprint_sha1': record.fingerprint_sha1,
            'not_after': to_iso(record.not_after)}
