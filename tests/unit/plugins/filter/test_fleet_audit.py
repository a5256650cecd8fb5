# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's filters: one host's drift from its endpoint_reconcile results, and the CA store's host_audits."""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.filter.fleet import (
    fleet_audit_drift, fleet_drift, fleet_drift_totals, fleet_host_audits, fleet_reconcile, fleet_windows_hosts,
)

PROFILE = '/home/alice/.mozilla/firefox/x.default'
NSSDB = '/home/alice/.pki/nssdb'
PLAN = {'records': {'alice': {'key_status': 'held'}, 'bob': {'key_status': 'purged'}}}


def _store(kind, path, **lists):
    base = {'store': kind, 'user': 'alice', 'path': path, 'present': [], 'imported': [], 'removed': [],
            'missing': [], 'foreign': [], 'unclaimed': [], 'problems': []}
    return dict(base, **lists)


FIRST = [{'stores': [
    _store('firefox', PROFILE, missing=['alice', 'bob'], present=['carol'],
           removed=[{'serial': 'A0', 'identity': 'alice', 'reason': 'revoked'},
                    {'serial': 'C0', 'identity': 'carol', 'reason': 'superseded'}],
           foreign=[{'serial': 'F1'}], unclaimed=[{'serial': 'D9'}]),
    _store('chromium', NSSDB, present=['alice', 'bob', 'carol']),
]}]
SECOND = [{'stores': [_store('firefox', PROFILE, imported=['alice'], missing=['bob'])]}]


def test_fleet_drift_counts_what_was_found_and_done():
    drift = fleet_drift(FIRST, SECOND, PLAN)
    assert drift['summary'] == {'missing': 2, 'restored': 1, 'still_missing': 1, 'removed_revoked': 1,
                                'removed_superseded': 1, 'foreign': 1, 'unclaimed': 1, 'problems': 0,
                                'stores': 2, 'drift': True}
    firefox = drift['stores'][0]
    assert firefox['missing_key_not_held'] == ['bob'] and firefox['restored'] == ['alice']
    assert fleet_drift(FIRST[:0], [], PLAN)['summary']['drift'] is False


def test_fleet_host_audits_turn_the_drift_into_findings():
    hostvars = {'pc1': {'certfleet_audit_host': fleet_drift(FIRST, SECOND, PLAN)},
                'pc2': {'certfleet_audit_host': fleet_drift([{'stores': [_store('chromium', NSSDB)]}], [], PLAN)},
                'pc3': {}}
    audits = fleet_host_audits(['pc1', 'pc2', 'pc3'], hostvars)
    assert [a['host'] for a in audits] == ['pc1', 'pc2']  # pc3 was not audited in this run
    where = {'store': 'firefox', 'user': 'alice', 'path': PROFILE}
    assert audits[0]['findings'] == [
        dict(where, kind='missing', identity='alice', outcome='restored'),
        dict(where, kind='missing', identity='bob', outcome='key_not_held'),
        dict(where, kind='revoked_installed', serial='A0', identity='alice', outcome='removed', reason='revoked'),
        dict(where, kind='stale_installed', serial='C0', identity='carol', outcome='removed', reason='superseded'),
        dict(where, kind='unclaimed', serial='D9', outcome='left'),
    ]
    assert audits[0]['summary']['drift'] is True
    assert audits[1] == {'host': 'pc2', 'summary': dict(audits[1]['summary'], drift=False), 'findings': []}
    assert fleet_drift_totals([a['summary'] for a in audits])['hosts_with_drift'] == 1


def test_a_problem_is_a_finding():
    drift = fleet_drift([{'stores': [_store('chromium', NSSDB, problems=['cannot import alice: locked'])]}], [],
                        PLAN)
    findings = fleet_host_audits(['pc1'], {'pc1': {'certfleet_audit_host': drift}})[0]['findings']
    assert findings == [{'store': 'chromium', 'user': 'alice', 'path': NSSDB, 'kind': 'problem',
                         'message': 'cannot import alice: locked'}]


def test_the_drift_of_every_host_is_computed_once_from_its_two_passes():
    hostvars = {'pc1': {'_certfleet_audit_first': {'results': FIRST + [{'skipped': True}]},
                        '_certfleet_audit_second': {'results': SECOND}},
                'pc2': {'_certfleet_audit_first': {'results': FIRST},
                        '_certfleet_audit_second': {'skipped': True, 'results': []}},
                'pc3': {}}
    drifts = fleet_audit_drift(['pc1', 'pc2', 'pc3'], hostvars, PLAN)
    assert sorted(drifts) == ['pc1', 'pc2']  # pc3 was not audited
    assert drifts['pc1'] == fleet_drift(FIRST, SECOND, PLAN)
    assert drifts['pc2']['summary']['restored'] == 0 and drifts['pc2']['summary']['still_missing'] == 2


def test_windows_hosts_are_told_apart_and_get_their_calls_per_store_user():
    hostvars = {'pc': {'ansible_connection': 'ansible.windows.psrp'}, 'mac': {'ansible_connection': 'ssh'},
                'srv': {'ansible_shell_type': 'powershell'}}
    assert fleet_windows_hosts(['pc', 'mac', 'srv', 'gone'], hostvars) == ['pc', 'srv']
    plan = {'records': {'ann': {'serial': 'A', 'fingerprint_sha256': 'FA', 'revoked_serials': ['R']}}}
    identities = [{'identity': 'ann', 'stores': ['windows_store'], 'users': ['ann']},
                  {'identity': 'nobody', 'stores': ['windows_store'], 'users': ['x']}]  # no certificate yet
    calls = fleet_reconcile(identities, plan, hostvars['pc'])
    assert [(c['become_user'], [i['identity'] for i in c['identities']]) for c in calls] == [
        ('SYSTEM', []), ('ann', ['ann'])]
    assert calls[1]['revoked_serials'] == ['R'] and calls[1]['windows_store_location'] == 'current_user'
    assert fleet_reconcile(identities, plan, hostvars['mac']) == []  # no store the call reconciles on a Mac here
