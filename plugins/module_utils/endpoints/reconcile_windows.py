# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One call per Windows host: the certificate store ``Cert:\\<location>\\My`` put in the state the CA's record says,
decided on the controller with the same rules as the NSS stores (private module_utils).

The action plugin certfleet.pki.endpoint_reconcile reads the store through ansible.windows.win_powershell and writes
it through ansible.windows.win_certificate_store; everything in between is here and runs on the controller, so it
imports nothing of Windows. What a certificate is (present, superseded, expired, revoked, foreign, unclaimed) comes
from ``reconcile.classify`` and which removals may happen now from ``reconcile._screen_removals``: the rules are the
ones the NSS stores follow, not a copy of them.

The host rule of reconcile_host (older certificates leave only once every store of the host holds the current one)
is met within the store: it is the host's only store, so an identity's superseded and expired certificates leave in
the same run, after its current certificate is present, or imported and verified by a second read. An identity
whose import fails keeps its older certificates; revoked certificates of our CA leave regardless.

The store operations (read, import, trust, remove) are given by the caller as a ``WindowsStore``; they are the only
part that talks to the host.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass, field

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile import (
    Plan, _describe, _screen_removals, classify, verify_imports,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import certificate_serial, fingerprint

try:
    from cryptography import x509
except ImportError:
    pass

# Option value -> the store location's name in PowerShell and win_certificate_store (as roles/windows_store).
LOCATIONS = {'current_user': 'CurrentUser', 'local_machine': 'LocalMachine'}

# One read of the host: My of the store location (each certificate's DER, thumbprint, key, friendly name) and the
# thumbprints of Root of the CA's location. SupportsShouldProcess: win_powershell runs the script in check mode too
# (it only reads). Changed is false: a read changes nothing.
READ_SCRIPT = r'''[CmdletBinding(SupportsShouldProcess)]
param([string]$Location, [string]$CaLocation)
$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false
function Get-StoreCertificate([string]$Name, [string]$Where) {
    $store = [System.Security.Cryptography.X509Certificates.X509Store]::new($Name, $Where)
    $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadOnly)
    try { @($store.Certificates) } finally { $store.Close() }
}
$my = @(Get-StoreCertificate -Name 'My' -Where $Location | ForEach-Object {
    @{ RawData = [Convert]::ToBase64String($_.RawData); Thumbprint = $_.Thumbprint
       HasPrivateKey = $_.HasPrivateKey; FriendlyName = $_.FriendlyName }
})
$root = @(Get-StoreCertificate -Name 'Root' -Where $CaLocation | ForEach-Object { $_.Thumbprint })
$Ansible.Result = @{ my = $my; root = $root }
'''


@dataclass(eq=False)
class WindowsEntry:
    """A certificate of the store, with the attributes ``classify`` and ``_screen_removals`` read."""
    certificate: object = field(repr=False)
    thumbprint: str
    fingerprint_sha256: str
    serial: str
    has_key: bool
    nickname: str  # the friendly name; Windows has no nicknames
    trust: str = ''
    # Each certificate of a Windows store has its own key container (an import makes a new one), so removing one
    # never takes the key of another: its key id is its own thumbprint, which no kept certificate shares.
    key_id: str = ''

    def describe(self, **extra) -> dict:
        return _describe(self, thumbprint=self.thumbprint, **extra)


class WindowsStore:
    """What the caller does on the host. ``read`` returns ``{'my': [...], 'root': [...]}`` or raises CertfleetError;
    the writes return None when done and the reason otherwise."""

    def read(self) -> dict:
        raise NotImplementedError

    def import_identity(self, wanted) -> str | None:
        raise NotImplementedError

    def trust_ca(self) -> str | None:
        raise NotImplementedError

    def remove(self, entry: WindowsEntry) -> str | None:
        raise NotImplementedError


@dataclass
class WindowsWork:
    """What the store needs, decided from one read: predicted (check mode) or applied."""
    result: dict
    before: list
    imports: list
    removals: list
    ca_missing: bool
    ca_thumbprint: str

    def needed(self) -> bool:
        return bool(self.imports or self.removals or self.ca_missing)


def store_path(location: str, name: str = 'My') -> str:
    return 'Cert:\\%s\\%s' % (LOCATIONS[location], name)


def parse_listing(items) -> tuple:
    """(entries, problems) from the store listing of the read script; an item that is not a certificate is a
    problem, not a crash (and is never removed)."""
    if isinstance(items, dict):  # PowerShell may hand a list of one back as the item itself
        items = [items]
    entries, problems = [], []
    for index, item in enumerate(items or []):
        try:
            certificate = x509.load_der_x509_certificate(base64.b64decode(item['RawData'], validate=True))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            problems.append('entry %d of the store listing is not a certificate (%s); left alone' % (index, exc))
            continue
        thumbprint = fingerprint(certificate, 'sha1')
        if str(item.get('Thumbprint') or '').upper() != thumbprint:
            problems.append('entry %d of the store listing has the thumbprint %s but its DER hashes to %s; left alone'
                            % (index, item.get('Thumbprint'), thumbprint))
            continue
        entries.append(WindowsEntry(certificate=certificate, thumbprint=thumbprint,
                                    fingerprint_sha256=fingerprint(certificate), serial=certificate_serial(certificate),
                                    has_key=bool(item.get('HasPrivateKey')), nickname=item.get('FriendlyName') or '',
                                    key_id=thumbprint))
    return entries, problems


def root_thumbprints(items) -> set:
    if isinstance(items, str):
        items = [items]
    return {str(t).upper() for t in items or []}


def new_result(location: str, ca_location: str) -> dict:
    """A store result in the shape of the NSS stores' (reconcile.reconcile_store), plus where the CA is trusted."""
    return {'store': 'windows', 'path': store_path(location), 'location': location,
            'ca_store': store_path(ca_location, 'Root'), 'exists': True, 'created': False, 'present': [],
            'imported': [], 'removed': [], 'deferred': [], 'foreign': [], 'unclaimed': [], 'missing': [],
            'ca_changed': None, 'preferences_changed': False, 'changed': False, 'problems': []}


def decide_store(*, listing: dict, plan: Plan, location: str, ca_location: str, now: datetime.datetime) -> WindowsWork:
    """Present, missing, imports and removals (with the NSS stores' reasons and safety rules) from one read."""
    result = new_result(location, ca_location)
    before, result['problems'] = parse_listing(listing.get('my'))
    sorted_out = classify(before, plan, plan.ca, now)
    imports = []
    for wanted in plan.identities:
        entry = sorted_out['present'].get(wanted.identity)
        if entry is not None and entry.has_key:
            result['present'].append(wanted.identity)
        elif wanted.pkcs12 is None:
            result['missing'].append(wanted.identity)
        else:  # also a copy without its key: win_certificate_store imports the key onto it
            imports.append(wanted)
    result['foreign'] = [e.describe() for e in sorted_out['foreign']]
    result['unclaimed'] = [e.describe() for e in sorted_out['unclaimed']]
    # The store is the host's only one: no release set, an identity's older certificates may go once its current
    # one is present or being imported (and _apply still keeps them when that import fails).
    removals = _screen_removals(result, before, sorted_out['remove'], imports, None)
    _add_thumbprints(result['deferred'], before)
    ca_thumbprint = fingerprint(plan.ca, 'sha1')
    ca_missing = ca_thumbprint not in root_thumbprints(listing.get('root'))
    return WindowsWork(result=result, before=before, imports=imports, removals=removals, ca_missing=ca_missing,
                       ca_thumbprint=ca_thumbprint)


def _add_thumbprints(described: list, entries: list) -> None:
    """Windows addresses certificates by thumbprint: descriptions made by the shared code get theirs."""
    by_fingerprint = {e.fingerprint_sha256: e.thumbprint for e in entries}
    for item in described:
        item.setdefault('thumbprint', by_fingerprint.get(item['fingerprint_sha256']))


def utc_now() -> datetime.datetime:
    """The clock expiry is judged by (one place, so tests can move it)."""
    return datetime.datetime.now(datetime.timezone.utc)


def listing_lines(entries: list) -> list:
    return sorted('%s %s serial=%s sha256=%s%s' % (e.thumbprint, e.nickname or '-', e.serial,
                                                   e.fingerprint_sha256[:16], ' (key)' if e.has_key else '')
                  for e in entries)


def reconcile_windows_store(*, plan: Plan, store: WindowsStore, location: str = 'current_user',
                            ca_location: str = 'local_machine', check_mode: bool = False, now=None) -> dict:
    """Read, decide, then predict (check mode) or apply and verify; the host's result, as reconcile_host's."""
    try:
        listing = store.read()
    except CertfleetError as exc:
        result = new_result(location, ca_location)
        result.update(exists=None, problems=['reading %s: %s' % (result['path'], exc.message)])
        return host_result(result, None)
    work = decide_store(listing=listing, plan=plan, location=location, ca_location=ca_location, now=now or utc_now())
    after = listing_lines(work.before)
    if work.needed() and check_mode:
        after = _predict(work)
    elif work.needed():
        after = _apply(work, store)
    result = work.result
    result['changed'] = bool(result['imported'] or result['removed'] or result['ca_changed'])
    header = '%s (%s)' % (result['path'], result['ca_store'])
    diff = {'before_header': header, 'after_header': header,
            'before': '\n'.join(listing_lines(work.before)) + '\n', 'after': '\n'.join(after) + '\n'}
    return host_result(result, diff)


def _predict(work: WindowsWork) -> list:
    """Check mode: what _apply would do, and the listing it would leave (imports marked as such)."""
    result = work.result
    result['imported'] = [w.identity for w in work.imports]
    result['removed'] = [entry.describe(identity=who, reason=why) for entry, who, why in work.removals]
    result['ca_changed'] = 'add' if work.ca_missing else None
    going = [r[0] for r in work.removals]
    return listing_lines([e for e in work.before if e not in going]) + [
        '(import) %s sha256=%s' % (w.identity, w.fingerprint_sha256[:16]) for w in work.imports]


def _apply(work: WindowsWork, store: WindowsStore) -> list:
    """Imports and the CA first, verified by a second read; then the removals, verified by a third. Each failure
    is a problem of the store; returns the listing of the last read."""
    result = work.result
    failed = set()
    for wanted in work.imports:
        error = store.import_identity(wanted)
        if error is not None:
            failed.add(wanted.identity)
            result['problems'].append('importing %s: %s' % (wanted.identity, error))
    ca_error = store.trust_ca() if work.ca_missing else None
    if ca_error is not None:
        result['problems'].append('trusting the CA in %s: %s' % (result['ca_store'], ca_error))
    try:
        middle, roots = _read_again(store, result)
    except CertfleetError as exc:
        # Nothing can be verified: no removal, every import counted as missing.
        result['problems'].append('reading the store after the imports: %s' % exc.message)
        result['missing'].extend(w.identity for w in work.imports)
        return listing_lines(work.before)
    _verify_imports(work, middle, failed)
    if work.ca_missing and ca_error is None:
        if work.ca_thumbprint in roots:
            result['ca_changed'] = 'add'
        else:
            result['problems'].append('win_certificate_store reported success but %s does not hold the CA'
                                      % result['ca_store'])
    if not _remove_all(work, store, failed):
        return listing_lines(middle)
    try:
        after = _read_again(store, result)[0]
    except CertfleetError as exc:
        result['problems'].append('reading the store after the removals: %s' % exc.message)
        return listing_lines(middle)
    left = {e.thumbprint for e in after}
    for gone in result['removed']:
        if gone['thumbprint'] in left:
            result['problems'].append('win_certificate_store reported success but %s (serial %s) is still there'
                                      % (gone['thumbprint'], gone['serial']))
    return listing_lines(after)


def _read_again(store: WindowsStore, result: dict) -> tuple:
    listing = store.read()
    entries, problems = parse_listing(listing.get('my'))
    result['problems'] += [p for p in problems if p not in result['problems']]
    return entries, root_thumbprints(listing.get('root'))


def _verify_imports(work: WindowsWork, middle: list, failed: set) -> None:
    """An import counts once the store holds the certificate, by SHA-256 fingerprint, with its key."""
    result = work.result
    verify_imports(result, work.imports, middle, failed, 'win_certificate_store', result['path'])


def _remove_all(work: WindowsWork, store: WindowsStore, failed: set) -> bool:
    """Each decided removal by its thumbprint; an identity whose import failed keeps its older certificates."""
    result = work.result
    removed_any = False
    for entry, who, why in work.removals:
        if who in failed and why != 'revoked':
            result['deferred'].append(entry.describe(identity=who, reason=why))
            continue
        error = store.remove(entry)
        if error is None:
            removed_any = True
            result['removed'].append(entry.describe(identity=who, reason=why))
        else:
            result['problems'].append('removing %s (serial %s): %s' % (entry.thumbprint, entry.serial, error))
    return removed_any


def host_result(result: dict, diff: dict | None) -> dict:
    """The host's result in the shape reconcile_host returns: one store."""
    summary = {'stores': 1, 'changed': int(result['changed']), 'with_problems': int(bool(result['problems']))}
    for key in ('present', 'imported', 'removed', 'deferred', 'foreign', 'unclaimed', 'missing', 'problems'):
        summary[key] = len(result[key])
    return {'changed': result['changed'], 'stores': [result], 'summary': summary,
            'diff': [diff] if diff is not None and diff['before'] != diff['after'] else []}
