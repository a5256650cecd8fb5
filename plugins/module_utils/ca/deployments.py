# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which host carries which certificate, as the deploy role records it after verifying (private module_utils)."""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import validate_identity
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, NotFoundError
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import normalize_serial


def record_deployments(ca, deployments: list, state: str = 'present', check_mode: bool = False) -> dict:
    """Record (present) or forget (absent) that hosts carry identities' certificates."""
    if state not in ('present', 'absent'):
        raise InputError('must be present or absent', 'state')
    entries = _entries(deployments, state)
    now = ca.clock()
    changed, refused = [], []
    store = ca.store
    with (store.read() if check_mode else store.write()):
        for identity, host, serial, stores in entries:
            before = [d for d in store.deployments([identity]) if d['host'] == host]
            if state == 'absent':
                if before and (check_mode or store.remove_deployment(identity, host)):
                    changed.append({'identity': identity, 'host': host, 'serial': before[0]['serial']})
                continue
            record = store.get(serial)
            if record is None or record.identity != identity:
                raise NotFoundError('certificate %s was not issued to identity %r' % (serial, identity), 'deployments')
            if record.status != 'valid' or not record.is_current:
                refused.append({'identity': identity, 'host': host, 'serial': serial,
                                'msg': 'not the current certificate of %s' % identity, 'reason_code': 'not_current'})
                continue
            if before and before[0]['serial'] == serial and before[0]['stores'] == sorted(stores):
                continue
            if not check_mode:
                store.record_deployment(identity, host, serial, stores, now)
                store.append_audit(now, 'deploy', identity, [serial], 'recorded',
                                   {'host': host, 'stores': sorted(stores)})
            changed.append({'identity': identity, 'host': host, 'serial': serial})
    return {'changed': bool(changed), 'recorded' if state == 'present' else 'removed': changed, 'refused': refused}


def _entries(deployments, state: str) -> list:
    """[(identity, host, serial or None, stores)], every entry validated before anything is written."""
    if not isinstance(deployments, list) or not deployments:
        raise InputError('expected a non-empty list of dicts with identity, host, serial and stores', 'deployments')
    entries = []
    for index, entry in enumerate(deployments):
        field = 'deployments[%d]' % index
        if not isinstance(entry, dict):
            raise InputError('expected a dict with identity, host, serial and stores', field)
        identity = validate_identity(entry.get('identity'), field + '.identity')
        host = validate_identity(entry.get('host'), field + '.host')
        serial = normalize_serial(entry.get('serial'), field + '.serial') if state == 'present' else None
        stores = entry.get('stores') or []
        if not isinstance(stores, list):
            raise InputError('expected a list of store names', field + '.stores')
        entries.append((identity, host, serial, [str(x) for x in stores]))
    return entries
