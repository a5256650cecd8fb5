# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the fleet playbooks: gather the fleet's identities, pick each host's work, decide what to revoke."""

from __future__ import annotations

import base64
import re

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


# The fleet's store names and the endpoint_reconcile store each one is (a keychain on macOS, a file for an MDM);
# the call skips those the host's system does not have, as the deploy role does. A Windows host's stores get calls
# of their own, one per store user (_windows_part).
RECONCILED_STORES = {'firefox': 'firefox', 'chromium': 'chromium', 'macos_keychain': 'keychain',
                     'apple_profile': 'apple_profile'}
FLEET_STORE_NAMES = {store: name for name, store in RECONCILED_STORES.items()}
# Stores that exist only elsewhere: left out on the systems endpoint_reconcile handles (the role skipped them too).
ELSEWHERE_STORES = ('windows_store',)


def _reconciled_stores(entry) -> list:
    return sorted({RECONCILED_STORES[store] for store in entry.get('stores') or [] if store in RECONCILED_STORES})


def _profile_password_included(entry, host_vars) -> bool:
    """The identity's apple_profile_include_password, else the host's deploy_apple_profile_include_password (the
    deploy role's variable, which inventories already set for the role)."""
    if 'apple_profile_include_password' in entry:
        return bool(entry['apple_profile_include_password'])
    return str(host_vars.get('deploy_apple_profile_include_password', False)).lower() in ('true', 'yes', '1')


def _wanted(name, record) -> dict:
    """An identity as endpoint_reconcile takes it: the CA's record of its current and older certificates."""
    return {'identity': name, 'serial': record['serial'], 'fingerprint_sha256': record['fingerprint_sha256'],
            'superseded_serials': record.get('superseded_serials', []),
            'superseded_fingerprints_sha256': record.get('superseded_fingerprints_sha256', [])}


def _add_revoked(call, record) -> None:
    call['revoked_serials'] += [serial for serial in record.get('revoked_serials', [])
                                if serial not in call['revoked_serials']]


def fleet_reconcile(identities, plan, host_vars=None):
    """The endpoint_reconcile calls of one host: one per distinct set of stores, homes and users among the host's
    identities, each with the CA's record of its identities (the plan's ``records``), so that a store only ever
    gets the identities meant for it. Identities without a current certificate, or with no store reconcile puts
    right, are left out (the renew playbook's work). Store names are endpoint_reconcile's (``keychain`` for
    ``macos_keychain``); an Apple profile identity carries its ``apple_profile_dest``. ``host_vars``: the host's
    variables, for its ``deploy_apple_profile_include_password``; on a Windows host the calls are one per store user
    (``become_user``, ``windows_store_location``), as the roll-out makes them."""
    records = plan.get('records') or {}
    if host_vars and _is_windows(host_vars):
        known = [entry for entry in identities or [] if isinstance(entry, dict) and entry.get('identity') in records]
        return _windows_part(known, records, host_vars)['windows_calls']
    calls: dict = {}
    for entry in identities or []:
        if not isinstance(entry, dict) or entry.get('identity') not in records:
            continue
        stores = _reconciled_stores(entry)
        if not stores:
            continue
        selection = entry.get('firefox_certificate_selection') or 'auto'
        key = (tuple(stores), tuple(sorted(entry.get('homes') or [])), tuple(sorted(entry.get('users') or [])),
               selection)
        call = calls.setdefault(key, {'stores': list(key[0]), 'homes': list(key[1]), 'users': list(key[2]),
                                      'firefox_certificate_selection': selection,
                                      'identities': [], 'revoked_serials': []})
        record = records[entry['identity']]
        if any(known['identity'] == entry['identity'] for known in call['identities']):
            continue
        wanted = _wanted(entry['identity'], record)
        if 'apple_profile' in stores and entry.get('apple_profile_dest'):
            wanted.update(apple_profile_dest=entry['apple_profile_dest'],
                          apple_profile_include_password=_profile_password_included(entry, host_vars or {}))
        call['identities'].append(wanted)
        _add_revoked(call, record)
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


# What makes an identity take the deploy role instead of the reconcile call: options only the role carries out
# (a keychain password of the identity's own: the call takes the host's, certfleet_keychain_password).
ROLE_ONLY_OPTIONS = ('firefox_profile_paths', 'verify_url', 'identity_preference_urls', 'keychain_password')
WINDOWS_CONNECTIONS = ('winrm', 'psrp', 'ansible.windows.winrm', 'ansible.builtin.winrm', 'ansible.builtin.psrp',
                       'ansible.windows.psrp')


def _is_windows(host_vars) -> bool:
    facts = host_vars.get('ansible_facts') or {}
    return (str(host_vars.get('ansible_connection', '')) in WINDOWS_CONNECTIONS
            or host_vars.get('ansible_shell_type') == 'powershell' or facts.get('os_family') == 'Windows')


def _role_only(entry, record, host_vars) -> bool:
    """True when the reconcile call cannot carry this identity out on this host (the deploy role does)."""
    stores = set(entry.get('stores') or [])
    if stores - set(RECONCILED_STORES) - set(ELSEWHERE_STORES):
        return True
    if any(entry.get(option) for option in ROLE_ONLY_OPTIONS):
        return True
    if stores and (record or {}).get('key_status') != 'held':
        return True  # the role issues anew when the CA no longer holds the key
    if _is_windows(host_vars):
        # The profile is written by a Python module, which Windows does not run; and the inventory may keep the
        # role for Windows hosts (certfleet_windows_rollout: role).
        return 'apple_profile' in stores or str(host_vars.get('certfleet_windows_rollout', 'reconcile')) == 'role'
    return False


def _windows_part(entries, records, host_vars) -> dict:
    """A Windows host's part: one reconcile call per store user (CurrentUser, run as that user through runas) or
    one as SYSTEM (LocalMachine, ``deploy_windows_location``), preceded for CurrentUser by a call as SYSTEM that
    only puts our CA in LocalMachine\\Root (a user may not write there), as the windows_store role does; whether
    Firefox is told to read the Windows stores (an identity with ``firefox``); identities with no Windows store."""
    location = str(host_vars.get('deploy_windows_location') or 'current_user')
    calls: dict = {}
    problems, storeless = [], []
    for entry in entries:
        record = records.get(entry['identity']) or {}
        if 'windows_store' not in (entry.get('stores') or []):
            storeless.append({'identity': entry['identity'], 'serial': record.get('serial')})
            continue
        users = list(entry.get('users') or [])
        if location == 'current_user' and not users:
            problems.append('identity %s: windows_store in CurrentUser needs users (each store is reached as its '
                            'user, through runas), or deploy_windows_location: local_machine' % entry['identity'])
            continue
        for user in users if location == 'current_user' else ['SYSTEM']:
            call = calls.setdefault(user, {'stores': ['windows_store'], 'windows_store_location': location,
                                           'become_user': user, 'identities': [], 'revoked_serials': []})
            call['identities'].append(_wanted(entry['identity'], record))
            _add_revoked(call, record)
    windows_calls = [calls[user] for user in sorted(calls)]
    if windows_calls and location == 'current_user':
        windows_calls.insert(0, {'stores': [], 'windows_store_location': 'local_machine', 'become_user': 'SYSTEM',
                                 'identities': [], 'revoked_serials': []})
    firefox = any('firefox' in (entry.get('stores') or []) for entry in entries)
    return {'windows_calls': windows_calls, 'windows_firefox_policy': firefox, 'storeless': storeless,
            'invalid': problems}


def fleet_rollout(hosts, hostvars, plan, records_plan=None, actions=('issue', 'renew'), earlier=None):
    """Each host's part of a roll-out, decided once on the controller: ``calls`` (one endpoint_reconcile per set
    of stores, homes and users, with the CA's record as it is after the CA's batch), ``fallback`` (identities the
    deploy role carries out), ``invalid`` (why the host's identities would be refused); plus ``export``, the
    identities whose PKCS#12 some call needs. ``plan``: the plan that decided the work; ``records_plan``: the CA's
    answer after issuing (the new serials), the same plan when nothing was issued. ``earlier``: hosts an earlier
    roll-out of the same run put in the group (issue, then renew): those without work now get an empty part."""
    fresh = records_plan or plan
    records = fresh.get('records') or {}
    invalid: dict = {}
    for entry in plan.get('invalid', []):
        invalid.setdefault(entry.get('host'), []).append('identity %s: %s' % (entry.get('identity'), entry.get('msg')))
    result = {'hosts': {}, 'export': []}
    for host in hosts or []:
        identities = _identities_of(hostvars, host)
        malformed = [index for index, entry in enumerate(identities) if not isinstance(entry, dict)
                     or not all(key in entry for key in ('identity', 'subject', 'stores'))]
        problems = list(invalid.get(host, []))
        problems += ['certfleet_identities[%d] needs identity, subject and stores' % index for index in malformed]
        problems += ['certfleet_identities[%d] (%s): the apple_profile store needs apple_profile_dest, the profile '
                     'file for the MDM' % (index, entry.get('identity')) for index, entry in enumerate(identities)
                     if index not in malformed and 'apple_profile' in (entry.get('stores') or [])
                     and not entry.get('apple_profile_dest')]
        work = fleet_host_work(identities, plan, host, actions)
        if problems:
            result['hosts'][host] = {'invalid': problems, 'calls': [], 'fallback': [], 'work': []}
            continue
        if not work:
            if host in (earlier or []):
                result['hosts'][host] = {'invalid': [], 'calls': [], 'fallback': [], 'work': [], 'storeless': [],
                                         'chromium_policy': []}
            continue
        host_vars = hostvars[host] if host in hostvars else {}
        fallback = [entry for entry in work if _role_only(entry, records.get(entry['identity']), host_vars)]
        fast = [entry for entry in work if entry not in fallback]
        if _is_windows(host_vars):
            part = _windows_part(fast, records, host_vars)
            for call in part['windows_calls']:
                result['export'] += [i['identity'] for i in call['identities'] if i['identity'] not in result['export']]
            result['hosts'][host] = dict(part, calls=[], fallback=[] if part['invalid'] else fallback, work=work,
                                         chromium_policy=[])
            continue
        calls = fleet_reconcile([entry for entry in fast if _reconciled_stores(entry)], fresh, host_vars)
        for call in calls:
            for identity in call['identities']:
                if identity['identity'] not in result['export']:
                    result['export'].append(identity['identity'])
        # Identities without a store here (none, or only another system's) are deployed by being recorded: nothing on
        # the host to put right, as the deploy role records them with no store.
        storeless = [{'identity': entry['identity'], 'serial': (records.get(entry['identity']) or {}).get('serial')}
                     for entry in fast if not _reconciled_stores(entry)]
        # Chromium's AutoSelectCertificateForUrls entries of each identity put in its database: its URLs, or none
        # (an identity without URLs any more takes its own entries out), as the chromium_nss role does.
        policy = [{'identity': entry['identity'], 'urls': list(entry.get('auto_select_urls') or []),
                   'subject': entry.get('subject')} for entry in fast if 'chromium' in (entry.get('stores') or [])]
        result['hosts'][host] = {'invalid': [], 'calls': calls, 'fallback': fallback, 'work': work,
                                 'storeless': storeless, 'chromium_policy': policy}
    return result


def fleet_reconcile_sources(calls, exports, folder=None):
    """``calls`` with each identity's PKCS#12 named on the controller (``pkcs12_src``, ``pkcs12_password_src``),
    from the batch export's ``exports``; ``folder``: where they were fetched to on the controller when the CA host
    is another machine (else the export's own paths)."""
    given = {}
    for export in exports or []:
        dest, secret = export.get('dest'), export.get('password_file')
        if folder:
            dest = '%s/%s' % (folder, dest.rsplit('/', 1)[-1])
            secret = '%s/%s' % (folder, secret.rsplit('/', 1)[-1])
        given[export['identity']] = {'pkcs12_src': dest, 'pkcs12_password_src': secret}
    return [dict(call, identities=[dict(identity, **given.get(identity['identity'], {}))
                                   for identity in call['identities']]) for call in calls or []]


def fleet_deployments(hosts, hostvars):
    """The deployment records of a batch of hosts: an identity counts on a host when every store of every reconcile
    call that carries it holds its current certificate (present before, or imported and verified by fingerprint).
    A call that failed, or a host on another system, records nothing; those hosts stay in the plan's work."""
    deployments = []
    for host in hosts or []:
        host_vars = hostvars[host] if host in hostvars else {}
        rollout = host_vars.get('_certfleet_rollout_host') or {}
        for entry in rollout.get('storeless', []):
            deployments.append({'identity': entry['identity'], 'host': host, 'serial': entry['serial'], 'stores': []})
        held: dict = {}  # identity -> {'serial', 'stores', 'ok'}, over every call that carries it
        pairs = [(call, outcome) for key, registered in (('calls', '_certfleet_reconciled'),
                                                         ('windows_calls', '_certfleet_reconciled_windows'))
                 for call, outcome in zip(rollout.get(key, []), (host_vars.get(registered) or {}).get('results', []),
                                          strict=False)]
        for call, outcome in pairs:
            done = not (outcome.get('failed') or outcome.get('skipped') or outcome.get('unsupported_platform'))
            stores = outcome.get('stores', [])
            skipped = outcome.get('skipped_stores') or []
            for identity in call['identities']:
                name = identity['identity']
                # A store of one identity (an Apple profile file) counts for that identity only.
                holds = done and all(name in store.get('present', []) or name in store.get('imported', [])
                                     for store in stores if store.get('identity') in (None, name))
                mine = [FLEET_STORE_NAMES.get(s, s) for s in call['stores']
                        if s not in skipped and (s != 'apple_profile' or identity.get('apple_profile_dest'))]
                known = held.setdefault(name, {'serial': identity['serial'], 'stores': [], 'ok': True})
                known['ok'] = known['ok'] and holds
                known['stores'] += [s for s in mine if s not in known['stores']]
        deployments += [{'identity': name, 'host': host, 'serial': known['serial'], 'stores': known['stores']}
                        for name, known in held.items() if known['ok']]
    return deployments


def fleet_role_work(host_vars):
    """The identities of one host that the deploy role carries out: the fallback ones, and all of them when the
    reconcile call found the host is not Linux."""
    rollout = host_vars.get('_certfleet_rollout_host') or {}
    registered = host_vars.get('_certfleet_reconciled') or {}
    if any(outcome.get('unsupported_platform') for outcome in registered.get('results', [])):
        return [entry for entry in rollout.get('work', []) if entry.get('stores')]
    return list(rollout.get('fallback', []))


def fleet_issue_batch(due_requests, forced=None, valid_days=365, renew_before=None):
    """The ``certificates`` of one client_certificate call for the fleet's due identities: each request with its
    own validity and window when it has one, the fleet's otherwise, and ``force`` for the forced ones."""
    forced = set(forced or [])
    batch = []
    for request in due_requests or []:
        entry = {key: request[key] for key in REQUEST_KEYS if key in request and request[key] is not None}
        entry.setdefault('valid_days', valid_days)
        if renew_before and 'renew_before' not in entry:
            entry['renew_before'] = renew_before
        entry['force'] = request.get('identity') in forced
        batch.append(entry)
    return batch


def fleet_export_batch(identities):
    """The ``batch`` of one client_certificate_export call: one PKCS#12 per identity, in a file name the export
    accepts (letters, digits and ``._-``)."""
    return [{'identity': name, 'file': re.sub(r'[^A-Za-z0-9._-]', '_', name).lstrip('.') + '-%d.p12' % index}
            for index, name in enumerate(identities or [])]


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


def _store_findings(store: dict) -> list:
    """One store's drift (a fleet_drift store entry) as the findings the CA store keeps."""
    where = {'store': store.get('store'), 'user': store.get('user'), 'path': store.get('path')}
    where = {k: str(v) for k, v in where.items() if v}
    restored, key_gone = set(store.get('restored', [])), set(store.get('missing_key_not_held', []))
    findings = []
    for name in store.get('missing', []):
        outcome = 'restored' if name in restored else ('key_not_held' if name in key_gone else 'still_missing')
        findings.append(dict(where, kind='missing', identity=str(name), outcome=outcome))
    for kind, key in (('revoked_installed', 'removed_revoked'), ('stale_installed', 'removed_superseded')):
        for gone in store.get(key, []):
            finding = dict(where, kind=kind, serial=str(gone.get('serial')), outcome='removed',
                           reason=str(gone.get('reason') or ''))
            if gone.get('identity'):
                finding['identity'] = str(gone['identity'])
            findings.append(finding)
    for other in store.get('unclaimed', []):
        findings.append(dict(where, kind='unclaimed', serial=str(other.get('serial')), outcome='left'))
    for problem in store.get('problems', []):
        findings.append(dict(where, kind='problem', message=str(problem)[:1024]))
    return findings


def fleet_windows_hosts(hosts, hostvars):
    """The hosts of ``hosts`` reached over WinRM or PSRP (or a PowerShell shell, or Windows facts)."""
    return [host for host in hosts or [] if _is_windows(hostvars[host] if host in hostvars else {})]


def fleet_audit_drift(hosts, hostvars, plan):
    """Each audited host's drift ({host: fleet_drift}), from its two reconcile passes (``_certfleet_audit_first``
    and ``_certfleet_audit_second``); a host that ran neither was not audited and is left out."""
    drifts = {}
    for host in hosts or []:
        host_vars = hostvars[host] if host in hostvars else {}
        first = host_vars.get('_certfleet_audit_first')
        if not isinstance(first, dict):
            continue
        second = host_vars.get('_certfleet_audit_second') or {}
        drifts[host] = fleet_drift([r for r in first.get('results', []) if not r.get('skipped')],
                                   [r for r in second.get('results', []) if not r.get('skipped')], plan)
    return drifts


def fleet_host_audits(hosts, hostvars, fact='certfleet_audit_host'):
    """The ``host_audits`` of one client_certificate_deployment call: each audited host's drift counts and
    findings, from the ``fleet_drift`` fact the audit set on it (hosts without it were not audited)."""
    audits = []
    for host in hosts or []:
        drift = (hostvars.get(host) or {}).get(fact)
        if not isinstance(drift, dict):
            continue
        findings = [f for store in drift.get('stores', []) for f in _store_findings(store)]
        audits.append({'host': str(host), 'summary': dict(drift.get('summary') or {}), 'findings': findings})
    return audits


class FilterModule:
    def filters(self):
        return {
            'fleet_requests': fleet_requests,
            'fleet_host_work': fleet_host_work,
            'fleet_reconcile': fleet_reconcile,
            'fleet_reconcile_pkcs12': fleet_reconcile_pkcs12,
            'fleet_drift': fleet_drift,
            'fleet_drift_totals': fleet_drift_totals,
            'fleet_host_audits': fleet_host_audits,
            'fleet_audit_drift': fleet_audit_drift,
            'fleet_windows_hosts': fleet_windows_hosts,
            'fleet_due_requests': fleet_due_requests,
            'fleet_rollout': fleet_rollout,
            'fleet_issue_batch': fleet_issue_batch,
            'fleet_export_batch': fleet_export_batch,
            'fleet_reconcile_sources': fleet_reconcile_sources,
            'fleet_deployments': fleet_deployments,
            'fleet_role_work': fleet_role_work,
        }
