# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle engine: one rule, reason codes, and the same decision from every entry point (single identity,
plan mode, bulk requests)."""

from __future__ import annotations

import base64
import inspect

import pytest

from ansible_collections.certfleet.pki.plugins.filter.fleet import (
    fleet_drift, fleet_drift_totals, fleet_due_requests, fleet_reconcile, fleet_reconcile_pkcs12,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca import lifecycle, queries, service
from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BulkInputError, BulkRequest
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import parse_renew_window

HEADER = 'action\tidentity\tCN\tkey_type'


def _plan(ca, requests, **kwargs):
    with ca.open() as managed:
        return managed.plan(requests, **kwargs)


def _bulk(ca, tmp_path, lines, check_mode=True):
    src = tmp_path / ('requests-%d.tsv' % len(list(tmp_path.iterdir())))
    src.write_text('\n'.join([HEADER] + ['\t'.join(line) for line in lines]) + '\n')
    with ca.open() as managed:
        return BulkRequest(managed, src=str(src), dest=str(tmp_path / 'out'), workers=1).execute(check_mode=check_mode)


def test_the_defaults_live_in_one_place():
    assert str(parse_renew_window(lifecycle.RENEW_BEFORE)) == '30d'
    # Every entry point takes its default from the engine, not from its own literal.
    build_wanted = inspect.signature(service.ManagedCA.build_wanted)
    assert build_wanted.parameters['renew_before'].default == lifecycle.RENEW_BEFORE
    assert inspect.signature(queries.plan).parameters['renew_before'].default == lifecycle.RENEW_BEFORE
    assert inspect.signature(BulkRequest.__init__).parameters['renew_before'].default == lifecycle.RENEW_BEFORE


def test_single_identity_plan_and_bulk_agree_at_the_window_edge(make_ca, tmp_path):
    ca = make_ca('edge')
    ca.ensure('alice', valid_days=40, key_type='ec-p256')
    request = {'identity': 'alice', 'subject': {'CN': 'alice'}, 'key_type': 'ec-p256', 'valid_days': 40}
    ca.clock.advance(days=9)  # 31 days left: outside the default 30d window
    assert ca.ensure('alice', check_mode=True, **{k: v for k, v in request.items() if k != 'identity'})['reason_code'] \
        == 'up_to_date'
    assert _plan(ca, [request])['up_to_date'] == ['alice']
    ca.clock.advance(days=2)  # 29 days left: inside it, for every entry point at once
    predicted = ca.ensure('alice', check_mode=True, **{k: v for k, v in request.items() if k != 'identity'})
    assert predicted['action'] == 'renewed' and predicted['reason_codes'] == ['renew_window']
    due = _plan(ca, [request])['due']
    assert [(d['identity'], d['action'], d['reason_codes']) for d in due] == [('alice', 'renew', ['renew_window'])]
    assert due[0]['reason'] == predicted['reason']
    # Bulk: a renew line is carried out; the same line, once done, stays done until the new certificate's window.
    first = _bulk(ca, tmp_path, [('renew', 'alice', 'alice', 'ec-p256')], check_mode=False)
    assert first['counts']['renewed'] == 1
    again = _bulk(ca, tmp_path, [('renew', 'alice', 'alice', 'ec-p256')])
    assert again['rows'][0]['result'] == 'unchanged'


def test_changes_carry_codes_in_every_entry_point(make_ca, tmp_path):
    ca = make_ca('changes')
    ca.ensure('bob', subject={'CN': 'bob'}, key_type='ec-p256')
    request = {'identity': 'bob', 'subject': {'CN': 'Bob Example'}, 'key_type': 'ec-p256'}
    predicted = ca.ensure('bob', check_mode=True, subject={'CN': 'Bob Example'}, key_type='ec-p256')
    assert predicted['reason_codes'] == ['subject_changed']
    assert _plan(ca, [request])['due'][0]['reason_codes'] == ['subject_changed']
    # An issue line for an identity that already holds a different certificate names the change and is refused.
    with pytest.raises(BulkInputError) as refused:
        _bulk(ca, tmp_path, [('issue', 'bob', 'Bob Example', 'ec-p256')])
    row = refused.value.rows[0]
    assert row['result'] == 'invalid'
    assert 'subject differs' in row['message'] and 'use action renew' in row['message']


def test_renew_false_keeps_the_current_certificate_but_replaces_an_expired_one(make_ca):
    ca = make_ca('keep')
    first = ca.ensure('carol', valid_days=20)
    kept = ca.ensure('carol', renew=False, subject={'CN': 'Carol Changed'}, force=True)
    assert kept['changed'] is False and kept['serial'] == first['serial']
    assert kept['reason_code'] == 'kept' and kept['reason_codes'] == [] and kept['reason'] is None
    ca.clock.advance(days=21)
    renewed = ca.ensure('carol', renew=False)
    assert renewed['action'] == 'renewed' and 'expired' in renewed['reason_codes']
    assert ca.ensure('dave', renew=False)['reason_code'] == 'no_certificate'


def test_plan_reports_invalid_requests_with_codes_and_goes_on(make_ca):
    ca = make_ca('invalid')
    plan = _plan(ca, [
        {'identity': 'erin', 'subject': {'CN': 'erin'}, 'key_type': 'ec-p256', 'host': 'h1'},
        {'identity': 'erin', 'subject': {'CN': 'Erin Other'}, 'key_type': 'ec-p256', 'host': 'h2'},
        {'identity': 'frank', 'subject': {'CN': 'frank'}, 'key_type': 'dsa', 'host': 'h3'},
        {'subject': {'CN': 'nobody'}, 'host': 'h4'},
        'not a dict',
    ])
    by_host = {entry['host']: entry for entry in plan['invalid']}
    assert by_host['h2']['error_code'] == 'defined_twice' and by_host['h2']['field'] == 'identity'
    assert by_host['h3']['error_code'] == 'invalid_input' and by_host['h3']['field'] == 'key_type'
    assert by_host['h4']['field'] == 'identity'
    assert by_host[None]['field'] == 'requests[4]'
    assert [d['identity'] for d in plan['due']] == ['erin'] and plan['due'][0]['reason_codes'] == ['no_certificate']
    assert {'identity': 'erin', 'host': 'h1', 'reason': 'issue'} in plan['work']


def test_forced_rollout_that_is_unfinished_is_finished_before_rotating_again(make_ca):
    ca = make_ca('forced')
    ca.ensure('gina')
    ca.ensure('gina', force=True)  # the old one now waits for revocation
    request = {'identity': 'gina', 'subject': {'CN': 'gina'}, 'key_type': 'ec-p256', 'force': True, 'host': 'h1'}
    plan = _plan(ca, [request])
    assert plan['due'][0]['reason_codes'] == ['force']
    assert [p['identity'] for p in plan['pending_revocation']] == ['gina']
    assert fleet_due_requests(plan, [request]) == []  # decided by code, not by the reason's text
    other = dict(request, subject={'CN': 'Gina New'})
    plan = _plan(ca, [other])
    assert plan['due'][0]['reason_codes'] == ['force', 'subject_changed']
    assert fleet_due_requests(plan, [other]) == [other]


@pytest.mark.parametrize('reason_codes, expected', [([], lifecycle.UP_TO_DATE), (['expired'], 'expired')])
def test_decision_code_is_the_leading_reason(reason_codes, expected):
    decision = lifecycle.Decision('none' if not reason_codes else 'renew',
                                  tuple(lifecycle.Reason(code, code) for code in reason_codes))
    assert decision.code == expected
    assert decision.to_result()['reason_codes'] == reason_codes


def test_commits_write_supersede_link_audit_and_revoke_once(make_ca):
    ca = make_ca('commit')
    first = ca.ensure('hank')
    second = ca.ensure('hank', force=True)
    old = ca.record(first['serial'])
    assert old.pending_revocation and old.renewed_by == second['serial']
    audit = [e for e in ca.audit() if e['identity'] == 'hank']
    renewal = [e for e in audit if e['action'] == 'renew'][0]
    assert renewal['detail']['previous_serial'] == first['serial'] and renewal['detail']['reason'] == 'force is set'
    with ca.open() as managed, managed.store.write():
        lifecycle.commit_revoked(managed.store, [old], ca.clock(), 'superseded', {'request': 'test'})
    revoked = ca.record(first['serial'])
    assert revoked.status == 'revoked' and revoked.revocation_reason == 'superseded'
    entry = [e for e in ca.audit() if e['action'] == 'revoke'][-1]
    assert entry['detail'] == {'request': 'test', 'reason': 'superseded', 'was_current': False,
                               'was_pending_revocation': True}


def test_plan_records_what_each_store_should_hold_and_the_filter_splits_by_store_set(make_ca):
    ca = make_ca('records')
    first = ca.ensure('hana')
    second = ca.ensure('hana', force=True)  # the first is superseded, still valid
    ca.revoke(serial=first['serial'], reason='superseded')
    ca.ensure('ivan')
    requests = [{'identity': name, 'subject': {'CN': name}, 'key_type': 'ec-p256', 'host': 'h1'}
                for name in ('hana', 'ivan', 'nobody')]
    plan = _plan(ca, requests)
    record = plan['records']['hana']
    assert record['serial'] == second['serial'] and record['fingerprint_sha256'] == second['fingerprint_sha256']
    assert record['superseded_serials'] == [first['serial']] and record['revoked_serials'] == [first['serial']]
    assert record['superseded_fingerprints_sha256'] == [first['fingerprint_sha256']]
    assert record['key_status'] == 'held' and 'nobody' not in plan['records']
    assert plan['ca_certificate'].startswith('-----BEGIN CERTIFICATE-----')
    assert 'PRIVATE' not in str(plan)
    host_identities = [{'identity': 'hana', 'stores': ['firefox', 'macos_keychain'], 'homes': ['/home/h']},
                       {'identity': 'ivan', 'stores': ['chromium'], 'homes': ['/home/h']},
                       {'identity': 'nobody', 'stores': ['firefox'], 'homes': ['/home/h']},  # no certificate yet
                       {'identity': 'ivan', 'stores': ['windows_store']}]  # a Windows store: the deploy role's
    calls = fleet_reconcile(host_identities, plan)
    assert [(call['stores'], [i['identity'] for i in call['identities']]) for call in calls] == [
        (['chromium'], ['ivan']), (['firefox', 'keychain'], ['hana'])]  # a store gets only its identities
    assert calls[1]['revoked_serials'] == [first['serial']] and calls[0]['revoked_serials'] == []
    assert calls[1]['homes'] == ['/home/h'] and calls[1]['users'] == []


def test_drift_of_a_host_from_its_reconcile_results():
    plan = {'records': {'alice': {'key_status': 'held'}, 'bob': {'key_status': 'purged'}}}
    first = [{'stores': [
        {'store': 'firefox', 'path': '/h/p1', 'missing': ['alice', 'bob'], 'imported': [], 'foreign': [{'serial': 'F'}],
         'removed': [{'reason': 'revoked', 'serial': '1'}, {'reason': 'superseded', 'serial': '2'}], 'problems': []},
        {'store': 'chromium', 'path': '/h/nssdb', 'missing': [], 'imported': [], 'removed': [], 'problems': []}]}]
    second = [{'stores': [{'store': 'firefox', 'path': '/h/p1', 'missing': ['bob'], 'imported': ['alice'],
                           'removed': [], 'problems': []}]}]
    drift = fleet_drift(first, second, plan)
    firefox = drift['stores'][0]
    assert firefox['restored'] == ['alice'] and firefox['still_missing'] == ['bob']
    assert firefox['missing_key_not_held'] == ['bob'] and [r['serial'] for r in firefox['removed_revoked']] == ['1']
    assert drift['summary'] == {'missing': 2, 'restored': 1, 'still_missing': 1, 'removed_revoked': 1,
                                'removed_superseded': 1, 'foreign': 1, 'unclaimed': 0, 'problems': 0, 'stores': 2,
                                'drift': True}
    clean = fleet_drift([{'stores': [first[0]['stores'][1]]}], [], plan)['summary']
    assert clean['drift'] is False
    totals = fleet_drift_totals([drift['summary'], clean])
    assert totals['hosts_with_drift'] == 1 and totals['restored'] == 1 and totals['stores'] == 3


def test_the_one_time_passwords_reach_only_their_identities():
    exports = [{'identity': 'alice', 'dest': '/ca/tmp/batch/alice.p12'}]
    passwords = [{'content': base64.b64encode(b'one-time\n').decode()}]
    given = fleet_reconcile_pkcs12([{'identity': 'alice'}, {'identity': 'bob'}], exports, passwords, '/t')
    assert given == [{'identity': 'alice', 'pkcs12_path': '/t/alice.p12', 'pkcs12_password': 'one-time'},
                     {'identity': 'bob'}]
