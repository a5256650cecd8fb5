# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Revocation and CRL publication of a ManagedCA (private module_utils)."""

from __future__ import annotations

import datetime

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
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import parse_positive_days, to_iso
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
        serial = normalize_serial(serial)
        if which is not None:
            raise InputError('applies to identity, not to serial', 'which')
    else:
        identity = validate_identity(identity)
        which = which or 'superseded'
        if which not in WHICH:
            raise InputError('unknown value %r (use superseded, current or all)' % which, 'which')
    now = ca.clock()
    with ca.store.read():
        targets = _valid_targets(ca.store, serial, identity, which)
    if not targets or check_mode:
        already = [serial] if serial is not None and not targets else []
        return {'changed': bool(targets), 'revoked': [r.serial for r in targets], 'already_revoked': already,
                'reason': reason, 'certificates': [dict(r.to_result(now), status='revoked') for r in targets]}
    with ca.store.write():
        targets = _valid_targets(ca.store, serial, identity, which)  # re-read under the write lock
        commit_revoked(ca.store, targets, now, reason)
        revoked = [ca.store.get(r.serial) for r in targets]
    return {'changed': bool(targets), 'revoked': [r.serial for r in targets], 'already_revoked': [],
            'reason': reason, 'certificates': [r.to_result(now) for r in revoked]}


def _valid_targets(store, serial, identity, which) -> list:
    if serial is not None:
        record = store.get(serial)
        if record is None:
            raise NotFoundError('no certificate with serial %s was issued by this CA' % serial, 'serial')
        records = [record]
    else:
        records = store.find(identity=identity)
        if not records:
            raise NotFoundError('no certificate was issued to identity %r' % identity, 'identity')
        if which == 'superseded':
            records = [r for r in records if r.pending_revocation]
        elif which == 'current':
            records = [r for r in records if r.is_current]
    return [r for r in records if r.status == 'valid']


# -- CRL ------------------------------------------------------------------------------------------------------------

def publish_crl(ca, *, dest=None, format='pem', next_update_days=7, check_mode=False) -> dict:
    """Sign a new CRL when revocations changed or the next update nears; copy it to ``dest``."""
    if format not in ('pem', 'der'):
        raise InputError('unknown format %r (use pem or der)' % format, 'format')
    days = parse_positive_days(next_update_days, 'next_update_days')
    if dest:
        check_dest_folder(dest)
    now = ca.clock()
    ca.authority.require_valid(now)
    with ca.directory.lock():
        with ca.store.read():
            ca.store.check_integrity()  # a CRL from a damaged store could lack revocations
            entries = ca.store.revoked_entries()
            state = ca.store.get_meta('crl', {}) or {}
        published = _published_crl(ca)
        _refuse_unrevoking(ca, published, entries)
        digest = crl_lib.revocation_digest(entries)
        reasons = _crl_reasons(published, state, digest, days, now)
        # `published is not None`, not `if published`: a CRL object with no entries is falsy (len() == 0).
        published_number = (crl_lib.crl_number(published) or 0) if published is not None else 0
        number = max(int(state.get('number', 0)), published_number) + (1 if reasons else 0)
        crl = published
        if reasons:
            crl = None if check_mode else _sign_crl(ca, entries, number=number, digest=digest, days=days,
                                                    reasons=reasons, now=now)
        dest_changed = bool(dest) and _copy_crl(crl, dest, format, check_mode)
    return {
        'changed': bool(reasons) or dest_changed, 'regenerated': bool(reasons), 'reasons': reasons,
        'crl_number': number, 'revoked_count': len(entries), 'dest': dest, 'format': format,
        'this_update': to_iso(crl.last_update_utc) if crl is not None else None,
        'next_update': to_iso(crl.next_update_utc) if crl is not None else None,
        # A shared store keeps the CRL in the store: dest is then the one file.
        'crl_pem_path': ca.directory.file(CRL_PEM_FILE) if ca.directory.ca_path else None,
        'crl_der_path': ca.directory.file(CRL_DER_FILE) if ca.directory.ca_path else None,
    }


def _refuse_unrevoking(ca, published, entries) -> None:
    if published is None:
        return
    missing = crl_lib.crl_serials(published) - {e.serial for e in entries}
    if missing:
        raise StoreError('the published CRL %s lists %d revoked serial(s) the store does not know as revoked (%s); '
                         'the store may have been restored from an old backup. Refusing to publish a CRL that would '
                         'un-revoke them' % (ca.directory.file(CRL_DER_FILE), len(missing),
                                             ', '.join(sorted(missing)[:5])), ca.directory.field)


def _crl_reasons(published, state: dict, digest: str, days: int, now) -> list:
    if published is None:
        return ['no CRL published yet']
    reasons = []
    if state.get('digest') != digest:
        reasons.append('revocations changed')
    next_update = published.next_update_utc
    this_update = published.last_update_utc
    if next_update is None or now >= next_update - (next_update - this_update) / 2:
        reasons.append('next update is near')
    if state.get('next_update_days') != days:
        reasons.append('next_update_days changed')
    return reasons


def _sign_crl(ca, entries, *, number: int, digest: str, days: int, reasons: list, now):
    crl = crl_lib.build_crl(ca_certificate=ca.authority.certificate, ca_key=ca.authority.key, entries=entries,
                            number=number, this_update=now - BACKDATE, next_update=now + datetime.timedelta(days=days))
    if len(crl) != len(entries):
        raise StoreError('the CRL would list %d entries but the store has %d revocations' % (len(crl), len(entries)))
    ca.directory.write_public(CRL_DER_FILE, crl.public_bytes(serialization.Encoding.DER))
    ca.directory.write_public(CRL_PEM_FILE, crl.public_bytes(serialization.Encoding.PEM))
    with ca.store.write():
        ca.store.set_meta('crl', {'number': number, 'digest': digest, 'this_update': to_iso(crl.last_update_utc),
                                  'next_update': to_iso(crl.next_update_utc), 'next_update_days': days})
        ca.store.append_audit(now, 'crl_publish', None, [e.serial for e in entries], 'published',
                              {'crl_number': number, 'reasons': reasons})
    return crl


def _copy_crl(crl, dest: str, format: str, check_mode: bool) -> bool:
    """Whether ``dest`` changes (always, in check mode, when the CRL would be new)."""
    if crl is None:
        return True
    encoding = serialization.Encoding.PEM if format == 'pem' else serialization.Encoding.DER
    data = crl.public_bytes(encoding)
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
