# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One call per host: every NSS store (Firefox profiles, Chromium's nssdb) of every user put in the state the CA's
record says, for all identities the host carries (private module_utils). On macOS the stores are Firefox profiles
and each user's keychain, which reconcile_keychain.py adapts to the same decision (classify, split_wanted,
_screen_removals and the host's rule below).

How a certificate is attributed to an identity. The CA does not write the identity name into the certificate
(ca/lifecycle.py: the identity is the key of the CA's record; the certificate carries the subject and SANs the
request asked for). A certificate of our CA in a store therefore belongs to an identity when:
- its SHA-256 fingerprint is the identity's current ``fingerprint_sha256`` (it is *present*), or
- it is in the identity's ``superseded_fingerprints_sha256`` or ``superseded_serials`` (the CA's history, exact), or
- it has the same subject as the identity's current certificate (known from the PKCS#12, from ``certificate`` or
  from the copy the store holds), and no other identity of the call has that subject.
A certificate of our CA that no identity claims is reported in ``unclaimed`` and left alone, unless its serial is
in ``revoked_serials``: a revoked certificate of our CA is removed wherever it is found. A certificate of another
issuer is ``foreign`` and never touched.

Order in a store: imports first and verified by fingerprint, then removals, so a store whose import fails keeps the
identity's older certificate (a working one) and the next run finishes the job. Every store's work runs with the
rights of the user who owns it (common/owner.py); NSS files that are symlinks are refused; PKCS#12 data and
passwords reach pk12util through 0600 files in a 0700 folder removed afterwards.
"""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
from dataclasses import dataclass, field, replace

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.owner import (
    check_writable_as_self, owner_by_name, path_controller, refuse_symlink, run_as,
)
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import firefox
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.nss import (
    NSSDatabase, certificate_key_id, validate_trust,
)
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile_apple_profile import (
    profile_dest, reconcile_profiles,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import (
    certificate_serial, fingerprint, is_marked_ca, normalize_fingerprint, normalize_serial,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.issuer import issued_by, issuer_mismatch
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import common_name
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pem import load_pem_certificate
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pkcs12 import open_pkcs12

try:
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

STORES = ('firefox', 'chromium')
# The stores each system has by default; any other system is treated as Linux (NSS only), as before macOS was added.
STORES_BY_SYSTEM = {'Linux': STORES, 'Darwin': ('firefox', 'keychain')}
# Apple profile files (for devices an MDM reaches) can be written anywhere, so every system has them, on request.
EVERYWHERE = ('apple_profile',)
ALL_STORES = ('firefox', 'chromium', 'keychain', 'apple_profile')
SELECTION = {'auto': 'Select Automatically', 'ask': 'Ask Every Time'}


@dataclass
class WantedIdentity:
    """One identity as the CA's record has it; ``pkcs12`` holds the file's bytes (read as root, before any switch)."""
    identity: str
    fingerprint_sha256: str
    serial: str | None = None
    subject: str | None = None
    superseded_fingerprints: frozenset = frozenset()
    superseded_serials: frozenset = frozenset()
    pkcs12: bytes | None = field(default=None, repr=False)
    pkcs12_password: str | None = field(default=None, repr=False)
    key_id: str | None = None
    apple_profile_dest: str | None = None
    apple_profile_include_password: bool = False


@dataclass
class Plan:
    """Everything a store needs, checked once before any store is opened; travels to each user's child process."""
    identities: list
    ca_pem: bytes
    revoked_serials: frozenset
    ca_nickname: str | None
    ca_trust: str
    db_password: str | None = field(default=None, repr=False)
    create_db: bool = True
    firefox_selection: str = 'unmanaged'
    # None: an identity's superseded and expired certificates may leave a store once its current one is there.
    # A set: only these identities' may (the host's rule, see reconcile_host); revoked ones always leave.
    release: frozenset | None = None

    @property
    def ca(self):
        return load_pem_certificate(self.ca_pem.decode('ascii'), 'ca_certificate')


def build_plan(*, identities, ca_certificate, revoked_serials=None, ca_nickname=None, ca_trust='T,,',
               db_password=None, create_db=True, firefox_selection='unmanaged') -> Plan:
    """Check every input (PKCS#12 files opened, fingerprints matched, issuer checked) before any store is read."""
    ca = load_pem_certificate(ca_certificate, 'ca_certificate')
    validate_trust(ca_trust)
    if firefox_selection not in ('unmanaged',) + tuple(SELECTION):
        raise InputError('must be auto, ask or unmanaged', 'firefox_certificate_selection')
    wanted = []
    seen = set()
    for index, item in enumerate(identities or []):
        where = 'identities[%d]' % index
        if not isinstance(item, dict):
            raise InputError('must be a dict with identity and fingerprint_sha256', where)
        name = str(item.get('identity') or '').strip()
        if not name:
            raise InputError('identity is required', where)
        if name in seen:
            raise InputError('identity %r is listed twice' % name, where)
        seen.add(name)
        if not item.get('fingerprint_sha256'):
            raise InputError('fingerprint_sha256 is required (the current certificate of %r)' % name, where)
        wanted_fp = normalize_fingerprint(item['fingerprint_sha256'], where + '.fingerprint_sha256')
        subject = None
        certificate = None
        data = None
        if item.get('certificate'):
            certificate = load_pem_certificate(item['certificate'], where + '.certificate')
        if item.get('pkcs12_path'):
            parsed, data = open_pkcs12(item['pkcs12_path'], item.get('pkcs12_password'))
            certificate = parsed.cert.certificate
        if certificate is not None:
            if fingerprint(certificate) != wanted_fp:
                raise InputError('the certificate given for %r has the fingerprint %s, not %s'
                                 % (name, fingerprint(certificate), wanted_fp), where)
            if not issued_by(certificate, ca):
                raise InputError('the certificate of %r %s' % (name, issuer_mismatch(certificate, ca)), where)
            subject = certificate.subject.rfc4514_string()
        serial = normalize_serial(item['serial'], where + '.serial') if item.get('serial') else None
        if certificate is not None and serial and serial != certificate_serial(certificate):
            raise InputError('serial %s does not match the certificate of %r (%s)'
                             % (serial, name, certificate_serial(certificate)), where + '.serial')
        wanted.append(WantedIdentity(
            identity=name, fingerprint_sha256=wanted_fp, serial=serial, subject=subject,
            superseded_fingerprints=frozenset(
                normalize_fingerprint(f, where + '.superseded_fingerprints_sha256')
                for f in item.get('superseded_fingerprints_sha256') or []),
            superseded_serials=frozenset(normalize_serial(s, where + '.superseded_serials')
                                         for s in item.get('superseded_serials') or []),
            pkcs12=data, pkcs12_password=item.get('pkcs12_password') if data is not None else None,
            key_id=certificate_key_id(certificate) if certificate is not None else None,
            apple_profile_dest=(profile_dest(item['apple_profile_dest'], where + '.apple_profile_dest')
                                if item.get('apple_profile_dest') else None),
            apple_profile_include_password=bool(item.get('apple_profile_include_password'))))
    revoked = frozenset(normalize_serial(s, 'revoked_serials') for s in revoked_serials or [])
    return Plan(identities=wanted, ca_pem=ca.public_bytes(serialization.Encoding.PEM), revoked_serials=revoked,
                ca_nickname=ca_nickname, ca_trust=ca_trust, db_password=db_password, create_db=bool(create_db),
                firefox_selection=firefox_selection)


# -- one store -------------------------------------------------------------------------------------------------------
def _describe(entry, **extra) -> dict:
    certificate = entry.certificate
    return dict({'nickname': entry.nickname, 'serial': entry.serial, 'fingerprint_sha256': entry.fingerprint_sha256,
                 'subject': certificate.subject.rfc4514_string(), 'issuer': certificate.issuer.rfc4514_string(),
                 'not_after': certificate.not_valid_after_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}, **extra)


def _listing(entries: list) -> list:
    return sorted('%s [%s] serial=%s sha256=%s%s' % (e.nickname, e.trust, e.serial, e.fingerprint_sha256[:16],
                                                     ' (key)' if e.has_key else '') for e in entries)


def classify(entries: list, plan: Plan, ca, now: datetime.datetime) -> dict:
    """What a store holds, sorted: present per identity, removals with their reasons, foreign, unclaimed.

    Pure: no NSS call, so the decision can be tested on its own and is the same in check mode.
    """
    ca_fp = fingerprint(ca)
    current = {w.fingerprint_sha256: w for w in plan.identities}
    subjects = {}
    for wanted in plan.identities:
        subject = wanted.subject
        if subject is None:  # learned from the copy the store holds
            holder = next((e for e in entries if e.fingerprint_sha256 == wanted.fingerprint_sha256), None)
            subject = holder.certificate.subject.rfc4514_string() if holder is not None else None
        if subject is not None:
            subjects.setdefault(subject, []).append(wanted)
    present, remove, foreign, unclaimed = {}, [], [], []
    ca_entry = None
    for entry in entries:
        if entry.fingerprint_sha256 == ca_fp:
            ca_entry = entry
            continue
        if not issued_by(entry.certificate, ca):
            if not is_marked_ca(entry.certificate):
                foreign.append(entry)
            continue
        if entry.fingerprint_sha256 in current:
            present[current[entry.fingerprint_sha256].identity] = entry
            continue
        if entry.serial in plan.revoked_serials:
            remove.append((entry, _claimant(entry, plan, subjects), 'revoked'))
            continue
        owner = _claimant(entry, plan, subjects)
        if owner is None:
            unclaimed.append(entry)
            continue
        expired = entry.certificate.not_valid_after_utc < now
        remove.append((entry, owner, 'expired' if expired else 'superseded'))
    return {'present': present, 'remove': remove, 'foreign': foreign, 'unclaimed': unclaimed, 'ca': ca_entry}


def _claimant(entry, plan: Plan, subjects: dict) -> str | None:
    """The identity a certificate of our CA belongs to (see the module docstring), or None."""
    for wanted in plan.identities:
        if entry.fingerprint_sha256 in wanted.superseded_fingerprints or entry.serial in wanted.superseded_serials:
            return wanted.identity
    holders = subjects.get(entry.certificate.subject.rfc4514_string(), [])
    if len(holders) == 1:
        return holders[0].identity
    return None


def _ca_change(ca_entry, trust: str) -> str | None:
    if ca_entry is None:
        return 'add'
    pairs = zip(trust.split(','), ca_entry.trust.split(','), strict=True)
    return None if all(set(w) <= set(h) for w, h in pairs) else 'trust'


@dataclass
class _StoreWork:
    """What one store needs: decided from one read, then predicted (check mode) or applied."""
    database: NSSDatabase
    result: dict
    before: list
    imports: list
    removals: list
    ca_change: str | None
    create: bool

    def needed(self) -> bool:
        return bool(self.create or self.imports or self.removals or self.ca_change)


def reconcile_store(*, kind: str, path: str, plan: Plan, check_mode: bool = False, runner=None,
                    certutil: str = 'certutil', pk12util: str = 'pk12util', now=None) -> dict:
    """Reconcile one NSS database. Meant to run as the database's owner (see reconcile_host)."""
    database = NSSDatabase(path, plan.db_password, runner, certutil=certutil, pk12util=pk12util)
    result = {'store': kind, 'path': database.path, 'exists': False, 'created': False, 'present': [],
              'imported': [], 'removed': [], 'deferred': [], 'foreign': [], 'unclaimed': [], 'missing': [],
              'ca_changed': None, 'preferences_changed': False, 'changed': False, 'problems': []}
    if os.path.islink(database.path):
        refuse_symlink(database.path, 'the NSS database folder', 'path')
    database.refuse_planted_links()
    result['exists'] = database.exists()
    before = database.certificates() if result['exists'] else []
    work = _decide(database, result, plan, before, now or datetime.datetime.now(datetime.timezone.utc))
    if not work.needed():
        after = before
    elif check_mode:
        result['created'] = work.create
        result['imported'] = [w.identity for w in work.imports]
        result['removed'] = [_describe(e, identity=who, reason=why) for e, who, why in work.removals]
        result['ca_changed'] = work.ca_change
        gone = [r[0] for r in work.removals]
        after = [e for e in before if e not in gone]
    else:
        after = _apply(work, plan)
    result['changed'] = bool(result['created'] or result['imported'] or result['removed'] or result['ca_changed'])
    header = '%s %s' % (kind, database.path)
    result['diff'] = {'before_header': header, 'after_header': header,
                      'before': '\n'.join(_listing(before)) + '\n', 'after': '\n'.join(_listing(after)) + '\n'}
    if check_mode:
        result['diff']['after'] += ''.join('(import) %s sha256=%s\n' % (w.identity, w.fingerprint_sha256[:16])
                                           for w in work.imports)
    return result


def _decide(database: NSSDatabase, result: dict, plan: Plan, before: list, now) -> _StoreWork:
    """Present, missing, what to import and what to remove, from one read of the store."""
    sorted_out = classify(before, plan, plan.ca, now)
    exists = result['exists']
    locked = exists and database.key_ids() is None

    def refuse(wanted):
        if locked:
            return ('cannot import %s: %s is protected by a token (primary) password; give db_password'
                    % (wanted.identity, database.path))
        return None

    imports = split_wanted(result, sorted_out, plan, refuse)
    if not exists and imports and not plan.create_db:
        result['problems'].append('%s holds no NSS database and create_db is false' % database.path)
        result['missing'].extend(w.identity for w in imports)
        imports = []
    create = not exists and bool(imports)
    ca_change = _ca_change(sorted_out['ca'], plan.ca_trust) if (exists or create) else None
    removals = _screen_removals(result, before, sorted_out['remove'], imports, plan.release)
    return _StoreWork(database=database, result=result, before=before, imports=imports, removals=removals,
                      ca_change=ca_change, create=create)


def split_wanted(result: dict, sorted_out: dict, plan: Plan, refuse=None) -> list:
    """Each identity into the result's present or missing, or into the returned imports; also the foreign and
    unclaimed lists. ``refuse(wanted)`` gives why the store cannot take an import now (None: it can).

    Shared by every kind of store (NSS here, the macOS keychain in reconcile_keychain.py).
    """
    imports = []
    for wanted in plan.identities:
        entry = sorted_out['present'].get(wanted.identity)
        if entry is not None and entry.has_key is not False:
            result['present'].append(wanted.identity)
            continue
        if wanted.pkcs12 is None:
            result['missing'].append(wanted.identity)
            continue
        reason = refuse(wanted) if refuse is not None else None
        if reason:
            result['problems'].append(reason)
            result['missing'].append(wanted.identity)
        else:
            imports.append(wanted)
    result['foreign'] = [_describe(e) for e in sorted_out['foreign']]
    result['unclaimed'] = [_describe(e) for e in sorted_out['unclaimed']]
    return imports


def _screen_removals(result: dict, before: list, removals: list, imports: list, release=None) -> list:
    """The removals that are safe now. An identity's older certificate waits (``deferred``) while its current one
    is not in the store and not being imported: the store keeps a working certificate; and, with ``release``, while
    the identity is not in it. A revoked one never waits."""
    going = [r[0] for r in removals]
    # A removal whose key a kept certificate uses (a renewal from the same CSR key) would take that key too.
    kept_keys = {e.key_id for e in before if e not in going} | {w.key_id for w in imports}
    will_hold = set(result['present']) | {w.identity for w in imports}
    safe = []
    for entry, who, why in removals:
        if why != 'revoked' and (who not in will_hold or (release is not None and who not in release)):
            result['deferred'].append(_describe(entry, identity=who, reason=why))
        elif entry.has_key is None:
            result['problems'].append('cannot remove serial %s: the database has a token password and db_password '
                                      'was not given' % entry.serial)
        elif entry.has_key and entry.key_id in kept_keys:
            result['problems'].append('serial %s shares its key with a certificate that stays; not removed'
                                      % entry.serial)
        else:
            safe.append((entry, who, why))
    return safe


def _apply(work: _StoreWork, plan: Plan) -> list:
    """The writes of one store, each failure a problem; returns what the database holds afterwards."""
    database, result = work.database, work.result
    check_writable_as_self(database.path, 'the NSS database', 'path')
    if work.create:
        database.create()
        result['created'] = True
    failed = _import_all(database, result, work.imports)
    if work.ca_change is not None:
        try:
            _apply_ca(database, plan, plan.ca, work.ca_change)
            result['ca_changed'] = work.ca_change
        except CertfleetError as exc:
            result['problems'].append('trusting the CA: %s' % exc.message)
    middle = database.certificates()
    verify_imports(result, work.imports, middle, failed, 'pk12util', 'the database')
    if not _remove_all(database, result, middle, work.removals, failed):
        return middle
    after = database.certificates()
    left = {e.fingerprint_sha256 for e in after}
    for gone in result['removed']:
        if gone['fingerprint_sha256'] in left:
            result['problems'].append('certutil reported success but serial %s is still there' % gone['serial'])
    return after


def verify_imports(result: dict, imports: list, held_entries: list, failed: set, tool: str, where: str) -> None:
    """The rule for every store: an import counts (``imported``) only once the store, read again, holds the
    certificate by SHA-256 fingerprint with its key; otherwise the identity is ``missing`` (and ``failed``, so its
    older certificates stay). ``has_key`` None (a token password hides the keys) is not held against it."""
    held = {e.fingerprint_sha256: e for e in held_entries}
    for wanted in imports:
        entry = held.get(wanted.fingerprint_sha256)
        if wanted.identity in failed:
            result['missing'].append(wanted.identity)
        elif entry is None or entry.has_key is False:
            failed.add(wanted.identity)
            result['missing'].append(wanted.identity)
            result['problems'].append('%s reported success but %s does not hold %s (%s) with its key'
                                      % (tool, where, wanted.identity, wanted.fingerprint_sha256))
        else:
            result['imported'].append(wanted.identity)


def _import_all(database: NSSDatabase, result: dict, imports: list) -> set:
    """pk12util for each identity, its PKCS#12 in a 0600 file of a 0700 folder of the owner's, removed after."""
    failed = set()
    if not imports:
        return failed
    with tempfile.TemporaryDirectory(prefix='certfleet-reconcile-') as folder:
        for wanted in imports:
            p12 = os.path.join(folder, 'identity.p12')
            fd = os.open(p12, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(wanted.pkcs12)
            try:
                database.import_pkcs12(p12, wanted.pkcs12_password)
            except CertfleetError as exc:
                failed.add(wanted.identity)
                result['problems'].append('importing %s: %s' % (wanted.identity, exc.message))
            finally:
                os.unlink(p12)
    return failed


def _remove_all(database: NSSDatabase, result: dict, held: list, removals: list, failed: set) -> bool:
    """Delete each removal exactly; an identity whose import failed keeps its older certificates."""
    counts: dict = {}
    for entry in held:
        counts[entry.nickname] = counts.get(entry.nickname, 0) + 1
    removed_any = False
    for entry, who, why in removals:
        if who in failed and why != 'revoked':
            result['deferred'].append(_describe(entry, identity=who, reason=why))
            continue
        try:
            database.delete(entry, counts.get(entry.nickname, 0) == 1)
            removed_any = True
            result['removed'].append(_describe(entry, identity=who, reason=why))
        except CertfleetError as exc:
            result['problems'].append('removing serial %s: %s' % (entry.serial, exc.message))
    return removed_any


def _apply_ca(database: NSSDatabase, plan: Plan, ca, change: str) -> None:
    if change == 'add':
        with tempfile.NamedTemporaryFile('wb', suffix='.pem') as handle:
            handle.write(plan.ca_pem)
            handle.flush()
            database.add_ca(handle.name, plan.ca_nickname or common_name(ca.subject), plan.ca_trust)
        return
    current = {e.fingerprint_sha256: e for e in database.certificates()}.get(fingerprint(ca))
    merged = ','.join(''.join(sorted(set(w) | set(h)))
                      for w, h in zip(plan.ca_trust.split(','), current.trust.split(','), strict=True))
    database.set_trust(current.nickname, merged)


# -- one user's stores, as that user -----------------------------------------------------------------------------------
def chromium_database(home: str) -> str:
    """Chromium reads ~/.pki/nssdb when it holds a database, otherwise ~/.local/share/pki/nssdb."""
    legacy = os.path.join(home, '.pki', 'nssdb')
    if os.path.isfile(os.path.join(legacy, 'cert9.db')) or os.path.islink(os.path.join(legacy, 'cert9.db')):
        return legacy
    return os.path.join(home, '.local', 'share', 'pki', 'nssdb')


def _user_stores(*, user, home: str, stores, plan: Plan, check_mode: bool, runner, certutil, pk12util,
                 system: str = 'Linux', keychain=None) -> list:
    """Every store of one home, each failure in that store's problems. Runs with the home owner's rights."""
    results = []

    def one(kind, path, extra=None):
        try:
            outcome = reconcile_store(kind=kind, path=path, plan=plan, check_mode=check_mode, runner=runner,
                                      certutil=certutil, pk12util=pk12util)
            if extra:
                extra(outcome)
        except CertfleetError as exc:
            outcome = _failed(kind, path, exc.message)
        except (OSError, ValueError) as exc:
            outcome = _failed(kind, path, str(exc))
        outcome['user'] = user
        results.append(outcome)

    if 'firefox' in stores:
        try:
            profiles = firefox.find_profiles(home=home, system=system)
        except (CertfleetError, OSError) as exc:
            profiles = []
            results.append(dict(_failed('firefox', home, getattr(exc, 'message', str(exc))), user=user))
        for profile in profiles:
            if not profile['exists']:
                continue

            def prefs(outcome, folder=profile['path']):
                if plan.firefox_selection == 'unmanaged' or not (outcome['exists'] or outcome['created']):
                    return
                try:
                    changed = firefox.ensure_user_prefs(
                        profile=folder, check_mode=check_mode,
                        prefs={'security.default_personal_cert': SELECTION[plan.firefox_selection]})['changed']
                except CertfleetError as exc:
                    outcome['problems'].append('user.js: %s' % exc.message)
                    return
                outcome['preferences_changed'] = changed
                outcome['changed'] = outcome['changed'] or changed

            one('firefox', profile['path'], prefs)
    if 'chromium' in stores:
        one('chromium', chromium_database(home))
    if 'keychain' in stores:
        # Imported here: reconcile_keychain builds on this module (classify, split_wanted, _screen_removals).
        from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile_keychain import home_keychain
        results.extend(dict(outcome, user=user)
                       for outcome in home_keychain(home=home, plan=plan, options=keychain, check_mode=check_mode))
    return results


def _failed(kind: str, path: str, message: str) -> dict:
    return {'store': kind, 'path': path, 'exists': None, 'created': False, 'present': [], 'imported': [],
            'removed': [], 'deferred': [], 'foreign': [], 'unclaimed': [], 'missing': [], 'ca_changed': None,
            'preferences_changed': False, 'changed': False, 'problems': [message]}


# -- the host ---------------------------------------------------------------------------------------------------------
def _targets(users, homes, min_uid: int = 1000) -> list:
    """[(user name or None, home, owner)] to visit; the default is every login user (uid >= min_uid) and root."""
    targets = []
    if users:
        for user in users:
            owner = owner_by_name(user, 'users')
            targets.append((owner.name, firefox.user_home(owner.name), owner))
    for home in homes or []:
        path = os.path.abspath(os.path.expanduser(str(home)))
        if not os.path.isdir(path):
            raise InputError('%s does not exist or is not a folder' % path, 'homes')
        targets.append((None, path, path_controller(path)))
    if not users and not homes:
        targets = [(name, home, owner_by_name(name, 'users')) for name, home in firefox.regular_users(min_uid)]
    seen, unique = set(), []
    for target in targets:  # a home named twice (a user and the same folder in homes) is visited once
        if os.path.realpath(target[1]) not in seen:
            seen.add(os.path.realpath(target[1]))
            unique.append(target)
    return unique


def _complete_identities(results: list, plan: Plan) -> set:
    """The identities whose current certificate every store of the host that carries them holds (present, or
    imported and verified); none when a store or a home could not be read. A store of one identity (an Apple
    profile file, ``identity`` in its result) counts for that identity only."""
    if any(r.get('exists') is None for r in results):
        return set()
    names = {w.identity for w in plan.identities}
    for r in results:
        carried = {r['identity']} if r.get('identity') else set(names)
        names -= carried - (set(r['present']) | set(r['imported']))
    return names


def _release_predicted(results: list, releasable: set) -> None:
    """Check mode: the waiting removals of complete identities are what the second pass would remove."""
    for r in results:
        going = [d for d in r['deferred'] if d.get('identity') in releasable]
        if going:
            r['removed'] += going
            r['deferred'] = [d for d in r['deferred'] if d not in going]
            r['changed'] = True


def _merge_release(results: list, again: list) -> None:
    """The second pass's removals into the first pass's store results (matched by store and path)."""
    second = {(r['store'], r['path']): r for r in again}
    for r in results:
        other = second.get((r['store'], r['path']))
        if other is None:
            continue
        r['removed'] += other['removed']
        r['deferred'] = other['deferred']
        r['problems'] += [p for p in other['problems'] if p not in r['problems']]
        r['changed'] = r['changed'] or other['changed']
        if 'diff' in r and 'diff' in other:
            r['diff']['after'] = other['diff']['after']


def stores_of(system: str, stores, skip_unavailable: bool = False) -> tuple:
    """(stores to visit, stores skipped): the system's own by default; a store unknown is refused, and so is one
    this system does not have, unless ``skip_unavailable`` (a fleet's identity naming stores of every system)."""
    defaults = STORES_BY_SYSTEM.get(system, STORES)
    available = defaults + EVERYWHERE
    stores = list(stores or defaults)
    unknown = [s for s in stores if s not in ALL_STORES]
    if unknown:
        raise InputError('unknown store %s (use %s)' % (', '.join(unknown), ', '.join(available)), 'stores')
    elsewhere = [s for s in stores if s not in available]
    if elsewhere and not skip_unavailable:
        raise InputError('store %s does not exist on %s (use %s)' % (', '.join(elsewhere), system,
                                                                     ', '.join(available)), 'stores')
    return [s for s in stores if s in available], elsewhere


def reconcile_host(*, identities, ca_certificate, revoked_serials=None, users=None, homes=None, stores=None,
                   ca_nickname=None, ca_trust='T,,', db_password=None, create_db=True,
                   firefox_certificate_selection='unmanaged', check_mode=False, runner=None,
                   certutil='certutil', pk12util='pk12util', system=None, keychain=None,
                   skip_unavailable=False) -> dict:
    """Reconcile every store of the chosen homes. Inputs are checked first (an InputError changes nothing); a
    failure inside one store is that store's problem, and the other stores are still done.

    ``system`` (default: this host's) chooses the stores there are: firefox and chromium on Linux, firefox and
    keychain on macOS (Darwin), where ``keychain`` is a reconcile_keychain.KeychainOptions (None: the defaults);
    ``apple_profile`` (the profile files of identities with ``apple_profile_dest``) everywhere. With
    ``skip_unavailable``, stores this system does not have are left out and named in ``skipped_stores``.
    """
    system = system or platform.system()
    stores, skipped = stores_of(system, stores, skip_unavailable)
    home_stores = [s for s in stores if s not in EVERYWHERE]
    plan = build_plan(identities=identities, ca_certificate=ca_certificate, revoked_serials=revoked_serials,
                      ca_nickname=ca_nickname, ca_trust=ca_trust, db_password=db_password, create_db=create_db,
                      firefox_selection=firefox_certificate_selection)
    targets = _targets(users, homes, min_uid=500 if system == 'Darwin' else 1000) if home_stores else []
    if 'keychain' in stores:
        from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile_keychain import (
            KeychainOptions, check_keychain_targets,
        )
        keychain = keychain or KeychainOptions()
        check_keychain_targets(keychain, targets)

    def visit(pass_plan) -> list:
        results = []
        for user, home, owner in targets:
            try:
                found = run_as(owner, _user_stores, user=user, home=home, stores=home_stores, plan=pass_plan,
                               check_mode=check_mode, runner=runner, certutil=certutil, pk12util=pk12util,
                               system=system, keychain=keychain)
            except CertfleetError as exc:
                found = [dict(_failed('home', home, exc.message), user=user)]
            for outcome in found:
                outcome['owner'] = None if owner is None else owner.name
            results.extend(found)
        return results

    # The host's rule: an identity's older certificates leave its stores only once EVERY store holds its current
    # one, so a host where one import fails keeps the old certificate everywhere. First pass: imports, the CA and
    # the revoked certificates; second pass, only when something waits: the older certificates of the identities
    # now complete on the whole host.
    results = visit(replace(plan, release=frozenset()))
    if 'apple_profile' in stores:  # a profile file is rewritten whole: nothing in it waits for a second pass
        results += reconcile_profiles(plan=plan, check_mode=check_mode)
    complete = _complete_identities(results, plan)
    releasable = {d['identity'] for r in results for d in r['deferred'] if d.get('identity') in complete}
    if releasable and check_mode:
        _release_predicted(results, releasable)
    elif releasable:
        again = visit(replace(plan, release=frozenset(releasable), identities=[
            replace(w, pkcs12=None, pkcs12_password=None) for w in plan.identities]))
        _merge_release(results, again)
    return dict(_host_result(results), skipped_stores=skipped)


def _host_result(results: list) -> dict:
    """The module's result from every store's: the stores, their counts, the diffs of the changed ones."""
    diffs = [r.pop('diff') for r in results if 'diff' in r]
    summary = {'stores': len(results),
               'changed': sum(1 for r in results if r['changed']),
               'with_problems': sum(1 for r in results if r['problems'])}
    for key in ('present', 'imported', 'removed', 'deferred', 'foreign', 'unclaimed', 'missing', 'problems'):
        summary[key] = sum(len(r[key]) for r in results)
    return {'changed': any(r['changed'] for r in results), 'stores': results, 'summary': summary,
            'diff': [d for d in diffs if d['before'] != d['after']]}
