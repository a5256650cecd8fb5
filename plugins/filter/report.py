# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the report playbook: certificate rows with their hosts and expiry, CSV text, the timeline axis."""

from __future__ import annotations

import datetime

from ansible_collections.certfleet.pki.plugins.module_utils.common.tabular import render_table

REPORT_COLUMNS = ('identity', 'serial', 'status', 'current', 'hosts', 'not_before', 'not_after', 'days_left',
                  'expiring', 'pending_revocation', 'revocation_reason', 'revoked_at', 'renewed_by',
                  'fingerprint_sha256')
TIMELINE_DAYS = 365


def _parse(value) -> datetime.datetime | None:
    if not value:
        return None
    text = str(value)
    if text.endswith('Z'):
        text = text[:-1] + '+00:00'
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _now(now=None) -> datetime.datetime:
    return _parse(now) if now else datetime.datetime.now(datetime.timezone.utc)


def certificate_report(certificates, deployments=None, expiring_within=30, now=None, days=TIMELINE_DAYS):
    """One row per certificate: the info module's fields plus ``hosts`` (from the deployment records), a signed
    ``days_left`` (negative once expired), ``expiring`` and ``timeline`` (0..1, where not_after falls in the next
    ``days`` days)."""
    moment = _now(now)
    hosts: dict = {}
    for record in deployments or []:
        hosts.setdefault(str(record.get('serial')), []).append(str(record.get('host')))
    horizon = int(expiring_within)
    rows = []
    for certificate in certificates or []:
        row = dict(certificate)
        not_after = _parse(certificate.get('not_after'))
        days_left = int((not_after - moment).total_seconds() // 86400) if not_after else None
        row['hosts'] = sorted(hosts.get(str(certificate.get('serial')), []))
        row['days_left'] = days_left
        row['expiring'] = bool(row.get('status') == 'valid' and days_left is not None and days_left <= horizon)
        row['timeline'] = (min(max(days_left / float(days), 0.0), 1.0) if days_left is not None else 0.0)
        rows.append(row)
    return rows


def timeline_axis(now=None, days=TIMELINE_DAYS):
    """Month ticks of the next ``days`` days: [{fraction, label}] for the first of each month."""
    moment = _now(now)
    ticks = []
    year, month = moment.year, moment.month
    while True:
        month += 1
        if month > 12:
            year, month = year + 1, 1
        first = datetime.datetime(year, month, 1, tzinfo=datetime.timezone.utc)
        fraction = (first - moment).total_seconds() / (days * 86400.0)
        if fraction > 1:
            return ticks
        ticks.append({'fraction': fraction, 'label': first.strftime('%Y' if month == 1 else '%b')})


def to_csv(rows, columns=None):
    """Rows (dicts) as CSV text with a header line, written by the collection's one CSV writer (the inventory
    module's): quoting by the csv module, lists joined with spaces, formulas neutralised."""
    columns = list(columns or REPORT_COLUMNS)
    return render_table(columns, [[row.get(column) for column in columns] for row in rows or []], ',').decode('utf-8')


class FilterModule:
    def filters(self):
        return {
            'certificate_report': certificate_report,
            'timeline_axis': timeline_axis,
            'to_csv': to_csv,
        }
