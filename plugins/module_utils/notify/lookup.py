# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The facts of one event notice, read from the CA store and its audit log (private module_utils).

The certificate is named by ``pickup_id``, ``serial`` or ``identity`` (its current certificate; for
``revocation_complete`` its last revoked one). Errors name the option that leads nowhere.
"""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, NotFoundError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.notify.events import record_facts
from ansible_collections.certfleet.pki.plugins.module_utils.notify.templates import handback_text


def event_facts(ca, kind: str, *, identity=None, serial=None, pickup_id=None, url=None) -> dict:
    """Facts for ``kind`` (not ``expiry_warning``, which has its own path). Reads only."""
    now = ca.clock()
    with ca.store.read():
        pickup = _pickup(ca.store, pickup_id)
        record = _record(ca.store, kind, identity, pickup.serial if pickup else serial)
        facts = record_facts(ca, record, now)
        if kind == 'pickup_ready':
            facts.update(_pickup_ready(ca.store, record, pickup, url, now))
        elif kind == 'download_complete':
            facts.update(_last_audit(ca.store, record, 'pickup_download', pickup_id, 'was not downloaded yet'))
            if pickup is not None and pickup.renewal_of:
                facts.update(old_serial=pickup.renewal_of, handback=handback_text(record.identity, pickup.renewal_of))
        elif kind == 'replacement_complete':
            facts.update(_last_audit(ca.store, record, 'pickup_confirm', pickup_id,
                                     'has no confirmed replacement'))
        elif kind == 'revocation_complete':
            if record.status != 'revoked':
                raise InputError('certificate %s of %r is not revoked' % (record.serial, record.identity),
                                 'serial' if serial else 'identity')
            facts.update(time=to_iso(record.revoked_at), reason=record.revocation_reason)
    return facts


def _pickup(store, pickup_id):
    if pickup_id is None:
        return None
    pickup = store.get_pickup(str(pickup_id))
    if pickup is None:
        raise NotFoundError('no pickup %r' % pickup_id, 'pickup_id')
    return pickup


def _record(store, kind: str, identity, serial):
    if serial:
        record = store.get(str(serial))
        if record is None:
            raise NotFoundError('no certificate with serial %s' % serial, 'serial')
        return record
    if not identity:
        raise InputError('give identity, serial or pickup_id', 'identity')
    if kind == 'revocation_complete':
        revoked = [r for r in store.find(identity=identity) if r.status == 'revoked']
        if not revoked:
            raise NotFoundError('identity %r has no revoked certificate' % identity, 'identity')
        return max(revoked, key=lambda r: (r.revoked_at, r.serial))
    record = store.current(identity)
    if record is None:
        raise NotFoundError('identity %r has no current certificate' % identity, 'identity')
    return record


def _pickup_ready(store, record, pickup, url, now) -> dict:
    """The URL must be this pickup's (the module cannot recover it: the CA keeps only a hash of its secret)."""
    if pickup is None:
        open_ones = [p for p in store.find_pickups(serial=record.serial, open_only=True) if p.is_open(now)]
        if not open_ones:
            raise NotFoundError('certificate %s has no open pickup' % record.serial, 'pickup_id')
        pickup = open_ones[-1]
    if not url or '/p/%s.' % pickup.pickup_id not in str(url):
        raise InputError('must be the retrieval URL of pickup %s (the url result of client_certificate_pickup)'
                         % pickup.pickup_id, 'url')
    if not pickup.is_open(now):
        raise InputError('pickup %s is closed' % pickup.pickup_id, 'pickup_id')
    return {'url': str(url), 'window_ends_at': to_iso(pickup.window_ends_at()), 'format': pickup.format,
            'pickup_id': pickup.pickup_id}


def _last_audit(store, record, action: str, pickup_id, missing: str) -> dict:
    """Time, client and the rest from the last audit entry of ``action`` for the certificate."""
    entries = [e for e in store.audit_entries(identity=record.identity)
               if e['action'] == action and e['serials'] and e['serials'][0] == record.serial
               and (pickup_id is None or e['detail'].get('pickup_id') == pickup_id)]
    if not entries:
        raise NotFoundError('certificate %s %s' % (record.serial, missing), 'pickup_id' if pickup_id else 'serial')
    entry = entries[-1]
    detail = entry['detail']
    return {'time': entry['at'], 'client': detail.get('client'), 'format': detail.get('format'),
            'confirmed_by': detail.get('confirmed_by'), 'pickup_id': detail.get('pickup_id'),
            'old_serial': entry['serials'][1] if len(entry['serials']) > 1 else None}
