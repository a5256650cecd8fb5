# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CA directory and the CA's certificate and key (private module_utils).

Layout of a CA directory (0700)::

    ca.pem      CA certificate (0644)
    ca.key      CA private key, encrypted PKCS#8 PEM (0600)
    chain.pem   issuers above an imported intermediate, if any (0644)
    state.db    the embedded store (0600), opened through store.factory
    crl.pem / crl.der   the last published CRL (0644)
    .lock       serialises CA creation and CRL publication
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import fcntl
import os
import re

from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import key_type_of
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CAError, InputError, PassphraseError
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    atomic_write, ensure_private_dir, read_bytes, writing,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.store.factory import EMBEDDED_STATE_FILE, store_exists
from ansible_collections.certfleet.pki.plugins.module_utils.x509.der import OCTET_STRING, SEQUENCE, children, read_tlv
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import certificate_serial, fingerprint

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

CERT_FILE = 'ca.pem'
KEY_FILE = 'ca.key'
CHAIN_FILE = 'chain.pem'
STATE_FILE = EMBEDDED_STATE_FILE
CRL_PEM_FILE = 'crl.pem'
CRL_DER_FILE = 'crl.der'
LOCK_FILE = '.lock'
PUBLIC_FILE_MODE = 0o644
# The PEM markers of an encrypted PKCS#8 key (split so that no scanner takes this file for one holding a key).
_ENCRYPTED_PEM = re.compile(rb'-----BEGIN ENCRYPTED PRIVATE' + rb' KEY-----(.*?)'
                            rb'-----END ENCRYPTED PRIVATE' + rb' KEY-----', re.S)


def to_bytes(text) -> bytes | None:
    if text is None:
        return None
    return text if isinstance(text, bytes) else str(text).encode('utf-8')


def load_private_key(data: bytes, passphrase, field: str, passphrase_field: str, trusted: bool = False):
    """Load a PEM key (PKCS#8 or traditional); a missing or wrong passphrase and a damaged key are clear errors.

    OpenSSL's "incorrect password", or a parse failure behind an intact encrypted envelope, means a wrong
    passphrase (code ``wrong_passphrase``). A key that lost lines but kept its PEM framing, or whose base64 is
    broken, fails to parse before any decryption; that is a damaged key (code ``key_damaged``).

    ``trusted`` skips the RSA consistency check (about 0.1 s for RSA 3072) for the CA's own key file, which was
    checked when it was created or imported; OpenSSL verifies every RSA-CRT signature it makes in any case.
    """
    secret = to_bytes(passphrase) or None
    try:
        return serialization.load_pem_private_key(data, password=secret, unsafe_skip_rsa_key_validation=trusted)
    except TypeError as exc:
        # cryptography says TypeError when a passphrase is missing, or given for an unencrypted key.
        if 'encrypted' in str(exc) and secret is None:
            raise PassphraseError('the key is encrypted; give the passphrase', passphrase_field,
                                  code='passphrase_missing')
        if secret is not None:
            return serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=trusted)
        raise InputError('cannot be loaded (%s)' % exc, field)
    except ValueError as exc:
        text = str(exc).lower()
        wrong = 'bad decrypt' in text or 'incorrect password' in text
        # A wrong passphrase passes the CBC padding check about once in 256 tries, and the garbage then fails to
        # parse; an intact encrypted envelope says the damage is only in what the passphrase decrypted.
        if secret is not None and (wrong or _encrypted_envelope_intact(data)):
            raise PassphraseError('wrong passphrase for the key', passphrase_field, code='wrong_passphrase')
        if b'-----BEGIN' in data and b'PRIVATE' + b' KEY-----' in data:
            raise InputError('is a damaged private key: %s' % _damage_detail(exc), field, code='key_damaged')
        raise InputError('is not a PEM private key (%s)' % exc, field)


def _encrypted_envelope_intact(data: bytes) -> bool:
    """Whether an ENCRYPTED PRIVATE KEY block holds a well-formed EncryptedPrivateKeyInfo (algorithm, ciphertext)."""
    match = _ENCRYPTED_PEM.search(data)
    if match is None:
        return False
    try:
        der = base64.b64decode(b''.join(match.group(1).split()), validate=True)
        tag, value, end = read_tlv(der)
        parts = children(value)
    except (ValueError, binascii.Error):
        return False
    return (tag == SEQUENCE and end == len(der) and len(parts) == 2 and parts[0][0] == SEQUENCE
            and parts[1][0] == OCTET_STRING and len(parts[1][1]) > 0)


def _damage_detail(exc: Exception) -> str:
    """What is wrong with a key that has PEM framing, short: cryptography's parse errors run to a paragraph."""
    text = str(exc)
    detail = text.split('Details:', 1)[1].strip() if 'Details:' in text else text.split('. ', 1)[0].rstrip('.')
    return 'its PEM framing is intact but its content cannot be parsed (%s)' % detail


def public_keys_match(a, b) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(serialization.Encoding.DER, fmt) == b.public_bytes(serialization.Encoding.DER, fmt)


def encrypt_key(key, passphrase) -> bytes:
    secret = to_bytes(passphrase)
    encryption = (serialization.BestAvailableEncryption(secret) if secret
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def verify_issued_by(certificate, issuer) -> bool:
    """True when ``issuer``'s key signed ``certificate``."""
    try:
        certificate.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
        return False


def is_ca_certificate(certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        return bool(usage.key_cert_sign)
    except x509.ExtensionNotFound:
        return True


class CADirectory:
    """Paths and file access of one CA directory: the CA's home with the embedded store (see ``home``)."""

    field = 'ca_path'
    store_url = None

    def __init__(self, path: str):
        if not path:
            raise InputError('is required', 'ca_path')
        self.path = os.path.abspath(os.path.expanduser(path))

    @property
    def ca_path(self) -> str:
        return self.path

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def attach(self, store) -> None:
        """The files stay in the folder whichever store is being created."""

    def close(self) -> None:
        """Nothing is held open."""

    def clear_before_create(self, names) -> None:
        """Remove what an earlier CA in this folder left (its CRLs, its chain)."""
        with writing(self.path, 'ca_path', 'clean up old files in'):
            for name in names:
                if os.path.exists(self.file(name)):
                    os.unlink(self.file(name))

    def is_initialised(self) -> bool:
        return os.path.exists(self.file(CERT_FILE)) and store_exists(ca_path=self.path)

    def require_initialised(self) -> None:
        if not os.path.isdir(self.path):
            raise CAError('%s does not exist; create the CA first with certfleet.pki.ca' % self.path, 'ca_path')
        if not self.is_initialised():
            raise CAError('%s holds no certfleet CA (no %s and %s); create it with certfleet.pki.ca'
                          % (self.path, CERT_FILE, STATE_FILE), 'ca_path')

    def check_parent(self) -> None:
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            raise InputError('the parent folder %s does not exist' % parent, 'ca_path')

    def prepare(self) -> bool:
        self.check_parent()
        return ensure_private_dir(self.path, 'ca_path')

    def creation_lock(self):
        return self.lock()

    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock between processes (creation, CRL publication)."""
        with writing(self.file(LOCK_FILE), 'ca_path'):
            fd = os.open(self.file(LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def write_public(self, name: str, data: bytes) -> None:
        atomic_write(self.file(name), data, PUBLIC_FILE_MODE, field='ca_path')

    def write_secret(self, name: str, data: bytes) -> None:
        atomic_write(self.file(name), data, 0o600, field='ca_path')

    def read(self, name: str) -> bytes | None:
        return read_bytes(self.file(name))

    def object_identity(self, name: str) -> list | None:
        """What tells a file from its replacement without reading it: device, inode, size, modification time."""
        try:
            info = os.stat(self.file(name))
        except FileNotFoundError:
            return None
        return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]


class CertificateAuthority:
    """The CA certificate, its chain and (once unlocked) its key."""

    def __init__(self, directory: CADirectory, certificate, chain: list, key=None):
        self.directory = directory
        self.certificate = certificate
        self.chain = chain
        self._key = key

    @classmethod
    def load(cls, directory: CADirectory) -> 'CertificateAuthority':
        directory.require_initialised()
        data = directory.read(CERT_FILE)
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise CAError('%s is not a PEM certificate (%s)' % (directory.file(CERT_FILE), exc), directory.field)
        chain_data = directory.read(CHAIN_FILE)
        chain = x509.load_pem_x509_certificates(chain_data) if chain_data else []
        return cls(directory, certificate, chain)

    def unlock(self, passphrase, allow_missing: bool = False):
        """Decrypt the CA key; proves the caller holds the passphrase."""
        if self._key is not None:
            return self._key
        data = self.directory.read(KEY_FILE)
        if data is None:
            raise CAError('the CA key %s is missing' % self.directory.file(KEY_FILE), self.directory.field)
        try:
            key = load_private_key(data, passphrase, self.directory.field, 'ca_passphrase', trusted=True)
        except PassphraseError as exc:
            if exc.code == 'wrong_passphrase':
                raise PassphraseError('wrong passphrase for the CA key %s' % self.directory.file(KEY_FILE),
                                      'ca_passphrase', code='wrong_passphrase')
            raise PassphraseError('the CA key %s is encrypted; give ca_passphrase' % self.directory.file(KEY_FILE),
                                  'ca_passphrase', code='passphrase_missing')
        except InputError as exc:
            what = str(exc.args[0])
            if exc.code == 'key_damaged':
                what = what[len('is a damaged private key: '):]
            raise CAError('the CA key file %s is damaged: %s. This is not a passphrase problem; restore ca.key '
                          'from a backup, see "Backup and recovery" in the certfleet.pki README'
                          % (self.directory.file(KEY_FILE), what), self.directory.field, code='ca_key_damaged')
        if not public_keys_match(key.public_key(), self.certificate.public_key()):
            raise CAError('the CA key %s does not belong to the certificate %s'
                          % (self.directory.file(KEY_FILE), self.directory.file(CERT_FILE)), self.directory.field)
        self._key = key
        return key

    @property
    def key(self):
        if self._key is None:
            raise CAError('the CA key is locked')
        return self._key

    def key_is_encrypted(self) -> bool:
        data = self.directory.read(KEY_FILE) or b''
        return b'ENCRYPTED' in data

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> datetime.datetime:
        return self.certificate.not_valid_before_utc

    def require_valid(self, now: datetime.datetime) -> None:
        if now >= self.not_after:
            raise CAError('the CA certificate expired at %s; it can no longer sign. Create a new CA or import a '
                          'renewed CA certificate' % to_iso(self.not_after), self.directory.field)
        if now < self.not_before:
            raise CAError('the CA certificate is not valid before %s (is the clock right?)'
                          % to_iso(self.not_before), self.directory.field)

    def chain_pem(self) -> str:
        certs = [self.certificate] + list(self.chain)
        return ''.join(c.public_bytes(serialization.Encoding.PEM).decode('ascii') for c in certs)

    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode('ascii')

    def common_name(self) -> str:
        names = self.certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.certificate.subject.rfc4514_string()

    def summary(self) -> dict:
        return {
            'subject': self.certificate.subject.rfc4514_string(),
            'serial': certificate_serial(self.certificate),
            'not_before': to_iso(self.not_before),
            'not_after': to_iso(self.not_after),
            'fingerprint_sha256': fingerprint(self.certificate),
            'fingerprint_sha1': fingerprint(self.certificate, 'sha1'),
            'key_type': key_type_of(self.certificate.public_key(), 'ca'),
            'self_signed': self.certificate.issuer == self.certificate.subject,
        }


def check_imported_ca(certificate, key, chain: list, now: datetime.datetime) -> None:
    """An imported CA must be a CA, match its key, be valid now, and chain to what was given."""
    if not is_ca_certificate(certificate):
        raise InputError('is not a CA certificate (basicConstraints CA:true with keyCertSign is required)',
                         'import_certificate')
    if not public_keys_match(certificate.public_key(), key.public_key()):
        raise InputError('does not belong to import_certificate (the public keys differ)', 'import_private_key')
    key_type_of(key.public_key(), 'import_private_key')
    if now >= certificate.not_valid_after_utc:
        raise InputError('expired at %s' % to_iso(certificate.not_valid_after_utc), 'import_certificate')
    issuer = certificate
    for index, parent in enumerate(chain):
        if not verify_issued_by(issuer, parent):
            raise InputError('certificate %d (%s) did not sign %s'
                             % (index, parent.subject.rfc4514_string(), issuer.subject.rfc4514_string()),
                             'import_chain')
        issuer = parent
