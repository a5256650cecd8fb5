# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The macOS keychain as a store of the reconcile call (private module_utils).

One user's login keychain (or a given keychain file) is put in the state the CA's record says with the same
decision as an NSS store (reconcile.py): the keychain is read once (``find-certificate`` and ``find-identity``),
its certificates are adapted to the entries ``classify`` sorts, and ``split_wanted`` and ``_screen_removals``
decide what to import, what to remove and what waits (the host's rule, ``Plan.release``, included).

How a keychain item becomes an entry: the SHA-256 fingerprint is computed from the certificate (not taken from
security's output), ``has_key`` means ``find-identity`` lists the certificate (its private key is in the keychain),
the nickname is ``label/SHA-1`` (security names items by SHA-1), and ``key_id`` is computed from the public key as
for NSS, so a removal never takes a key a kept certificate uses (``delete-identity`` deletes the key too).

Order, as for NSS: imports first (each PKCS#12 re-packed under a one-time password in the legacy encryption macOS
reads, written 0600 in a 0700 folder removed after), then the CA's trust, then a fresh read that verifies every
import by fingerprint with its key, then the removals, then a read that checks they are gone. A keychain is
locked over SSH: with ``keychain_password`` it is unlocked first (the password goes to security's stdin);
without it, the first write security refuses as "User interaction is not allowed" ends all writing in that
keychain and is that store's problem. There is no reliable read-only way to ask security whether a keychain is
locked, so this is found out by the first refused write, never by guessing.

Runs inside reconcile._user_stores, with the rights of the home's owner (common/owner.run_as), as keychain.py
requires for a login keychain: trust settings and the keychain belong to the user who runs security. Trust
settings go to the user's domain (``add-trusted-cert`` without ``-d``): the admin domain needs root and an
administrator's authorization (keychain.py). Since macOS 11 a trust change needs an interactive authorization;
without one it fails, which is a problem of the store: the CA can be trusted by a configuration profile instead
(certfleet.pki.apple_profile) and ``trust_ca`` turned off.

Nothing here has run on a Mac in the development environment; it is tested against the FakeSecurity emulator of
tests/unit/plugins/module_utils/endpoints/test_keychain.py (security's command lines and output formats).
"""

from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import dataclass, field
from secrets import token_hex

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.keychain import (
    DEFAULT_TRUST_POLICIES, LOGIN_KEYCHAIN, SECURITY, Keychain, KeychainError, make_runner,
)
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.nss import certificate_key_id
# The store-level decision is the NSS stores' own; the helpers are shared on purpose.
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile import (  # noqa: F401
    Plan, _describe, _failed, _listing, _screen_removals, classify, split_wanted, verify_imports,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import fingerprints
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import common_name

LOGIN = 'login'


@dataclass(frozen=True)
class KeychainOptions:
    """How to reach the keychain of each home: ``keychain`` is ``login`` (the home's login keychain), a path
    relative to the home (``~/`` allowed) or an absolute path (one home only)."""
    keychain: str = LOGIN
    password: object = field(default=None, repr=False)
    trust_ca: bool = True
    trust_policies: tuple = DEFAULT_TRUST_POLICIES
    security: str = SECURITY
    runner: object = field(default=None, repr=False)  # runner(args, stdin=None) -> (rc, out, err)


def check_keychain_targets(options: KeychainOptions, targets: list) -> None:
    """An absolute keychain path is one user's: refuse it for several homes before any store is read."""
    name = str(options.keychain or LOGIN)
    if os.path.isabs(name) and len(targets) != 1:
        raise InputError('an absolute keychain path belongs to one user: give one user or home (or login, or a '
                         'path relative to each home)', 'keychain')


def keychain_path(home: str, keychain: str = LOGIN) -> tuple:
    """(path, given): the keychain of ``home``; ``given`` is False for a login keychain found (or not) by name."""
    name = str(keychain or LOGIN)
    if name == LOGIN:
        candidates = [os.path.join(home, relative) for relative in LOGIN_KEYCHAIN]
        return next((c for c in candidates if os.path.exists(c)), candidates[0]), False
    if name.startswith('~/'):
        name = name[2:]
    return os.path.join(home, name), True  # an absolute name stays as it is


@dataclass
class KeychainEntry:
    """A keychain certificate in the shape ``classify`` reads (the attributes of nss.NSSCertificate)."""
    certificate: object
    sha1: str
    fingerprint_sha256: str
    serial: str
    has_key: bool
    nickname: str
    trust: str
    key_id: str


def keychain_entries(keychain: Keychain, ca=None, ca_trusted: bool | None = None) -> list:
    """Every certificate of the keychain as an entry, from one ``find-certificate`` and one ``find-identity``."""
    identities = {i.sha1: i for i in keychain.identities()}
    ca_sha1 = fingerprints(ca)[0] if ca is not None else None
    entries = []
    for item in keychain.certificates():
        identity = identities.get(item.sha1)
        label = identity.label if identity is not None else common_name(item.certificate.subject, item.sha1)
        trust = '-'
        if item.sha1 == ca_sha1 and ca_trusted is not None:
            trust = 'trusted' if ca_trusted else 'not trusted'
        entries.append(KeychainEntry(certificate=item.certificate, sha1=item.sha1, fingerprint_sha256=item.sha256,
                                     serial=item.serial, has_key=identity is not None,
                                     nickname='%s/%s' % (label, item.sha1), trust=trust,
                                     key_id=certificate_key_id(item.certificate)))
    return entries


def home_keychain(*, home: str, plan: Plan, options: KeychainOptions | None, check_mode: bool) -> list:
    """The keychain store of one home, as a list of results: none when the home has no login keychain (a user who
    never logged in, root), as a Firefox profile that does not exist is skipped; any failure is that store's."""
    options = options or KeychainOptions()
    path, given = keychain_path(home, options.keychain)
    if not os.path.isfile(path):
        if not given:
            return []
        return [_failed('keychain', path, '%s does not exist (give login or the path of an existing keychain file)'
                        % path)]
    try:
        return [reconcile_keychain(path=path, plan=plan, options=options, check_mode=check_mode)]
    except CertfleetError as exc:
        return [_failed('keychain', path, _advice(exc))]
    except (OSError, ValueError) as exc:
        return [_failed('keychain', path, str(exc))]


@dataclass
class _KeychainWork:
    """What one keychain needs, decided from one read; predicted (check mode) or applied."""
    keychain: Keychain
    result: dict
    before: list
    imports: list
    strays: dict  # identity -> SHA-1 of its current certificate held without its key (deleted before the import)
    removals: list
    trust_needed: bool

    def needed(self) -> bool:
        return bool(self.imports or self.removals or self.trust_needed)


def reconcile_keychain(*, path: str, plan: Plan, options: KeychainOptions | None = None, check_mode: bool = False,
                       now=None) -> dict:
    """Reconcile one keychain file with ``plan``; the result has the keys of an NSS store's result."""
    options = options or KeychainOptions()
    keychain = Keychain(path, 'login', options.runner or make_runner(), options.security)
    result = {'store': 'keychain', 'path': path, 'exists': True, 'created': False, 'present': [], 'imported': [],
              'removed': [], 'deferred': [], 'foreign': [], 'unclaimed': [], 'missing': [], 'ca_changed': None,
              'preferences_changed': False, 'changed': False, 'problems': []}
    if options.password:
        try:
            keychain.unlock(options.password)  # also in check mode: it changes no item, and reads may need it
        except KeychainError as exc:
            return _failed('keychain', path, _advice(exc))
    with tempfile.TemporaryDirectory(prefix='certfleet-keychain-') as folder:  # 0700, the owner's
        ca_path = _write_private(folder, 'ca.pem', plan.ca_pem)
        ca = plan.ca
        policies = list(options.trust_policies)
        trusted = keychain.ca_trusted(ca_path, policies)
        before = keychain_entries(keychain, ca, trusted)
        work = _decide(keychain, result, plan, before, now or datetime.datetime.now(datetime.timezone.utc),
                       trust_needed=bool(options.trust_ca) and not trusted)
        if not work.needed():
            after = before
        elif check_mode:
            result['imported'] = [w.identity for w in work.imports]
            result['removed'] = [_describe(e, identity=who, reason=why) for e, who, why in work.removals]
            result['ca_changed'] = 'trust' if work.trust_needed else None
            gone = [r[0] for r in work.removals]
            after = [e for e in before if e not in gone]
        else:
            after = _apply(work, plan, folder, ca_path, policies, trusted)
    result['changed'] = bool(result['imported'] or result['removed'] or result['ca_changed'])
    header = 'keychain %s' % path
    result['diff'] = {'before_header': header, 'after_header': header,
                      'before': '\n'.join(_listing(before)) + '\n', 'after': '\n'.join(_listing(after)) + '\n'}
    if check_mode:
        result['diff']['after'] += ''.join('(import) %s sha256=%s\n' % (w.identity, w.fingerprint_sha256[:16])
                                           for w in work.imports)
        if work.trust_needed:
            result['diff']['after'] += '(trust) the CA for %s\n' % ', '.join(policies)
    return result


def _locked(exc: CertfleetError) -> bool:
    """security refused because the keychain is locked (keychain.failure's reading of "User interaction is not
    allowed", also when Keychain.trust re-words it for its trust_ca field)."""
    return exc.field == 'keychain_password' or 'User interaction is not allowed' in exc.message


def _advice(exc: CertfleetError) -> str:
    """keychain.py's message with its advice in this call's terms: its trust_ca is keychain_trust_ca here, and
    the System keychain is not a store of this call."""
    return exc.message.replace('trust_ca: false', 'keychain_trust_ca: false').replace(', or use keychain: system', '')


def _write_private(folder: str, name: str, data: bytes) -> str:
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
    return path


def _decide(keychain: Keychain, result: dict, plan: Plan, before: list, now, trust_needed: bool) -> _KeychainWork:
    """Present, missing, imports and removals from one read, with the NSS stores' rules."""
    sorted_out = classify(before, plan, plan.ca, now)
    imports = split_wanted(result, sorted_out, plan)
    held = {e.fingerprint_sha256: e for e in before}
    # The current certificate without its key (imported once as a bare certificate): security refuses to import
    # over it, so it goes first, as keychain.py does.
    strays = {w.identity: held[w.fingerprint_sha256].sha1 for w in imports if w.fingerprint_sha256 in held}
    removals = _screen_removals(result, before, sorted_out['remove'], imports, plan.release)
    return _KeychainWork(keychain=keychain, result=result, before=before, imports=imports, strays=strays,
                         removals=removals, trust_needed=trust_needed)


def _apply(work: _KeychainWork, plan: Plan, folder: str, ca_path: str, policies: list, trusted: bool) -> list:
    """The writes of one keychain, each failure a problem; returns what it holds afterwards."""
    keychain, result = work.keychain, work.result
    failed, locked = _import_all(work, folder)
    if work.trust_needed and not locked:
        try:
            keychain.trust(ca_path, policies)
            if not keychain.ca_trusted(ca_path, policies):
                raise KeychainError('security add-trusted-cert reported success but the CA is still not trusted for '
                                    '%s' % ', '.join(policies), 'trust_ca')
            result['ca_changed'] = 'trust'
        except KeychainError as exc:
            locked = _locked(exc)  # no removal would be allowed either
            result['problems'].append('trusting the CA: %s' % _advice(exc))
    if work.trust_needed:
        trusted = keychain.ca_trusted(ca_path, policies)
    middle = keychain_entries(keychain, plan.ca, trusted)
    verify_imports(result, work.imports, middle, failed, 'security import', 'the keychain')
    if not _remove_all(work, failed, locked):
        return middle
    after = keychain_entries(keychain, plan.ca, trusted)
    left = {e.fingerprint_sha256 for e in after}
    for gone in result['removed']:
        if gone['fingerprint_sha256'] in left:
            result['problems'].append('security reported success but serial %s is still there' % gone['serial'])
    return after


def _import_all(work: _KeychainWork, folder: str) -> tuple:
    """(identities whose import failed, whether the keychain turned out locked). Each PKCS#12 is re-packed in the
    legacy encryption macOS reads (it rejects AES/PBES2) under a one-time password: the transport password never
    reaches a command line."""
    failed = set()
    keychain, result = work.keychain, work.result
    in_keychain = {e.sha1 for e in work.before}
    for wanted in work.imports:
        path = os.path.join(folder, 'identity.p12')
        try:
            stray = work.strays.get(wanted.identity)
            if stray:
                keychain.delete(stray, with_key=False)
            parsed = pkcs12_lib.open_pkcs12_data(wanted.pkcs12, wanted.pkcs12_password, wanted.identity)
            one_time = token_hex(24)
            chain = [c.certificate for c in parsed.additional_certs
                     if fingerprints(c.certificate)[0] not in in_keychain]
            _write_private(folder, 'identity.p12', pkcs12_lib.repack(parsed, one_time, 'legacy', chain=chain))
            keychain.import_pkcs12(path, one_time, (), False, wanted.identity)
        except CertfleetError as exc:
            failed.add(wanted.identity)
            result['problems'].append('importing %s: %s' % (wanted.identity, _advice(exc)))
            if _locked(exc):  # every other write would be refused the same way
                failed.update(w.identity for w in work.imports)
                return failed, True
        finally:
            if os.path.lexists(path):
                os.unlink(path)
    return failed, False


def _remove_all(work: _KeychainWork, failed: set, locked: bool) -> bool:
    """Delete each removal by SHA-1 (with its key when it has one); an identity whose import failed keeps its
    older certificates; a locked keychain stops the removals."""
    keychain, result = work.keychain, work.result
    removed_any = False
    for entry, who, why in work.removals:
        if who in failed and why != 'revoked':
            result['deferred'].append(_describe(entry, identity=who, reason=why))
            continue
        if locked:
            result['problems'].append('serial %s not removed: the keychain is locked (give keychain_password)'
                                      % entry.serial)
            continue
        try:
            keychain.delete(entry.sha1, with_key=entry.has_key)
            removed_any = True
            result['removed'].append(_describe(entry, identity=who, reason=why))
        except CertfleetError as exc:
            result['problems'].append('removing serial %s: %s' % (entry.serial, _advice(exc)))
            if _locked(exc):
                locked = True
    return removed_any
