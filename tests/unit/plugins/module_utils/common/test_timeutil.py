# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import datetime

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import (
    RenewWindow, from_iso, parse_positive_days, parse_renew_window, to_iso, utcnow,
)

UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)


@pytest.mark.parametrize('value, delta, percent', [
    ('30d', datetime.timedelta(days=30), None),
    (30, datetime.timedelta(days=30), None),
    ('30', datetime.timedelta(days=30), None),
    (' 7 days ', datetime.timedelta(days=7), None),
    ('1day', datetime.timedelta(days=1), None),
    ('12h', datetime.timedelta(hours=12), None),
    ('36 hours', datetime.timedelta(hours=36), None),
    ('2w', datetime.timedelta(weeks=2), None),
    ('3 WEEKS', datetime.timedelta(weeks=3), None),
    ('0d', datetime.timedelta(0), None),
    ('20%', None, 20.0),
    (' 33.5 % ', None, 33.5),
    ('1%', None, 1.0),
    ('99.9%', None, 99.9),
])
def test_parse_renew_window_accepts(value, delta, percent):
    window = parse_renew_window(value)
    assert window.delta == delta
    assert window.percent == percent


@pytest.mark.parametrize('value', [
    '', 'abc', '-5d', '5 days ago', '30x', '30dd', 'd', '1.5d', '0%', '100%', '150%', '-20%', '20%%', True, False,
    None, [30], {'days': 30},
])
def test_parse_renew_window_refuses(value):
    with pytest.raises(InputError) as err:
        parse_renew_window(value)
    assert err.value.field == 'renew_before'
    assert err.value.message.startswith('renew_before: ')


def test_parse_renew_window_names_the_given_field():
    with pytest.raises(InputError) as err:
        parse_renew_window('soon', field='policy.renew')
    assert err.value.field == 'policy.renew'
    assert "'soon'" in str(err.value)


def test_renew_window_starts_at_fixed_duration():
    not_before = datetime.datetime(2030, 1, 1, tzinfo=UTC)
    not_after = not_before + 365 * DAY
    assert parse_renew_window('30d').starts_at(not_before, not_after) == not_after - 30 * DAY
    assert parse_renew_window('12h').starts_at(not_before, not_after) == not_after - datetime.timedelta(hours=12)


@pytest.mark.parametrize('lifetime_days, percent, expected_days_before_end', [
    (100, '20%', 20),
    (365, '10%', 36.5),
    (90, '50%', 45),
])
def test_renew_window_starts_at_share_of_lifetime(lifetime_days, percent, expected_days_before_end):
    not_before = datetime.datetime(2030, 1, 1, tzinfo=UTC)
    not_after = not_before + lifetime_days * DAY
    starts = parse_renew_window(percent).starts_at(not_before, not_after)
    assert starts == not_after - datetime.timedelta(days=expected_days_before_end)
    assert not_before < starts < not_after


def test_renew_window_str():
    assert str(parse_renew_window('30d')) == '30d'
    assert str(parse_renew_window('12h')) == '0.5d'
    assert str(parse_renew_window('20%')) == '20%'
    assert RenewWindow(percent=12.5).__str__() == '12.5%'


def test_iso_round_trip_and_utc():
    moment = datetime.datetime(2031, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
    text = to_iso(moment)
    assert text == '2031-02-03T04:05:06Z'
    assert from_iso(text) == moment.replace(microsecond=0)
    # naive values are taken as UTC, other zones are converted
    assert to_iso(datetime.datetime(2031, 2, 3, 4, 5, 6)) == text
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert to_iso(datetime.datetime(2031, 2, 3, 6, 5, 6, tzinfo=plus_two)) == text
    assert to_iso(None) is None
    assert from_iso(None) is None


def test_utcnow_is_aware_and_whole_seconds():
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == datetime.timedelta(0)
    assert now.microsecond == 0


@pytest.mark.parametrize('value, allow_zero, expected', [
    (5, False, 5), ('5', False, 5), (0, True, 0), ('0', True, 0),
])
def test_parse_positive_days(value, allow_zero, expected):
    assert parse_positive_days(value, 'valid_days', allow_zero=allow_zero) == expected


@pytest.mark.parametrize('value, allow_zero', [
    (0, False), (-1, False), (-1, True), ('x', False), (None, False), ('1.5', False),
])
def test_parse_positive_days_refuses(value, allow_zero):
    with pytest.raises(InputError) as err:
        parse_positive_days(value, 'valid_days', allow_zero=allow_zero)
    assert err.value.field == 'valid_days'
