# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time and duration helpers (private module_utils)."""

from __future__ import annotations

import datetime
import re
import sys
from dataclasses import dataclass

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

UTC = datetime.timezone.utc


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(UTC).replace(microsecond=0)


def to_iso(value: datetime.datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, second precision."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # Formatted by hand: strftime costs several times more, and CRLs format every revocation (100,000s).
    return '%04d-%02d-%02dT%02d:%02d:%02dZ' % (value.year, value.month, value.day, value.hour, value.minute,
                                               value.second)


_FROMISOFORMAT_Z = sys.version_info >= (3, 11)
_ISO = re.compile(r'([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z\Z')


def from_iso(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    # The stored form, exactly (fast: the store reads 100,000s of them for a CRL); anything else goes to the strict
    # parser, which says what is wrong.
    if _ISO.match(text) is not None:
        try:
            if _FROMISOFORMAT_Z:
                return datetime.datetime.fromisoformat(text)  # Python 3.11+: 'Z' gives UTC
            return datetime.datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=UTC)


_DURATION = re.compile(r'^\s*(\d+)\s*(d|day|days|h|hour|hours|w|week|weeks)?\s*$', re.IGNORECASE)
_PERCENT = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*%\s*$')


@dataclass(frozen=True)
class RenewWindow:
    """How long before notAfter a certificate is renewed: a fixed duration or a share of its lifetime."""

    delta: datetime.timedelta | None = None
    percent: float | None = None

    def starts_at(self, not_before: datetime.datetime, not_after: datetime.datetime) -> datetime.datetime:
        if self.percent is not None:
            return not_after - (not_after - not_before) * (self.percent / 100.0)
        return not_after - self.delta

    def __str__(self) -> str:
        if self.percent is not None:
            return '%g%%' % self.percent
        days = self.delta.total_seconds() / 86400
        return '%gd' % days


def parse_renew_window(value, field: str = 'renew_before') -> RenewWindow:
    """Parse ``30`` / ``"30d"`` / ``"12h"`` / ``"2w"`` / ``"20%"``."""
    if isinstance(value, bool):
        raise InputError('expected days ("30d") or a percentage of the lifetime ("20%%"), got %r' % value, field)
    if isinstance(value, int):
        value = str(value)
    text = str(value)
    match = _PERCENT.match(text)
    if match:
        percent = float(match.group(1))
        if not 0 < percent < 100:
            raise InputError('a percentage must be between 0 and 100 (exclusive), got %r' % text, field)
        return RenewWindow(percent=percent)
    match = _DURATION.match(text)
    if match:
        amount = int(match.group(1))
        unit = (match.group(2) or 'd').lower()[0]
        hours = {'d': 24, 'h': 1, 'w': 24 * 7}[unit] * amount
        return RenewWindow(delta=datetime.timedelta(hours=hours))
    raise InputError('expected days ("30d", "12h", "2w") or a percentage of the lifetime ("20%%"), got %r' % text,
                     field)


def parse_positive_days(value, field: str, allow_zero: bool = False) -> int:
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise InputError('expected a whole number of days, got %r' % (value,), field)
    if days < 0 or (days == 0 and not allow_zero):
        raise InputError('must be a positive number of days, got %r' % (value,), field)
    return days
