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


# What a drift audit may say about a host (filter fleet_host_audit builds it from the endpoint_reconcile results).
AUDIT_COUNTS = ('stores', 'missing', 'restored', 'still_missing', 'removed_revoked', 'removed_superseded', 'foreign',
                'unclaimed', 'problems')
FINDING_KINDS = ('missing', 'revoked_installed', 'stale_installed', 'unclaimed', 'problem')
FINDING_FIELDS = ('kind', 'identity', 'store', 'user', 'path', 'serial', 'outcome', 'reason', 'message')
MAX_FINDINGS = 1000


def record_host_audits(ca, audits: list, check_mode: bool = False) -> dict:
    """Keep what the last drift audit found on each host. The time of the audit is refreshed on every run; a host
    counts as changed only when its counts or findings differ from the last audit's."""
    entries = _audit_entries(audits)
    now = ca.clock()
    changed = []
    store = ca.store
    with (store.read() if check_mode else store.write()):
        last = {a['host']: a for a in store.host_audits()}
        for host, summary, findings in entries:
            before = last.get(host)
            news = before is None or before['summary'] != summary or before['findings'] != findings
            if news:
                changed.append({'host': host, 'drift': summary['drift']})
            if check_mode:
                continue
            store.record_host_audit(host, now, summary, findings)
            if news:
                serials = sorted({f['serial'] for f in findings if f.get('serial')})
                store.append_audit(now, 'drift_audit', None, serials, 'drift' if summary['drift'] else 'clean',
                                   {'host': host, 'counts': {k: summary[k] for k in AUDIT_COUNTS}})
    return {'changed': bool(changed), 'audits_recorded': changed}


def _audit_entries(audits) -> list:
    """[(host, summary, findings)], every entry validated before anything is written."""
    if not isinstance(audits, list) or not audits:
        raise InputError('expected a non-empty list of dicts with host, summary and findings', 'host_audits')
    entries, seen = [], set()
    for index, entry in enumerate(audits):
        field = 'host_audits[%d]' % index
        if not isinstance(entry, dict):
            raise InputError('expected a dict with host, summary and findings', field)
        host = validate_identity(entry.get('host'), field + '.host')
        if host in seen:
            raise InputError('host %r is listed twice' % host, field + '.host')
        seen.add(host)
        summary = entry.get('summary') or {}
        if not isinstance(summary, dict):
            raise InputError('expected a dict of counts', field + '.summary')
        counts = {}
        for key in AUDIT_COUNTS:
            value = summary.get(key, 0)
            if isinstance(value, bool) or not str(value).isdigit():  # Jinja may hand numbers over as text
                raise InputError('expected a whole number, got %r' % (value,), '%s.summary.%s' % (field, key))
            counts[key] = int(value)
        counts['drift'] = bool(counts['missing'] or counts['removed_revoked'] or counts['removed_superseded'])
        findings = entry.get('findings') or []
        if not isinstance(findings, list) or len(findings) > MAX_FINDINGS:
            raise InputError('expected a list of at most %d findings' % MAX_FINDINGS, field + '.findings')
        entries.append((host, counts, [_finding(f, '%s.findings[%d]' % (field, n)) for n, f in enumerate(findings)]))
    return entries


def _finding(finding, field: str) -> dict:
    if not isinstance(finding, dict) or finding.get('kind') not in FINDING_KINDS:
        raise InputError('expected a dict whose kind is one of %s' % ', '.join(FINDING_KINDS), field)
    unknown = sorted(set(finding) - set(FINDING_FIELDS))
    if unknown:
        raise InputError('unknown key(s) %s' % ', '.join(unknown), field)
    kept = {}
    for key in FINDING_FIELDS:
        value = finding.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > 1024:
            raise InputError('expected text of at most 1024 characters', '%s.%s' % (field, key))
        kept[key] = normalize_serial(value, field + '.serial') if key == 'serial' else value
    return kept
