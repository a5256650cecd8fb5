# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service.ManagedCA.record_host_audits: what the drift audit found on each host, for the report."""

from __future__ import annotations

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

MISSING = {'kind': 'missing', 'identity': 'alice', 'store': 'firefox', 'user': 'alice',
           'path': '/home/alice/.mozilla/firefox/x.default', 'outcome': 'restored'}


def _record(ca, audits, check_mode=False):
    with ca.open() as managed:
        return managed.record_host_audits(audits, check_mode=check_mode)


def _audits(ca) -> list:
    with ca.open() as managed, managed.store.read():
        return managed.store.host_audits()


def _drifting(serial) -> list:
    return [{'host': 'pc1', 'summary': {'stores': 2, 'missing': 1, 'restored': 1, 'removed_revoked': 1},
             'findings': [MISSING, {'kind': 'revoked_installed', 'identity': 'alice', 'store': 'chromium',
                                    'serial': serial.lower(), 'outcome': 'removed', 'reason': 'revoked'}]},
            {'host': 'pc2', 'summary': {'stores': '1'}, 'findings': []}]


def test_recorded_then_unchanged_then_replaced(ca):
    serial = ca.ensure('alice')['serial']
    first = _record(ca, _drifting(serial))
    assert first == {'changed': True, 'audits_recorded': [{'host': 'pc1', 'drift': True},
                                                          {'host': 'pc2', 'drift': False}]}
    audits = {a['host']: a for a in _audits(ca)}
    assert audits['pc1']['summary']['drift'] is True and audits['pc1']['summary']['missing'] == 1
    assert audits['pc1']['findings'][1]['serial'] == serial  # normalised
    assert audits['pc2']['summary'] == dict.fromkeys(audits['pc2']['summary'], 0) | {'stores': 1, 'drift': False}
    entries = [e for e in ca.audit() if e['action'] == 'drift_audit']
    assert sorted((e['detail']['host'], e['outcome']) for e in entries) == [('pc1', 'drift'), ('pc2', 'clean')]
    assert [e['serials'] for e in entries if e['detail']['host'] == 'pc1'] == [[serial]]

    ca.clock.advance(hours=24)
    again = _record(ca, _drifting(serial))
    assert again == {'changed': False, 'audits_recorded': []}
    later = {a['host']: a for a in _audits(ca)}
    assert later['pc1']['audited_at'] > audits['pc1']['audited_at']  # the time moves, nothing else
    assert len([e for e in ca.audit() if e['action'] == 'drift_audit']) == 2

    clean = _record(ca, [{'host': 'pc1', 'summary': {'stores': 2}, 'findings': []}])
    assert clean['audits_recorded'] == [{'host': 'pc1', 'drift': False}]
    assert {a['host']: a['findings'] for a in _audits(ca)} == {'pc1': [], 'pc2': []}


def test_check_mode_writes_nothing(ca):
    serial = ca.ensure('alice')['serial']
    predicted = _record(ca, _drifting(serial), check_mode=True)
    assert predicted['changed'] is True and len(predicted['audits_recorded']) == 2
    assert _audits(ca) == [] and not [e for e in ca.audit() if e['action'] == 'drift_audit']


GOOD = {'host': 'pc0', 'summary': {'missing': 1}, 'findings': [MISSING]}


@pytest.mark.parametrize('audits, field', [
    ([], 'host_audits'),
    ([GOOD, {'host': '', 'findings': []}], 'host_audits[1].host'),
    ([GOOD, {'host': 'pc1'}, {'host': 'pc1'}], 'host_audits[2].host'),
    ([GOOD, {'host': 'pc1', 'summary': {'missing': -1}}], 'host_audits[1].summary.missing'),
    ([GOOD, {'host': 'pc1', 'summary': {'missing': True}}], 'host_audits[1].summary.missing'),
    ([GOOD, {'host': 'pc1', 'summary': 'lots'}], 'host_audits[1].summary'),
    ([GOOD, {'host': 'pc1', 'findings': [{'kind': 'stolen'}]}], 'host_audits[1].findings[0]'),
    ([GOOD, {'host': 'pc1', 'findings': [{'kind': 'missing', 'password': 'x'}]}], 'host_audits[1].findings[0]'),
    ([GOOD, {'host': 'pc1', 'findings': [{'kind': 'unclaimed', 'serial': 'not hex'}]}],
     'host_audits[1].findings[0].serial'),
    ([GOOD, {'host': 'pc1', 'findings': [{'kind': 'missing', 'identity': ['a']}]}],
     'host_audits[1].findings[0].identity'),
])
def test_bad_input_names_the_field_and_writes_nothing(ca, audits, field):
    with pytest.raises(InputError) as failure:
        _record(ca, audits)
    assert failure.value.field == field
    assert _audits(ca) == [] and not [e for e in ca.audit() if e['action'] == 'drift_audit']


def test_the_query_gives_the_audits_with_the_deployments(ca):
    serial = ca.ensure('alice')['serial']
    _record(ca, _drifting(serial))
    result = ca.query(include_deployments=True)
    assert [a['host'] for a in result['host_audits']] == ['pc1', 'pc2']
    assert 'host_audits' not in ca.query(identity='alice', include_deployments=True)
    assert 'host_audits' not in ca.query()
