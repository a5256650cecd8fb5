# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only questions to a ManagedCA: the inventory query and the fleet plan (private module_utils)."""

from __future__ import annotations

import datetime

from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import validate_identity
from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import RENEW_BEFORE, decide, superseded
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import parse_positive_days, to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import normalize_serial

STATUSES = ('valid', 'revoked', 'expired', 'pending_revocation')
# The client_certificate parameters plan mode reads from each request; other keys (hosts, stores, ...) are ignored.
PLAN_PARAMETERS = ('identity', 'subject', 'email', 'sans', 'profile', 'key_type', 'valid_days', 'renew_before',
                   'force')


def query(ca, *, identity=None, serial=None, status=None, expiring_within=None, current_only=False,
          include_certificate=False, include_deployments=False) -> dict:
    if status is not None and status not in STATUSES:
        raise InputError('unknown status %r (use %s)' % (status, ', '.join(STATUSES)), 'status')
    if identity is not None:
        identity = validate_identity(identity)
    serials = [normalize_serial(serial)] if serial is not None else None
    now = ca.clock()
    horizon = None
    if expiring_within is not None:
        days = parse_positive_days(expiring_within, 'expiring_within', allow_zero=True)
        horizon = now + datetime.timedelta(days=days)
    with ca.store.read():
        records = ca.store.find(identity=identity, serials=serials)
        # The identity's whole history, whatever the other filters select: the source of `superseded`.
        history = None
        if identity is not None:
            history = records if serials is None else ca.store.find(identity=identity)
        # Whole-store totals read every row: not on the per-identity path (deploy role, superseded), which stays
        # flat however many certificates the store holds.
        counts = ca.store.counts(now) if identity is None else None
        deployed = ca.store.deployments([identity] if identity is not None else None) if include_deployments else None
        audited = ca.store.host_audits() if include_deployments and identity is None else None
    selected = [r.to_result(now, include_pem=include_certificate) for r in records
                if _selected(r, now, status, horizon, current_only)]
    authority = ca.authority.summary()
    if include_certificate:
        authority['certificate'] = ca.authority.certificate_pem()
    result = {'changed': False, 'certificates': selected, 'count': len(selected), 'ca': authority}
    if counts is not None:
        result['totals'] = counts
    if history is not None:
        result['superseded'] = superseded(history, now)
    if deployed is not None:
        # Which host carries which serial, as the deploy role recorded it; the report and revoke playbooks read it.
        # Only the selected certificates' records when a filter narrows the selection.
        unfiltered = serials is None and status is None and expiring_within is None and not current_only
        wanted = {c['serial'] for c in selected}
        result['deployments'] = [d for d in deployed if unfiltered or d['serial'] in wanted]
    if audited is not None:
        result['host_audits'] = audited  # what the last drift audit found per host (certfleet.pki.audit)
    return result


def _selected(record, now, status, horizon, current_only) -> bool:
    state = record.state(now)
    if status == 'pending_revocation':
        if not (record.pending_revocation and state == 'valid'):
            return False
    elif status is not None and state != status:
        return False
    if horizon is not None and not (state == 'valid' and record.not_after <= horizon):
        return False
    return not (current_only and not record.is_current)


# -- plan -----------------------------------------------------------------------------------------------------------

def plan(ca, requests: list, renew_before=RENEW_BEFORE) -> dict:
    """Which of many identities need issuing or renewing, or still have a superseded certificate to finish.

    One read of the store for the whole fleet: the nightly run asks this once instead of calling client_certificate
    per identity. ``requests`` are client_certificate parameters (PLAN_PARAMETERS) with an optional ``host``. A
    request that would fail is listed under ``invalid`` with the field and the reason; it does not stop the others.
    """
    if not isinstance(requests, list):
        raise InputError('expected a list of identities (dicts with identity, subject, email, ...)', 'requests')
    now = ca.clock()
    ca.authority.require_valid(now)
    wanted, invalid = _wanted_by_identity(ca, requests, renew_before)
    with ca.store.read():
        records = ca.store.find(identities=sorted(wanted)) if wanted else []
        deployed = ca.store.deployments(sorted(wanted)) if wanted else []
    by_identity: dict = {}
    for record in records:
        by_identity.setdefault(record.identity, []).append(record)
    installed = {(d['identity'], d['host']): d['serial'] for d in deployed}
    carriers = _carriers(requests, wanted)
    due, pending, up_to_date, work = [], [], [], []
    records = {}
    for identity, candidate in sorted(wanted.items()):
        history = by_identity.get(identity, [])
        current = next((r for r in history if r.is_current), None)
        if current is not None:
            records[identity] = store_record(current, history, now)
        decision = decide(current, candidate, now, bool(history))
        hosts = carriers.get(identity, [])
        if decision.action != 'none':
            due.append(dict(decision.to_result(), identity=identity, action=decision.action,
                            serial=current.serial if current else None,
                            not_after=to_iso(current.not_after) if current else None))
            work += [{'identity': identity, 'host': host, 'reason': decision.action} for host in hosts]
            waiting = list(hosts)
        else:
            waiting = [host for host in hosts if installed.get((identity, host)) != current.serial]
            work += [{'identity': identity, 'host': host,
                      'reason': 'deploy' if (identity, host) not in installed else 'replace older serial'}
                     for host in waiting]
        old = [r.serial for r in history if r.pending_revocation and r.status == 'valid']
        if old:
            pending.append({'identity': identity, 'serials': old, 'current_serial': current.serial if current else None,
                            'waiting_for': waiting, 'ready': decision.action == 'none' and not waiting})
        if decision.action == 'none' and not old and not waiting:
            up_to_date.append(identity)
    return {'changed': False, 'due': due, 'pending_revocation': pending, 'up_to_date': up_to_date, 'work': work,
            'invalid': invalid, 'records': records, 'ca_certificate': ca.authority.certificate_pem(),
            'ca_common_name': ca.authority.common_name(),
            'counts': {'requested': len(requests), 'identities': len(wanted), 'due': len(due),
                       'pending_revocation': len(pending), 'up_to_date': len(up_to_date), 'host_work': len(work),
                       'invalid': len(invalid)}}


def store_record(current, history: list, now) -> dict:
    """What a store on a host should hold of an identity, as ``endpoint_reconcile`` takes it: the current
    certificate, the identity's other certificates (``lifecycle.superseded``: they leave the stores) and, among
    them, the revoked ones (removed wherever found, whichever identity a store attributes them to)."""
    older = superseded(history, now)
    return {'serial': current.serial, 'fingerprint_sha256': current.fingerprint_sha256,
            'not_after': to_iso(current.not_after), 'key_status': current.key_status,
            'superseded_serials': [entry['serial'] for entry in older],
            'superseded_fingerprints_sha256': [entry['fingerprint_sha256'] for entry in older],
            'revoked_serials': [entry['serial'] for entry in older if entry['status'] == 'revoked']}


def _wanted_by_identity(ca, requests: list, renew_before) -> tuple:
    """({identity: Wanted}, invalid entries): each request validated exactly like client_certificate would."""
    wanted: dict = {}
    invalid = []
    for index, request in enumerate(requests):
        host = request.get('host') if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict):
                raise InputError('expected a dict, got %r' % (request,), 'requests[%d]' % index)
            params = {k: request[k] for k in PLAN_PARAMETERS if request.get(k) not in (None, '')}
            params.setdefault('renew_before', renew_before)
            params['identity'] = request.get('identity')  # missing is an error build_wanted names
            candidate = ca.build_wanted(**params)
        except InputError as exc:
            invalid.append({'identity': request.get('identity') if isinstance(request, dict) else None,
                            'host': host, 'field': exc.field, 'msg': exc.message, 'error_code': exc.code})
            continue
        earlier = wanted.get(candidate.identity)
        if earlier is not None and earlier.display() != candidate.display():
            invalid.append({'identity': candidate.identity, 'host': host, 'field': 'identity',
                            'error_code': 'defined_twice',
                            'msg': 'identity %r is defined differently in two places (%s vs %s)'
                                   % (candidate.identity, earlier.display(), candidate.display())})
            continue
        wanted[candidate.identity] = candidate
    return wanted, invalid


def _carriers(requests: list, wanted: dict) -> dict:
    """{identity: [hosts]} in request order."""
    carriers: dict = {}
    for request in requests:
        if isinstance(request, dict) and request.get('host') and request.get('identity') in wanted:
            hosts = carriers.setdefault(request['identity'], [])
            if request['host'] not in hosts:
                hosts.append(request['host'])
    return carriers
