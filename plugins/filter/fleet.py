# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the fleet playbooks: gather the fleet's identities, pick each host's work, decide what to revoke."""

from __future__ import annotations

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


class FilterModule:
    def filters(self):
        return {
            'fleet_requests': fleet_requests,
            'fleet_host_work': fleet_host_work,
            'fleet_due_requests': fleet_due_requests,
        }
