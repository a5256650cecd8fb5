# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the fleet playbooks: gather the fleet's identities, pick each host's work, decide what to revoke."""

from __future__ import annotations

import base64

REQUEST_KEYS = ('identity', 'subject', 'email', 'sans', 'profile', 'key_type', 'valid_days', 'renew_before')


def _identities_of(hostvars, host) -> list:
    value = hostvars[host].get('certfleet_identities') if host in hostvars else None
    return value if isinstance(value, list) else []


def fleet_requests(hosts, hostvars, forced=None):
    """Every identity of ``hosts`` as a plan request (with ``host``); ``forced`` identities get force=true."""
    forced = set(forced or [])
    requests = []
    for host in hosts:
        for index, identity in enumerate(_identities_of(hostvars, host)):
            if not isinstance(identity, dict):
                requests.append({'host': host, 'identity': None, 'index': index})
                continue
            request = {key: identity[key] for key in REQUEST_KEYS if key in identity}
            request['host'] = host
            name = identity.get('identity')
            if name in forced:
                request['force'] = True
            requests.append(request)
    return requests


def fleet_host_work(identities, plan, host, actions=('issue', 'renew')):
    """The identities of one host that need deploying there, as the plan's ``work`` lists them; work that comes
    from a due issue or renewal counts only when that action is in ``actions``."""
    names = {entry['identity'] for entry in plan.get('work', [])
             if entry.get('host') == host and (entry.get('reason') not in ('issue', 'renew')
                                               or entry.get('reason') in actions)}
    return [identity for identity in identities or []
            if isinstance(identity, dict) and identity.get('identity') in names]


def fleet_due_requests(plan, requests, actions=('issue', 'renew')):
    """One request per identity due for one of ``actions`` (for the CA to issue, once)."""
    pending = {entry['identity'] for entry in plan.get('pending_revocation', [])}
    # A forced identity whose earlier forced roll-out is unfinished is finished first, not rotated again.
    due = {entry['identity'] for entry in plan.get('due', []) if entry.get('action') in actions
           and not (entry['identity'] in pending and entry.get('reason_codes') == ['force'])}
    seen = set()
    result = []
    for request in requests:
        name = request.get('identity')
        if name in due and name not in seen:
            seen.add(name)
            result.append(request)
    return result


# The stores endpoint_reconcile puts right (NSS databases on Linux); the others are the deploy role's.
RECONCILED_STORES = ('firefox', 'chromium')


def fleet_reconcile(identities, plan):
    """The endpoint_reconcile calls of one host: one per distinct set of stores, homes and users among the host's
    identities, each with the CA's record of its identities (the plan's ``records``), so that a store only ever
    gets the identities meant for it. Identities without a current certificate, or with no store reconcile puts
    right, are left out (the renew playbook's work)."""
    records = plan.get('records') or {}
    calls: dict = {}
    for entry in identities or []:
        if not isinstance(entry, dict) or entry.get('identity') not in records:
            continue
        stores = sorted(set(entry.get('stores') or []) & set(RECONCILED_STORES))
        if not stores:
            continue
        key = (tuple(stores), tuple(sorted(entry.get('homes') or [])), tuple(sorted(entry.get('users') or [])))
        call = calls.setdefault(key, {'stores': list(key[0]), 'homes': list(key[1]), 'users': list(key[2]),
                                      'identities': [], 'revoked_serials': []})
        record = records[entry['identity']]
        if any(known['identity'] == entry['identity'] for known in call['identities']):
            continue
        call['identities'].append({'identity': entry['identity'], 'serial': record['serial'],
                                   'fingerprint_sha256': record['fingerprint_sha256'],
                                   'superseded_serials': record.get('superseded_serials', []),
                                   'superseded_fingerprints_sha256': record.get('superseded_fingerprints_sha256', [])})
        call['revoked_serials'] += [serial for serial in record.get('revoked_serials', [])
                                    if serial not in call['revoked_serials']]
    return [calls[key] for key in sorted(calls)]


def fleet_reconcile_pkcs12(identities, exports, passwords, folder):
    """``identities`` of one endpoint_reconcile call, with the PKCS#12 file (in ``folder`` on the host) and its
    one-time password for those ``exports`` carries. ``passwords``: the slurp results of the exports' password
    files, in the same order."""
    given = {}
    for export, read in zip(exports or [], passwords or [], strict=False):
        secret = base64.b64decode(read.get('content', '')).decode('utf-8').strip()
        given[export['identity']] = {'pkcs12_path': '%s/%s' % (folder, export['dest'].rsplit('/', 1)[-1]),
                                     'pkcs12_password': secret}
    return [dict(identity, **given.get(identity['identity'], {})) for identity in identities or []]


DRIFT_COUNTS = ('missing', 'restored', 'still_missing', 'removed_revoked', 'removed_superseded', 'foreign',
                'unclaimed', 'problems')


def fleet_drift(first, second, plan):
    """What the audit found and did on one host, from its endpoint_reconcile results (first pass: read and
    remove; second pass: put back what was missing): per store and in counts."""
    records = plan.get('records') or {}
    second_stores = {(s.get('store'), s.get('path')): s for result in second or [] for s in result.get('stores', [])}
    stores, summary = [], dict.fromkeys(DRIFT_COUNTS, 0)
    for result in first or []:
        for store in result.get('stores', []):
            again = second_stores.get((store.get('store'), store.get('path')), {})
            removed = list(store.get('removed', [])) + list(again.get('removed', []))
            entry = {
                'store': store.get('store'), 'user': store.get('user'), 'path': store.get('path'),
                'missing': list(store.get('missing', [])),
                'restored': list(store.get('imported', [])) + list(again.get('imported', [])),
                'still_missing': list(again.get('missing', store.get('missing', []))),
                'missing_key_not_held': [name for name in store.get('missing', [])
                                         if (records.get(name) or {}).get('key_status') != 'held'],
                'removed_revoked': [r for r in removed if r.get('reason') == 'revoked'],
                'removed_superseded': [r for r in removed if r.get('reason') != 'revoked'],
                'foreign': list(store.get('foreign', [])), 'unclaimed': list(store.get('unclaimed', [])),
                'problems': list(store.get('problems', [])) + list(again.get('problems', [])),
            }
            stores.append(entry)
            for key in DRIFT_COUNTS:
                summary[key] += len(entry[key])
    summary['stores'] = len(stores)
    summary['drift'] = bool(summary['missing'] or summary['removed_revoked'] or summary['removed_superseded'])
    return {'summary': summary, 'stores': stores}


def fleet_drift_totals(summaries):
    """The fleet's drift counts, summed over the hosts' ``fleet_drift`` summaries."""
    totals = dict.fromkeys(DRIFT_COUNTS + ('stores',), 0)
    totals['hosts_with_drift'] = 0
    for summary in summaries or []:
        for key in DRIFT_COUNTS + ('stores',):
            totals[key] += int(summary.get(key, 0))
        totals['hosts_with_drift'] += 1 if summary.get('drift') else 0
    return totals


class FilterModule:
    def filters(self):
        return {
            'fleet_requests': fleet_requests,
            'fleet_host_work': fleet_host_work,
            'fleet_reconcile': fleet_reconcile,
            'fleet_reconcile_pkcs12': fleet_reconcile_pkcs12,
            'fleet_drift': fleet_drift,
            'fleet_drift_totals': fleet_drift_totals,
            'fleet_due_requests': fleet_due_requests,
        }
