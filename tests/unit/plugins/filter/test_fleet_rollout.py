# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roll-out's per-host decisions, made once on the controller: which identities the reconcile call carries,
which take the deploy role, what is exported, and what gets recorded as deployed."""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.filter.fleet import (
    fleet_deployments, fleet_export_batch, fleet_issue_batch, fleet_reconcile_sources, fleet_role_work, fleet_rollout,
)


def _record(serial, key_status='held'):
    return {'serial': serial, 'fingerprint_sha256': 'F' + serial, 'superseded_serials': ['OLD' + serial],
            'superseded_fingerprints_sha256': ['FOLD' + serial], 'revoked_serials': [], 'key_status': key_status}


def _entry(name, stores, **extra):
    return dict({'identity': name, 'subject': {'CN': name}, 'stores': stores, 'homes': ['/home/x']}, **extra)


HOSTVARS = {
    'linux': {'certfleet_identities': [
        _entry('ann', ['firefox', 'chromium'], auto_select_urls=['https://mtls.example']), _entry('ben', ['firefox']),
        _entry('cat', []),
        _entry('dan', ['firefox'], verify_url='https://mtls.example/'), _entry('eve', ['firefox', 'macos_keychain']),
        _entry('fay', ['firefox']), _entry('gus', ['firefox']),
        _entry('liz', ['apple_profile'], apple_profile_dest='/srv/mdm/liz.mobileconfig'),
        _entry('max', ['windows_store']), _entry('ned', ['macos_keychain'], identity_preference_urls=['https://v/'])],
        'deploy_apple_profile_include_password': True},
    'windows': {'ansible_connection': 'winrm', 'certfleet_identities': [
        _entry('hal', ['windows_store', 'firefox'], users=['hal', 'pat'])]},
    'broken': {'certfleet_identities': [{'identity': 'ivy', 'subject': {'CN': 'ivy'}}]},
    'refused': {'certfleet_identities': [_entry('joe', ['firefox'])]},
    'idle': {'certfleet_identities': [_entry('kim', ['firefox'])]},
    'no_dest': {'certfleet_identities': [_entry('oli', ['firefox', 'apple_profile'])]},
}
PLAN = {
    'work': [{'host': 'linux', 'identity': name, 'reason': 'renew'} for name in
             ('ann', 'ben', 'cat', 'dan', 'eve', 'fay', 'liz', 'max', 'ned')]
    + [{'host': 'no_dest', 'identity': 'oli', 'reason': 'renew'}]
    + [{'host': 'linux', 'identity': 'gus', 'reason': 'deploy'},
       {'host': 'windows', 'identity': 'hal', 'reason': 'issue'},
       {'host': 'broken', 'identity': 'ivy', 'reason': 'issue'}],
    'invalid': [{'host': 'refused', 'identity': 'joe', 'msg': 'subject: CN is required'}],
    'records': {},
}
FRESH = {'records': {'ann': _record('A'), 'ben': _record('B'), 'cat': _record('C'), 'dan': _record('D'),
                     'eve': _record('E'), 'fay': _record('F'), 'gus': _record('G', key_status='purged'),
                     'hal': _record('H'), 'liz': _record('L'), 'max': _record('M'), 'ned': _record('N'),
                     'oli': _record('O')}}


def test_each_host_is_split_between_the_reconcile_call_and_the_deploy_role():
    rollout = fleet_rollout(list(HOSTVARS), HOSTVARS, PLAN, FRESH)
    linux = rollout['hosts']['linux']
    in_calls = [(call['stores'], [i['identity'] for i in call['identities']]) for call in linux['calls']]
    # the call's store names: the keychain is endpoint_reconcile's 'keychain' (skipped where there is none)
    assert in_calls == [(['apple_profile'], ['liz']), (['chromium', 'firefox'], ['ann']), (['firefox'], ['ben', 'fay']),
                        (['firefox', 'keychain'], ['eve'])]
    # the profile file travels with its identity, with the host's deploy_apple_profile_include_password
    profile = linux['calls'][0]['identities'][0]
    assert profile['apple_profile_dest'] == '/srv/mdm/liz.mobileconfig' and profile['apple_profile_include_password']
    # a verify URL, an option only the role carries out, and a key the CA no longer holds take the role
    assert [e['identity'] for e in linux['fallback']] == ['dan', 'gus', 'ned']
    # nothing to put on the host (no store, or only another system's): recorded, as the role records it
    assert linux['storeless'] == [{'identity': 'cat', 'serial': 'C'}, {'identity': 'max', 'serial': 'M'}]
    # Chromium's auto-select policy is the reconcile path's too
    assert linux['chromium_policy'] == [{'identity': 'ann', 'urls': ['https://mtls.example'], 'subject': {'CN': 'ann'}}]
    call = linux['calls'][2]['identities'][0]
    assert call['serial'] == 'B' and call['fingerprint_sha256'] == 'FB' and call['superseded_serials'] == ['OLDB']
    assert 'apple_profile_dest' not in call
    assert rollout['export'] == ['liz', 'ann', 'ben', 'fay', 'eve', 'hal']  # once each, only what a call imports
    # a Windows host: its own calls (see below), none for the Linux module
    assert rollout['hosts']['windows']['calls'] == [] and rollout['hosts']['windows']['fallback'] == []
    assert rollout['hosts']['windows']['windows_calls']
    assert rollout['hosts']['broken']['invalid'] == ['certfleet_identities[0] needs identity, subject and stores']
    assert rollout['hosts']['refused']['invalid'] == ['identity joe: subject: CN is required']
    assert rollout['hosts']['no_dest']['invalid'] == [
        'certfleet_identities[0] (oli): the apple_profile store needs apple_profile_dest, the profile file for the MDM']
    assert 'idle' not in rollout['hosts']  # no work, no visit
    # ...unless an earlier roll-out of the same run left it in the group: then its part is empty
    again = fleet_rollout(list(HOSTVARS), HOSTVARS, PLAN, FRESH, earlier=['idle'])
    assert again['hosts']['idle']['calls'] == [] and again['hosts']['idle']['work'] == []


def _windows(identities, **host):
    hostvars = {'pc': dict({'ansible_connection': 'winrm', 'certfleet_identities': identities}, **host)}
    plan = {'work': [{'host': 'pc', 'identity': e['identity'], 'reason': 'renew'} for e in identities],
            'records': {}}
    fresh = {'records': {e['identity']: _record(e['identity'].upper()) for e in identities}}
    return fleet_rollout(['pc'], hostvars, plan, fresh)


def test_a_windows_host_gets_one_call_per_store_user_as_that_user_after_the_ca_as_system():
    rollout = _windows([_entry('hal', ['windows_store', 'firefox'], users=['hal', 'pat']),
                        _entry('pat', ['windows_store'], users=['pat']), _entry('ray', ['chromium'])])
    part = rollout['hosts']['pc']
    shape = [(c['become_user'], c['windows_store_location'], [i['identity'] for i in c['identities']])
             for c in part['windows_calls']]
    # a user may not write LocalMachine\Root: SYSTEM puts our CA there first, then each user's own store
    assert shape == [('SYSTEM', 'local_machine', []), ('hal', 'current_user', ['hal']),
                     ('pat', 'current_user', ['hal', 'pat'])]
    assert part['windows_calls'][1]['identities'][0]['fingerprint_sha256'] == 'FHAL'
    assert part['windows_firefox_policy'] is True  # Firefox reads the Windows store (enterprise policy)
    assert part['storeless'] == [{'identity': 'ray', 'serial': 'RAY'}]  # Chromium's NSS store is not on Windows
    assert rollout['export'] == ['hal', 'pat'] and part['invalid'] == []


def test_a_windows_machine_store_is_one_call_as_system_and_the_inventory_may_keep_the_role():
    machine = _windows([_entry('kim', ['windows_store'])], deploy_windows_location='local_machine')
    calls = machine['hosts']['pc']['windows_calls']
    assert [(c['become_user'], c['windows_store_location']) for c in calls] == [('SYSTEM', 'local_machine')]
    assert machine['hosts']['pc']['windows_firefox_policy'] is False
    role = _windows([_entry('kim', ['windows_store'], users=['kim'])], certfleet_windows_rollout='role')
    assert [e['identity'] for e in role['hosts']['pc']['fallback']] == ['kim']
    assert not role['hosts']['pc']['windows_calls']
    profile = _windows([_entry('kim', ['windows_store', 'apple_profile'], users=['kim'], apple_profile_dest='C:/p')])
    assert [e['identity'] for e in profile['hosts']['pc']['fallback']] == ['kim']  # the profile module is Python
    nobody = _windows([_entry('kim', ['windows_store'])])
    assert nobody['hosts']['pc']['invalid'] == [
        'identity kim: windows_store in CurrentUser needs users (each store is reached as its user, through runas), '
        'or deploy_windows_location: local_machine']


def test_a_windows_identity_is_recorded_only_when_every_users_store_holds_it():
    rollout = _windows([_entry('hal', ['windows_store'], users=['hal', 'pat'])])
    part = rollout['hosts']['pc']

    def outcome(*held):
        return {'stores': [{'store': 'windows', 'present': list(held), 'imported': []}]}
    hostvars = {'pc': {'_certfleet_rollout_host': part, '_certfleet_reconciled_windows': {
        'results': [outcome(), outcome('hal'), outcome('hal')]}}}
    assert fleet_deployments(['pc'], hostvars) == [
        {'identity': 'hal', 'host': 'pc', 'serial': 'HAL', 'stores': ['windows_store']}]
    hostvars['pc']['_certfleet_reconciled_windows']['results'][2] = {'failed': True, 'stores': []}
    assert fleet_deployments(['pc'], hostvars) == []  # pat's store failed: the old certificate is not revoked


def test_only_the_planned_actions_are_carried_out():
    rollout = fleet_rollout(['linux', 'windows'], HOSTVARS, PLAN, FRESH, actions=['issue'])
    assert [e['identity'] for e in rollout['hosts']['linux']['fallback']] == ['gus']  # 'deploy' work stays
    assert 'windows' in rollout['hosts'] and rollout['hosts']['linux']['calls'] == []


def test_the_batches_for_the_ca_carry_each_request_once_with_the_fleet_defaults():
    due = [{'identity': 'ann', 'subject': {'CN': 'ann'}, 'host': 'linux'},
           {'identity': 'a/b', 'subject': {'CN': 'x'}, 'valid_days': 30, 'renew_before': '5d', 'host': 'h'}]
    batch = fleet_issue_batch(due, ['ann'], 365, '30d')
    assert batch == [{'identity': 'ann', 'subject': {'CN': 'ann'}, 'valid_days': 365, 'renew_before': '30d',
                      'force': True},
                     {'identity': 'a/b', 'subject': {'CN': 'x'}, 'valid_days': 30, 'renew_before': '5d',
                      'force': False}]
    assert fleet_export_batch(['ann', 'a/b', '.x']) == [
        {'identity': 'ann', 'file': 'ann-0.p12'}, {'identity': 'a/b', 'file': 'a_b-1.p12'},
        {'identity': '.x', 'file': 'x-2.p12'}]


def test_the_calls_name_the_controller_files_of_the_batch():
    calls = [{'stores': ['firefox'], 'identities': [{'identity': 'ann'}, {'identity': 'bob'}]}]
    exports = [{'identity': 'ann', 'dest': '/ca/tmp/batch/ann-0.p12',
                'password_file': '/ca/tmp/batch/ann-0.p12.password'}]
    local = fleet_reconcile_sources(calls, exports)
    assert local[0]['identities'] == [
        {'identity': 'ann', 'pkcs12_src': '/ca/tmp/batch/ann-0.p12',
         'pkcs12_password_src': '/ca/tmp/batch/ann-0.p12.password'}, {'identity': 'bob'}]
    fetched = fleet_reconcile_sources(calls, exports, '/ctl/tmp')
    assert fetched[0]['identities'][0]['pkcs12_src'] == '/ctl/tmp/ann-0.p12'
    assert calls[0]['identities'][0] == {'identity': 'ann'}  # the input is not changed


def _store(present=(), imported=(), missing=()):
    return {'present': list(present), 'imported': list(imported), 'missing': list(missing)}


def test_a_deployment_is_recorded_only_where_every_store_holds_the_new_certificate():
    call = {'stores': ['firefox', 'chromium'], 'identities': [{'identity': 'ann', 'serial': 'A'},
                                                              {'identity': 'ben', 'serial': 'B'}]}
    hostvars = {
        'ok': {'_certfleet_rollout_host': {'calls': [call], 'storeless': [{'identity': 'cat', 'serial': 'C'}]},
               '_certfleet_reconciled': {'results': [{'stores': [
                   _store(present=['ann'], imported=['ben']), _store(imported=['ann'], missing=['ben'])]}]}},
        'failed': {'_certfleet_rollout_host': {'calls': [call]},
                   '_certfleet_reconciled': {'results': [{'failed': True,
                                                          'stores': [_store(present=['ann', 'ben'])]}]}},
        'mac': {'_certfleet_rollout_host': {'calls': [call], 'work': [{'identity': 'ann', 'stores': ['firefox']}]},
                '_certfleet_reconciled': {'results': [{'unsupported_platform': 'Darwin', 'stores': []}]}},
    }
    assert fleet_deployments(['ok', 'failed', 'mac'], hostvars) == [
        {'identity': 'cat', 'host': 'ok', 'serial': 'C', 'stores': []},
        {'identity': 'ann', 'host': 'ok', 'serial': 'A', 'stores': ['firefox', 'chromium']}]
    # the host that is not Linux gives its work to the deploy role
    assert fleet_role_work(hostvars['mac']) == [{'identity': 'ann', 'stores': ['firefox']}]
    assert fleet_role_work(hostvars['ok']) == []


def test_a_profile_file_counts_for_its_identity_and_skipped_stores_are_not_recorded():
    call = {'stores': ['apple_profile', 'firefox', 'keychain'],
            'identities': [{'identity': 'ann', 'serial': 'A', 'apple_profile_dest': '/srv/mdm/ann.mobileconfig'},
                           {'identity': 'ben', 'serial': 'B'}]}
    profile = dict(_store(imported=['ann']), identity='ann')
    hostvars = {'linux': {'_certfleet_rollout_host': {'calls': [call]}, '_certfleet_reconciled': {'results': [
        {'skipped_stores': ['keychain'], 'stores': [profile, _store(present=['ann', 'ben'])]}]}}}
    assert fleet_deployments(['linux'], hostvars) == [
        {'identity': 'ann', 'host': 'linux', 'serial': 'A', 'stores': ['apple_profile', 'firefox']},
        {'identity': 'ben', 'host': 'linux', 'serial': 'B', 'stores': ['firefox']}]  # ben has no profile
    missing = dict(_store(missing=['ann']), identity='ann')
    hostvars['linux']['_certfleet_reconciled']['results'][0]['stores'][0] = missing
    assert [d['identity'] for d in fleet_deployments(['linux'], hostvars)] == ['ben']
