# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import csv
import io

import pytest

from ansible_collections.certfleet.pki.plugins.filter.report import (
    certificate_report, drift_counts, timeline_axis, to_csv,
)

NOW = '2026-01-15T12:00:00Z'


def _cert(serial, status='valid', not_after='2026-02-01T12:00:00Z', **extra):
    return dict({'identity': 'alice', 'serial': serial, 'status': status, 'not_after': not_after}, **extra)


@pytest.mark.parametrize('not_after, status, days_left, expiring, timeline', [
    ('2026-02-01T12:00:00Z', 'valid', 17, True, 17 / 365),
    ('2026-02-14T12:00:00Z', 'valid', 30, True, 30 / 365),
    ('2026-02-15T12:00:00Z', 'valid', 31, False, 31 / 365),
    ('2028-01-01T00:00:00Z', 'valid', 715, False, 1.0),
    ('2026-01-10T00:00:00Z', 'expired', -6, False, 0.0),
    ('2026-02-01T12:00:00Z', 'revoked', 17, False, 17 / 365),
])
def test_certificate_report_days_and_flags(not_after, status, days_left, expiring, timeline):
    row = certificate_report([_cert('A1', status, not_after)], [], 30, now=NOW)[0]
    assert (row['days_left'], row['expiring']) == (days_left, expiring)
    assert row['timeline'] == pytest.approx(timeline)


def test_certificate_report_hosts_come_from_deployments():
    deployments = [{'identity': 'alice', 'host': 'h2', 'serial': 'A1'},
                   {'identity': 'alice', 'host': 'h1', 'serial': 'A1'},
                   {'identity': 'alice', 'host': 'h3', 'serial': 'B2'}]
    rows = certificate_report([_cert('A1'), _cert('B2'), _cert('C3')], deployments, now=NOW)
    assert [row['hosts'] for row in rows] == [['h1', 'h2'], ['h3'], []]


def test_to_csv_quotes_and_flattens():
    text = to_csv([{'identity': 'Smith, "Al"', 'hosts': ['h1', 'h2'], 'expiring': True, 'revoked_at': None}],
                  ['identity', 'hosts', 'expiring', 'revoked_at'])
    assert list(csv.reader(io.StringIO(text))) == [['identity', 'hosts', 'expiring', 'revoked_at'],
                                                   ['Smith, "Al"', 'h1 h2', 'yes', '']]
    assert text.splitlines()[1] == '"Smith, ""Al""",h1 h2,yes,'


def test_timeline_axis_has_twelve_month_ticks_in_order():
    ticks = timeline_axis(NOW)
    assert [t['label'] for t in ticks] == ['Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov',
                                           'Dec', '2027']
    fractions = [t['fraction'] for t in ticks]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] <= 1


AUDITS = [
    {'host': 'pc1', 'audited_at': NOW, 'summary': {'stores': 2, 'missing': 1, 'restored': 1, 'drift': True},
     'findings': [{'kind': 'missing', 'identity': 'alice', 'store': 'firefox', 'user': 'alice', 'outcome': 'restored'},
                  {'kind': 'revoked_installed', 'identity': 'alice', 'store': 'chromium', 'user': 'alice',
                   'serial': 'A0', 'outcome': 'removed', 'reason': 'revoked'}]},
    {'host': 'pc2', 'audited_at': NOW, 'summary': {'stores': 1, 'missing': 1, 'still_missing': 1, 'drift': True},
     'findings': [{'kind': 'missing', 'identity': 'bob', 'store': 'firefox', 'outcome': 'still_missing'}]},
    {'host': 'pc3', 'audited_at': NOW, 'summary': {'stores': 3, 'drift': False}, 'findings': []},
]


def test_certificate_report_drift_column_names_host_store_and_what_happened():
    rows = certificate_report([_cert('A0', 'revoked', current=False), _cert('A1', current=True),
                               _cert('B1', identity='bob', current=True), _cert('C1', identity='carol', current=True)],
                              [], now=NOW, host_audits=AUDITS)
    drift = {row['serial']: row['drift'] for row in rows}
    assert drift == {'A0': 'pc1 chromium/alice: revoked copy installed, removed',
                     'A1': 'pc1 firefox/alice: missing, restored',
                     'B1': 'pc2 firefox: missing, still missing',
                     'C1': ''}


def test_certificate_report_without_audits_has_an_empty_drift_column():
    assert [row['drift'] for row in certificate_report([_cert('A1', current=True)], [], now=NOW)] == ['']


def test_drift_column_is_in_the_csv():
    rows = certificate_report([_cert('A1', current=True)], [], now=NOW, host_audits=AUDITS)
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert parsed[0]['drift'] == 'pc1 firefox/alice: missing, restored'


def test_drift_counts_over_the_hosts_last_audits():
    assert drift_counts(AUDITS) == {'hosts_audited': 3, 'hosts_with_drift': 2, 'missing': 2, 'restored': 1,
                                    'still_missing': 1, 'removed_revoked': 0, 'removed_superseded': 0,
                                    'unclaimed': 0, 'problems': 0}
    assert drift_counts([])['hosts_audited'] == 0


def _pickup(serial, state, **extra):
    return dict({'pickup_id': 'p-' + serial, 'serial': serial, 'state': state, 'downloads': 0,
                 'first_pickup_at': None, 'window_ends_at': '2026-01-20T12:00:00Z', 'failed_attempts': 0,
                 'confirmed_at': None}, **extra)


@pytest.mark.parametrize('pickup, text', [
    (_pickup('A1', 'open'), 'awaiting pickup until 2026-01-20'),
    (_pickup('A1', 'open', window_ends_at=None), 'awaiting pickup'),
    (_pickup('A1', 'picked_up', downloads=1, first_pickup_at='2026-01-16T09:00:00Z'), 'picked up 2026-01-16'),
    (_pickup('A1', 'picked_up', downloads=1, first_pickup_at='2026-01-16T09:00:00Z',
             confirmed_at='2026-01-16T09:05:00Z'), 'picked up 2026-01-16, replacement confirmed'),
    (_pickup('A1', 'locked', failed_attempts=5), 'locked after 5 wrong PINs'),
    (_pickup('A1', 'expired'), 'expired 2026-01-20, never picked up'),
    (_pickup('A1', 'expired', downloads=1, first_pickup_at='2026-01-16T09:00:00Z'),
     'picked up 2026-01-16, window closed'),
    (_pickup('A1', 'closed'), 'withdrawn'),
])
def test_pickup_column_says_where_the_person_stands(pickup, text):
    rows = certificate_report([_cert('A1', current=True), _cert('B1', identity='bob')], [], now=NOW,
                              pickups=[pickup])
    assert [(row['serial'], row['pickup']) for row in rows] == [('A1', text), ('B1', '')]


def test_the_latest_pickup_of_a_certificate_counts_and_the_csv_has_it_last():
    pickups = [_pickup('A1', 'expired'), _pickup('A1', 'open', pickup_id='p-again')]
    rows = certificate_report([_cert('A1', current=True)], [], now=NOW, pickups=pickups)
    text = to_csv(rows)
    assert text.splitlines()[0].endswith(',drift,pickup')
    assert list(csv.DictReader(io.StringIO(text)))[0]['pickup'] == 'awaiting pickup until 2026-01-20'
