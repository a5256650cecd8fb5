# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Revocation and CRL publication of a ManagedCA (private module_utils)."""

from __future__ import annotations

import datetime
import os

from ansible_collections.certfleet.pki.plugins.module_utils.ca import crl as crl_lib
from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import CRL_DER_FILE, CRL_PEM_FILE
from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import validate_identity, validate_reason
from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import commit_revoked
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import BACKDATE
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    InputError, NotFoundError, StoreError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    atomic_write, check_dest_folder, file_mode, read_bytes,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import from_iso, parse_positive_days, to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import normalize_serial

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    pass

WHICH = ('superseded', 'current', 'all')


def revoke(ca, *, serial=None, identity=None, which=None, reason='unspecified', check_mode=False) -> dict:
    """Revoke one certificate by serial, or an identity's superseded, current or all valid certificates."""
    reason = validate_reason(reason)
    if (serial is None) == (identity is None):
        raise InputError('give either serial or identity (with which)', 'serial' if serial else 'identity')
    if serial is not None:
        if which is not None:
            raise InputError('applies to identity, not to serial', 'which')
        items = [_item('serial', serial=serial)]
    else:
        items = [_item('identity', identity=identity, which=_which(which))]
    return _revoke_items(ca, items, reason, check_mode)


def revoke_many(ca, *, serials=None, identities=None, which=None, reason='unspecified', check_mode=False) -> dict:
    """Revoke many certificates in one transaction: each serial of ``serials``, and the certificates of each
    identity of ``identities`` chosen by ``which`` (empty lists: nothing to do). Every item is validated and looked
    up before anything is revoked; a bad item anywhere fails the whole call, naming its field (``serials[2]``), and
    revokes nothing."""
    reason = validate_reason(reason)
    if serials is None and identities is None:
        raise InputError('give serials, identities or both (empty lists revoke nothing)', 'serials')
    if which is not None and identities is None:
        raise InputError('applies to identities, not to serials', 'which')
    which = _which(which)
    items = [_item('serials[%d]' % index, serial=value) for index, value in enumerate(_as_list(serials, 'serials'))]
    items += [_item('identities[%d]' % index, identity=value, which=which)
              for index, value in enumerate(_as_list(identities, 'identities'))]
    return _revoke_items(ca, items, reason, check_mode)


def _as_list(value, field: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise InputError('must be a list', field)
    return list(value)


def _which(which) -> str:
    which = which or 'superseded'
    if which not in WHICH:
        raise InputError('unknown value %r (use superseded, current or all)' % which, 'which')
    return which


def _item(field: str, *, serial=None, identity=None, which=None) -> dict:
    """One thing to revoke, validated: a serial (``which`` None), or an identity with its ``which``; ``field``
    names it in errors."""
    if which is None:
        return {'field': field, 'serial': normalize_serial(serial, field), 'identity': None, 'which': None}
    return {'field': field, 'serial': None, 'identity': validate_identity(identity, field), 'which': which}


def _revoke_items(ca, items: list, reason: str, check_mode: bool) -> dict:
    """The one revocation path, for one item or many: decide every item from one snapshot, then revoke all
    targets in one write transaction that decides again under the lock."""
    now = ca.clock()
    with ca.store.read():
        targets, already = _decide_all(ca.store, items)
    if not targets or check_mode:
        return {'changed': bool(targets), 'revoked': [r.serial for r in targets], 'already_revoked': already,
                'reason': reason, 'certificates': [dict(r.to_result(now), status='revoked') for r in targets]}
    with ca.store.write():
        targets, already = _decide_all(ca.store, items)  # re-read under the write lock
        commit_revoked(ca.store, targets, now, reason)
        revoked = [ca.store.get(r.serial) for r in targets]
    return {'changed': bool(targets), 'revoked': [r.serial for r in targets], 'already_revoked': already,
            'reason': reason, 'certificates': [r.to_result(now) for r in revoked]}


def _decide_all(store, items: list) -> tuple:
    """(records to revoke, without repeats; serials named by an item that were already revoked)."""
    targets, already, seen = [], [], set()
    for item in items:
        code, records = _decide(store, item)
        if code == ALREADY_REVOKED:
            already += [r.serial for r in records if r.serial not in already]
        for record in records if code == REVOKE else []:
            if record.serial not in seen:
                seen.add(record.serial)
                targets.append(record)
    return targets, already


# What one item comes to: its valid certificates are revoked, it names a certificate that is already revoked, or
# the identity has no valid certificate that ``which`` selects.
REVOKE, ALREADY_REVOKED, NOTHING_SELECTED = 'revoke', 'already_revoked', 'nothing_selected'


def _decide(store, item: dict) -> tuple:
    """(code, records) for one item: the single rule of which certificates a serial or an identity means."""
    field = item['field']
    if item['serial'] is not None:
        record = store.get(item['serial'])
        if record is None:
            raise NotFoundError('no certificate with serial %s was issued by this CA' % item['serial'], field)
        return (REVOKE, [record]) if record.status == 'valid' else (ALREADY_REVOKED, [record])
    records = store.find(identity=item['identity'])
    if not records:
        raise NotFoundError('no certificate was issued to identity %r' % item['identity'], field)
    if item['which'] == 'superseded':
        records = [r for r in records if r.pending_revocation]
    elif item['which'] == 'current':
        records = [r for r in records if r.is_current]
    valid = [r for r in records if r.status == 'valid']
    return (REVOKE, valid) if valid else (NOTHING_SELECTED, [])


# -- CRL ------------------------------------------------------------------------------------------------------------

def publish_crl(ca, *, dest=None, format='pem', next_update_days=7, check_mode=False) -> dict:
    """Sign a new CRL when revocations changed or the next update nears; copy it to ``dest``.

    With nothing changed the cost does not grow with the revocations: the store's revocation generation and the
    published files' identity (the stat the store recorded when it published them) show that the files on disk are
    the CRL this store published at this generation, so neither the list nor the CRL is read. When the record does not
    match (the store restored from a backup, the files replaced), the full check runs: the published CRL is parsed and
    a store lacking revocations it lists is refused.
    """
    if format not in ('pem', 'der'):
        raise InputError('unknown format %r (use pem or der)' % format, 'format')
    days = parse_positive_days(next_update_days, 'next_update_days')
    if dest:
        check_dest_folder(dest)
    now = ca.clock()
    ca.authority.require_valid(now)
    with ca.directory.lock():
        with ca.store.read():
            state = ca.store.get_meta('crl', {}) or {}
            generation = ca.store.revocation_generation()
        recorded = _matches_record(ca, state)
        if (recorded and state.get('generation') == generation and not _time_reasons(state, days, now)
                and not _dest_differs(ca, dest, format)):
            return _unchanged_result(ca, state, dest, format, check_mode)
        return _publish_checked(ca, state if recorded else None, dest=dest, format=format, days=days,
                                check_mode=check_mode, now=now)


def _publish_checked(ca, recorded, *, dest, format, days, check_mode, now) -> dict:
    """The full path: read every revocation; parse the published CRL unless it is the one the store recorded."""
    with ca.store.read():
        ca.store.check_integrity()  # a CRL from a damaged store could lack revocations
        entries = ca.store.revoked_entries()
        generation = ca.store.revocation_generation()
        state = ca.store.get_meta('crl', {}) or {}
    if recorded is not None and (len(entries) < int(recorded['count']) or generation < int(recorded['generation'])):
        recorded = None  # fewer revocations than the recorded CRL listed: never trust the record then
    published = None
    if recorded is None:
        published = _published_crl(ca)
        _refuse_unrevoking(ca, published, entries, ca.directory.file(CRL_DER_FILE))
        times = _crl_times(published) if published is not None else None
        published_number = (crl_lib.crl_number(published) or 0) if published is not None else 0
    else:
        # The files are the CRL this store published (and revocations are never undone): no un-revoking possible.
        times = (from_iso(recorded['this_update']), from_iso(recorded['next_update']))
        published_number = int(recorded.get('number', 0))
    # What clients are served (dest) may come from a newer state than the store's, e.g. a restored database that
    # kept its own CRL: it is checked like the CA's own, and a new CRL is numbered above it.
    served = _dest_crl(ca, dest, format)
    _refuse_unrevoking(ca, served, entries, dest)
    served_number = (crl_lib.crl_number(served) or 0) if served is not None else 0
    digest = crl_lib.revocation_digest(entries)
    reasons = _crl_reasons(times, state, digest, days, now)
    if served_number > max(int(state.get('number', 0)), published_number) and not reasons:
        reasons.append('dest holds a CRL with a higher number')
    number = max(int(state.get('number', 0)), published_number, served_number) + (1 if reasons else 0)
    if reasons:
        data = None if check_mode else _sign_crl(ca, entries, number=number, digest=digest, days=days,
                                                 reasons=reasons, now=now, generation=generation)
        this_update = None if check_mode else data['this_update']  # check mode signs nothing
        next_update = None if check_mode else data['next_update']
    else:
        data = {'der': ca.directory.read(CRL_DER_FILE), 'pem': ca.directory.read(CRL_PEM_FILE)}
        this_update, next_update = to_iso(times[0]), to_iso(times[1])
    dest_changed = bool(dest) and _copy_crl(data and data[format], dest, format, check_mode)
    return _result(ca, changed=bool(reasons) or dest_changed, reasons=reasons, number=number, count=len(entries),
                   dest=dest, format=format, this_update=this_update, next_update=next_update)


def _unchanged_result(ca, state: dict, dest, format: str, check_mode: bool) -> dict:
    dest_changed = bool(dest) and _copy_crl(ca.directory.read(CRL_PEM_FILE if format == 'pem' else CRL_DER_FILE),
                                            dest, format, check_mode)
    return _result(ca, changed=dest_changed, reasons=[], number=int(state['number']), count=int(state['count']),
                   dest=dest, format=format, this_update=state['this_update'], next_update=state['next_update'])


def _result(ca, *, changed, reasons, number, count, dest, format, this_update, next_update) -> dict:
    return {
        'changed': changed, 'regenerated': bool(reasons), 'reasons': reasons,
        'crl_number': number, 'revoked_count': count, 'dest': dest, 'format': format,
        'this_update': this_update, 'next_update': next_update,
        # A shared store keeps the CRL in the store: dest is then the one file.
        'crl_pem_path': ca.directory.file(CRL_PEM_FILE) if ca.directory.ca_path else None,
        'crl_der_path': ca.directory.file(CRL_DER_FILE) if ca.directory.ca_path else None,
    }


def _matches_record(ca, state: dict) -> bool:
    """Whether both published files are exactly the ones this store recorded writing (O(1): two stat calls)."""
    files = state.get('files')
    if not isinstance(files, dict) or 'generation' not in state or 'count' not in state:
        return False
    return all(files.get(name) is not None and files.get(name) == ca.directory.object_identity(name)
               for name in (CRL_DER_FILE, CRL_PEM_FILE))


def _refuse_unrevoking(ca, published, entries, where: str) -> None:
    if published is None:
        return
    missing = crl_lib.crl_serials(published) - {e.serial for e in entries}
    if missing:
        raise StoreError('the published CRL %s lists %d revoked serial(s) the store does not know as revoked (%s); '
                         'the store may have been restored from an old backup. Refusing to publish a CRL that would '
                         'un-revoke them' % (where, len(missing), ', '.join(sorted(missing)[:5])),
                         ca.directory.field, code='crl_would_unrevoke')


def _dest_differs(ca, dest, format: str) -> bool:
    """Whether ``dest`` holds something other than the CA's current CRL (then the full check runs)."""
    if not dest or not os.path.exists(dest):
        return False
    return read_bytes(dest) != ca.directory.read(CRL_PEM_FILE if format == 'pem' else CRL_DER_FILE)


def _dest_crl(ca, dest, format: str):
    """The CRL at ``dest`` when it is one this CA signed, else None (a missing or foreign file is just replaced)."""
    data = read_bytes(dest) if dest and os.path.exists(dest) else None
    if not data:
        return None
    try:
        crl = x509.load_pem_x509_crl(data) if format == 'pem' else x509.load_der_x509_crl(data)
    except ValueError:
        return None
    if crl.issuer != ca.authority.certificate.subject:
        return None
    return crl if crl.is_signature_valid(ca.authority.certificate.public_key()) else None


def _crl_times(crl) -> tuple:
    return crl.last_update_utc, crl.next_update_utc


def _time_reasons(state: dict, days: int, now) -> list:
    """The reasons to sign again that are not about revocations, from the store's record of the published CRL."""
    times = (from_iso(state['this_update']), from_iso(state['next_update'])) if state.get('next_update') else None
    return _crl_reasons(times, state, state.get('digest'), days, now)


def _crl_reasons(times, state: dict, digest: str, days: int, now) -> list:
    if times is None:
        return ['no CRL published yet']
    reasons = []
    if state.get('digest') != digest:
        reasons.append('revocations changed')
    this_update, next_update = times
    if next_update is None or now >= next_update - (next_update - this_update) / 2:
        reasons.append('next update is near')
    if state.get('next_update_days') != days:
        reasons.append('next_update_days changed')
    return reasons


def _sign_crl(ca, entries, *, number: int, digest: str, days: int, reasons: list, now, generation: int) -> dict:
    crl = crl_lib.build_crl(ca_certificate=ca.authority.certificate, ca_key=ca.authority.key, entries=entries,
                            number=number, this_update=now - BACKDATE, next_update=now + datetime.timedelta(days=days))
    if len(crl) != len(entries):
        raise StoreError('the CRL would list %d entries but the store has %d revocations' % (len(crl), len(entries)))
    der = crl.public_bytes(serialization.Encoding.DER)
    data = {'der': der, 'pem': crl_lib.der_to_pem(der),
            'this_update': to_iso(crl.last_update_utc), 'next_update': to_iso(crl.next_update_utc)}
    ca.directory.write_public(CRL_DER_FILE, data['der'])
    ca.directory.write_public(CRL_PEM_FILE, data['pem'])
    files = {name: ca.directory.object_identity(name) for name in (CRL_DER_FILE, CRL_PEM_FILE)}
    with ca.store.write():
        # `generation` was read in the same snapshot as `entries`; a revocation since then raises the store's
        # generation, so the next publish sees the difference.
        ca.store.set_meta('crl', {'number': number, 'digest': digest, 'this_update': data['this_update'],
                                  'next_update': data['next_update'], 'next_update_days': days,
                                  'generation': generation, 'count': len(entries), 'files': files})
        ca.store.append_audit(now, 'crl_publish', None, [e.serial for e in entries], 'published',
                              {'crl_number': number, 'reasons': reasons})
    return data


def _copy_crl(data, dest: str, format: str, check_mode: bool) -> bool:
    """Whether ``dest`` changes (always, in check mode, when the CRL would be new: ``data`` is None)."""
    if data is None:
        return True
    if read_bytes(dest) == data and file_mode(dest) == 0o644:
        return False
    if not check_mode:
        atomic_write(dest, data, 0o644, field='dest')
    return True


def _published_crl(ca):
    data = ca.directory.read(CRL_DER_FILE)
    if data is None:
        return None
    try:
        crl = x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise StoreError('the published CRL %s cannot be read (%s)' % (ca.directory.file(CRL_DER_FILE), exc),
                         ca.directory.field)
    if not crl.is_signature_valid(ca.authority.certificate.public_key()):
        raise StoreError('the published CRL %s was not signed by this CA' % ca.directory.file(CRL_DER_FILE),
                         ca.directory.field)
    return crl
