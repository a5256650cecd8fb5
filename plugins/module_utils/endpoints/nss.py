# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSS databases (Firefox profiles, Chromium's nssdb) driven with certutil and pk12util (private module_utils).

Facts this relies on (checked against NSS 3.87+):
- ``certutil -L`` lists nickname and trust; ``certutil -L -n NICK -a`` prints every certificate with that nickname.
- Certificates of the same subject share one nickname, whatever the PKCS#12 friendly name says, so deleting by
  nickname may delete the wrong one. Certificates with keys are deleted by their PKCS#11 ID
  (``-n 'pkcs11:id=%xx..'``), which pk12util sets to SHA-1 of the RSA modulus or of the EC public point, and the
  key with ``certutil -F -k ID``.
- A database with a token (primary) password lists certificates without it, but needs it (``-f FILE``,
  ``pk12util -k FILE``) for keys and imports. Secrets only ever go to the tools through 0600 files.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.owner import (
    as_owner_of, check_writable_as_self, refuse_symlink,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import (
    certificate_serial, certificate_summary, fingerprint, is_marked_ca, normalize_fingerprint, normalize_serial,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.issuer import (
    issued_by, issuer_mismatch, refuse_foreign,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import common_name
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pem import load_pem_certificate
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pkcs12 import load_pkcs12

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:
    pass

DB_FILES = ('cert9.db', 'key4.db')
# Every file NSS keeps in a database folder: none of them is ever a symlink that NSS made.
ALL_DB_FILES = DB_FILES + ('pkcs11.txt',)
_LIST_LINE = re.compile(r'^(?P<nickname>.*?\S)\s+(?P<trust>[a-zA-Z]*,[a-zA-Z]*,[a-zA-Z]*)\s*$')
_KEY_LINE = re.compile(r'^<\s*\d+>\s+(?P<type>\S+)\s+(?P<id>[0-9a-fA-F]+)\s+(?P<nickname>.*)$')
_PEM = re.compile(rb'-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----', re.DOTALL)
_TRUST = re.compile(r'^[pPcCTuw]*,[pPcCTuw]*,[pPcCTuw]*$')


class NSSError(CertfleetError):
    """certutil or pk12util refused, or the database is not usable."""


def default_runner(args: list) -> tuple:
    env = dict(os.environ, LC_ALL='C', LANG='C')
    completed = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False)
    return (completed.returncode, completed.stdout.decode('utf-8', 'replace'),
            completed.stderr.decode('utf-8', 'replace'))


def certificate_key_id(certificate) -> str:
    """The CKA_ID NSS gives an imported key: SHA-1 of the RSA modulus or of the uncompressed EC point."""
    public_key = certificate.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        modulus = public_key.public_numbers().n
        material = modulus.to_bytes((modulus.bit_length() + 7) // 8, 'big')
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        material = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        return ''
    return hashlib.sha1(material).hexdigest()  # nosec - this is NSS's identifier, not a security hash


def pkcs11_id_uri(key_id: str) -> str:
    return 'pkcs11:id=' + ''.join('%' + key_id[i:i + 2] for i in range(0, len(key_id), 2))


@dataclass
class NSSCertificate:
    nickname: str
    trust: str
    certificate: object
    key_id: str
    has_key: bool | None

    @property
    def fingerprint_sha256(self) -> str:
        return fingerprint(self.certificate)

    @property
    def fingerprint_sha1(self) -> str:
        return fingerprint(self.certificate, 'sha1')

    @property
    def serial(self) -> str:
        return certificate_serial(self.certificate)

    def is_ca(self) -> bool:
        return is_marked_ca(self.certificate)

    def to_result(self) -> dict:
        return dict({'nickname': self.nickname, 'trust': self.trust}, **certificate_summary(self.certificate),
                    has_key=self.has_key, is_ca=self.is_ca())


class _SecretFiles:
    """A 0700 folder of 0600 files for passwords handed to NSS tools; removed on exit."""

    def __enter__(self):
        self.folder = tempfile.mkdtemp(prefix='certfleet-nss-')
        os.chmod(self.folder, 0o700)
        return self

    def write(self, name: str, secret) -> str:
        path = os.path.join(self.folder, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write('' if secret is None else str(secret))
        return path

    def __exit__(self, *exc):
        shutil.rmtree(self.folder, ignore_errors=True)


class NSSDatabase:
    def __init__(self, path: str, password=None, runner=None, certutil: str = 'certutil', pk12util: str = 'pk12util'):
        if not path:
            raise InputError('is required', 'db')
        text = str(path)
        self.path = os.path.abspath(os.path.expanduser(text[4:] if text.startswith('sql:') else text))
        self.password = password
        self.run = runner or default_runner
        self.certutil = certutil
        self.pk12util = pk12util

    @property
    def spec(self) -> str:
        return 'sql:' + self.path

    def exists(self) -> bool:
        return all(os.path.exists(os.path.join(self.path, name)) for name in DB_FILES)

    def refuse_planted_links(self) -> None:
        """NSS never makes its files symlinks: one found there was planted, and is not followed."""
        for name in ALL_DB_FILES:
            refuse_symlink(os.path.join(self.path, name), 'the NSS file', 'db')

    def require(self) -> None:
        if not os.path.isdir(self.path):
            raise InputError('%s does not exist (set create_db to create an NSS database there)' % self.path, 'db')
        if not self.exists():
            raise InputError('%s holds no NSS database (cert9.db, key4.db); set create_db to create one' % self.path,
                             'db')

    def _call(self, args: list, what: str) -> str:
        rc, out, err = self.run(args)
        if rc != 0:
            message = (err or out).strip().splitlines()
            detail = message[-1] if message else 'exit status %d' % rc
            if 'SEC_ERROR_BAD_PASSWORD' in (err + out) or 'USER_CANCELLED' in (err + out):
                raise NSSError('%s: the database %s is protected by a token (primary) password that was not given '
                               'or is wrong (%s)' % (what, self.path, detail), 'db_password')
            raise NSSError('%s failed for %s: %s' % (what, self.path, detail), 'db')
        return out

    # -- reading ----------------------------------------------------------------------------------------------
    def create(self) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        with _SecretFiles() as secrets:
            args = [self.certutil, '-N', '-d', self.spec]
            if self.password:
                args += ['-f', secrets.write('token', self.password)]
            else:
                args += ['--empty-password']
            self._call(args, 'creating the NSS database')

    def _nicknames(self) -> list:
        out = self._call([self.certutil, '-L', '-d', self.spec], 'listing certificates')
        entries = []
        for line in out.splitlines():
            match = _LIST_LINE.match(line)
            if not match or match.group('nickname').startswith('Certificate Nickname'):
                continue
            entries.append((match.group('nickname'), match.group('trust')))
        return entries

    def key_ids(self) -> dict | None:
        """{key id: key nickname}; None when the token is locked and no password was given."""
        with _SecretFiles() as secrets:
            args = [self.certutil, '-K', '-d', self.spec, '-f', secrets.write('token', self.password or '')]
            rc, out, err = self.run(args)
        text = out + err
        if rc != 0:
            if 'no keys found' in text:
                return {}
            if 'SEC_ERROR_BAD_PASSWORD' in text or 'USER_CANCELLED' in text:
                if self.password:
                    raise NSSError('the token password of %s is wrong' % self.path, 'db_password')
                return None
            raise NSSError('listing keys failed for %s: %s' % (self.path, text.strip().splitlines()[-1:]), 'db')
        keys = {}
        for line in out.splitlines():
            match = _KEY_LINE.match(line.strip())
            if match:
                keys[match.group('id').lower()] = match.group('nickname').strip()
        return keys

    def certificates(self) -> list:
        """Every certificate in the database, with its nickname, trust and whether its key is there."""
        keys = self.key_ids()
        found = []
        seen = set()
        trusts: dict = {}
        for nickname, trust in self._nicknames():
            trusts.setdefault(nickname, []).append(trust)
        for nickname, trust_list in trusts.items():
            out = self._call([self.certutil, '-L', '-d', self.spec, '-n', nickname, '-a'],
                             'reading certificate %r' % nickname)
            for index, block in enumerate(_PEM.findall(out.encode('utf-8'))):
                certificate = x509.load_pem_x509_certificate(block)
                sha256 = fingerprint(certificate)
                if sha256 in seen:
                    continue
                seen.add(sha256)
                key_id = certificate_key_id(certificate)
                has_key = None if keys is None else key_id in keys
                trust = trust_list[index] if index < len(trust_list) else trust_list[-1]
                found.append(NSSCertificate(nickname=nickname, trust=trust, certificate=certificate, key_id=key_id,
                                            has_key=has_key))
        return found

    # -- writing ----------------------------------------------------------------------------------------------
    def import_pkcs12(self, path: str, password) -> None:
        with _SecretFiles() as secrets:
            args = [self.pk12util, '-i', path, '-d', self.spec, '-w', secrets.write('p12', password)]
            args += ['-k', secrets.write('token', self.password or '')]
            self._call(args, 'importing %s' % os.path.basename(path))

    def add_ca(self, ca_path: str, nickname: str, trust: str) -> None:
        with _SecretFiles() as secrets:
            args = [self.certutil, '-A', '-d', self.spec, '-n', nickname, '-t', trust, '-i', ca_path]
            if self.password:
                args += ['-f', secrets.write('token', self.password)]
            self._call(args, 'adding the CA certificate')

    def set_trust(self, nickname: str, trust: str) -> None:
        with _SecretFiles() as secrets:
            args = [self.certutil, '-M', '-d', self.spec, '-n', nickname, '-t', trust]
            if self.password:
                args += ['-f', secrets.write('token', self.password)]
            self._call(args, 'setting the trust of %r' % nickname)

    def delete(self, entry: NSSCertificate, unique_nickname: bool) -> None:
        """Delete one certificate exactly (by PKCS#11 ID when it has a key), then its key."""
        with _SecretFiles() as secrets:
            token = ['-f', secrets.write('token', self.password or '')]
            if entry.has_key and entry.key_id:
                self._call([self.certutil, '-D', '-d', self.spec, '-n', pkcs11_id_uri(entry.key_id)] + token,
                           'deleting certificate %s' % entry.serial)
                self._call([self.certutil, '-F', '-d', self.spec, '-k', entry.key_id] + token,
                           'deleting the key of certificate %s' % entry.serial)
            elif unique_nickname:
                self._call([self.certutil, '-D', '-d', self.spec, '-n', entry.nickname] + token,
                           'deleting certificate %s' % entry.serial)
            else:
                raise NSSError('certificate %s has no key and shares the nickname %r with another certificate; NSS '
                               'cannot delete it exactly' % (entry.serial, entry.nickname), 'db')


def validate_trust(trust: str) -> str:
    if not _TRUST.match(trust or ''):
        raise InputError('%r is not an NSS trust string such as "T,," or "CT,,"' % trust, 'trust')
    return trust


def _summary(entries: list) -> list:
    return ['%s serial=%s sha256=%s%s' % (e.nickname, e.serial, e.fingerprint_sha256[:16],
                                          ' (key)' if e.has_key else '') for e in entries]


def ensure_nss_certificate(*, db, db_password=None, create_db=False, state='present', pkcs12_path=None,
                           pkcs12_password=None, ca_certificate=None, ca_nickname=None, trust='T,,',
                           fingerprint_sha256=None, serial=None, nickname=None, issuer=None,
                           keep_fingerprint_sha256=None, check_mode=False, runner=None, certutil='certutil',
                           pk12util='pk12util') -> dict:
    """Import a client certificate with its key (and trust its CA), or remove certificates with their keys."""
    database = NSSDatabase(db, db_password, runner, certutil=certutil, pk12util=pk12util)
    if state not in ('present', 'absent'):
        raise InputError('must be present or absent', 'state')
    database.refuse_planted_links()
    if not check_mode:
        check_writable_as_self(database.path, 'the NSS database', 'db')
    trust = validate_trust(trust)
    if state == 'present':
        wanted = _WantedPresent.load(pkcs12_path, pkcs12_password, ca_certificate, ca_nickname, trust)
        return _present(database, wanted, create_db, check_mode)
    return _absent(database, fingerprint_sha256=fingerprint_sha256, serial=serial, nickname=nickname, issuer=issuer,
                   keep_fingerprint_sha256=keep_fingerprint_sha256, check_mode=check_mode)


@dataclass
class _WantedPresent:
    """What state=present asks for, loaded and checked before the database is touched."""
    pkcs12_path: str | None
    pkcs12_password: object
    certificate: object
    ca: object
    ca_nickname: str | None
    trust: str

    @classmethod
    def load(cls, pkcs12_path, pkcs12_password, ca_certificate, ca_nickname, trust) -> '_WantedPresent':
        if not pkcs12_path and not ca_certificate:
            raise InputError('state=present needs pkcs12_path (with pkcs12_password) or ca_certificate',
                             'pkcs12_path')
        certificate = ca = None
        if pkcs12_path:
            certificate, _chain = load_pkcs12(pkcs12_path, pkcs12_password)
        if ca_certificate:
            ca = load_pem_certificate(ca_certificate, 'ca_certificate')
            if certificate is not None and not issued_by(certificate, ca):
                raise InputError('the certificate in %s %s' % (pkcs12_path, issuer_mismatch(certificate, ca)),
                                 'ca_certificate')
        return cls(pkcs12_path, pkcs12_password, certificate, ca, ca_nickname, trust)


def _present(database: NSSDatabase, wanted: _WantedPresent, create_db: bool, check_mode: bool) -> dict:
    created = _ensure_database(database, create_db, check_mode)
    before = [] if created and check_mode else database.certificates()
    by_fingerprint = {e.fingerprint_sha256: e for e in before}
    imported = None
    if wanted.certificate is not None:
        entry = by_fingerprint.get(fingerprint(wanted.certificate))
        if entry is None or entry.has_key is False:
            if not created and database.key_ids() is None:
                raise NSSError('%s is protected by a token (primary) password; give db_password to import a '
                               'key' % database.path, 'db_password')
            imported = fingerprint(wanted.certificate)
    ca_change = _ca_change(by_fingerprint, wanted)
    changed = created or imported is not None or ca_change is not None
    if changed and not check_mode:
        if imported:
            database.import_pkcs12(wanted.pkcs12_path, wanted.pkcs12_password)
        if ca_change is not None:
            _apply_ca(database, wanted)
    after = database.certificates() if (changed and not check_mode) else before
    if imported and not check_mode:
        holder = {e.fingerprint_sha256: e for e in after}.get(imported)
        if holder is None or holder.has_key is False:
            raise NSSError('pk12util reported success but %s does not hold the certificate %s with its key'
                           % (database.path, imported), 'db')
    return _result(database, before, after, changed=changed, created=created, imported=imported,
                   ca_changed=ca_change, removed=[])


def _ensure_database(database: NSSDatabase, create_db: bool, check_mode: bool) -> bool:
    """Whether the database is (or, in check mode, would be) created now."""
    if database.exists():
        return False
    if not create_db:
        database.require()
    if os.path.exists(database.path) and not os.path.isdir(database.path):
        raise InputError('%s exists and is not a folder' % database.path, 'db')
    if not check_mode:
        database.create()
    return True


def _ca_change(by_fingerprint: dict, wanted: _WantedPresent) -> str | None:
    """add (the CA is missing), trust (it lacks some of the wanted trust flags) or None."""
    if wanted.ca is None:
        return None
    entry = by_fingerprint.get(fingerprint(wanted.ca))
    if entry is None:
        return 'add'
    pairs = zip(wanted.trust.split(','), entry.trust.split(','), strict=True)
    return None if all(set(w) <= set(h) for w, h in pairs) else 'trust'


def _apply_ca(database: NSSDatabase, wanted: _WantedPresent) -> None:
    """Add the CA, or add the wanted trust flags to the ones it has (never take flags away)."""
    current = {e.fingerprint_sha256: e for e in database.certificates()}.get(fingerprint(wanted.ca))
    if current is None:
        with tempfile.NamedTemporaryFile('wb', suffix='.pem') as handle:
            handle.write(wanted.ca.public_bytes(serialization.Encoding.PEM))
            handle.flush()
            database.add_ca(handle.name, wanted.ca_nickname or common_name(wanted.ca.subject), wanted.trust)
        return
    merged = ','.join(''.join(sorted(set(w) | set(h)))
                      for w, h in zip(wanted.trust.split(','), current.trust.split(','), strict=True))
    database.set_trust(current.nickname, merged)


def _absent(database: NSSDatabase, *, fingerprint_sha256, serial, nickname, issuer, keep_fingerprint_sha256,
            check_mode) -> dict:
    # fingerprint_sha256 is one fingerprint or a list of them (the CA's superseded list). A list that is given but
    # empty selects nothing; it never falls back to the sweep by issuer, which only happens without any selector.
    fingerprint_given = fingerprint_sha256 is not None and not (
        isinstance(fingerprint_sha256, str) and not fingerprint_sha256)
    selectors = [s for s in (serial, nickname) if s] + ([fingerprint_sha256] if fingerprint_given else [])
    if not selectors and not issuer:
        raise InputError('state=absent needs fingerprint_sha256, serial, nickname or issuer', 'fingerprint_sha256')
    wanted_fps = ({normalize_fingerprint(one, 'fingerprint_sha256') for one in _as_list(fingerprint_sha256)}
                  if fingerprint_given else None)
    wanted_serials = {normalize_serial(one) for one in _as_list(serial)} if serial else None
    keep = {normalize_fingerprint(k, 'keep_fingerprint_sha256') for k in _as_list(keep_fingerprint_sha256)}
    ca = load_pem_certificate(issuer, 'issuer') if issuer else None
    database.require()
    before = database.certificates()
    if selectors:
        targets = [e for e in before
                   if (wanted_fps is None or e.fingerprint_sha256 in wanted_fps)
                   and (wanted_serials is None or e.serial in wanted_serials)
                   and (nickname is None or e.nickname == nickname)]
        if ca is not None:
            refuse_foreign([(e.serial, e.certificate) for e in targets], ca)
    else:
        targets = [e for e in before if e.has_key is not False and not e.is_ca() and issued_by(e.certificate, ca)]
    targets = [e for e in targets if e.fingerprint_sha256 not in keep]
    if any(e.has_key is None for e in targets):
        raise NSSError('%s is protected by a token (primary) password; give db_password to remove certificates '
                       'with their keys' % database.path, 'db_password')
    if targets and not check_mode:
        after = _delete(database, before, targets)
    else:
        after = [e for e in before if e not in targets]
    return _result(database, before, after, changed=bool(targets), created=False, imported=None, ca_changed=None,
                   removed=[e.to_result() for e in targets])


def _delete(database: NSSDatabase, before: list, targets: list) -> list:
    """Delete the targets (with their keys) and prove they are gone; returns what the database holds after."""
    nickname_counts: dict = {}
    for entry in before:
        nickname_counts[entry.nickname] = nickname_counts.get(entry.nickname, 0) + 1
    for entry in targets:
        database.delete(entry, nickname_counts[entry.nickname] == 1)
    after = database.certificates()
    left = {e.fingerprint_sha256 for e in after} & {e.fingerprint_sha256 for e in targets}
    if left:
        raise NSSError('certutil reported success but %s still holds %s' % (database.path, ', '.join(left)), 'db')
    return after


def _result(database: NSSDatabase, before: list, after: list, **outcome) -> dict:
    return dict(outcome, db=database.path, certificates=[e.to_result() for e in after],
                diff={'before': '\n'.join(_summary(before)) + '\n', 'after': '\n'.join(_summary(after)) + '\n'})


def nss_certificate_info(*, db, db_password=None, issuer=None, fingerprint_sha256=None, serial=None, runner=None,
                         certutil='certutil') -> dict:
    """What a database holds, optionally filtered; never writes. A missing database is ``exists=False``."""
    database = NSSDatabase(db, db_password, runner, certutil=certutil)
    database.refuse_planted_links()
    wanted_fp = normalize_fingerprint(fingerprint_sha256, 'fingerprint_sha256') if fingerprint_sha256 else None
    wanted_serial = normalize_serial(serial) if serial else None
    ca = load_pem_certificate(issuer, 'issuer') if issuer else None
    if not database.exists():
        return {'changed': False, 'db': database.path, 'exists': False, 'certificates': [], 'count': 0}
    entries = [e for e in database.certificates()
               if (wanted_fp is None or e.fingerprint_sha256 == wanted_fp)
               and (wanted_serial is None or e.serial == wanted_serial)
               and (ca is None or (issued_by(e.certificate, ca) and e.certificate != ca))]
    return {'changed': False, 'db': database.path, 'exists': True, 'certificates': [e.to_result() for e in entries],
            'count': len(entries)}


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def as_database_owner(operation, *, db, owner=None, **kwargs) -> dict:
    """Run an NSS operation with the rights of the user who controls the database (see common/owner.py).

    Running as root on a database in a user's home, every certutil/pk12util call and file access happens as that
    user. ``owner`` (name or uid) overrides who that is: give it when the path came from a file the user controls
    (profiles.ini).
    """
    text = str(db or '')
    path = os.path.abspath(os.path.expanduser(text[4:] if text.startswith('sql:') else text))
    return as_owner_of(path, operation, owner=owner, files=('pkcs12_path', 'ca_certificate', 'issuer'), db=path,
                       **kwargs)
