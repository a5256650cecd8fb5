# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the report playbook: certificate rows with their hosts and expiry, CSV text, the timeline axis."""

from __future__ import annotations

import datetime

from ansible_collections.certfleet.pki.plugins.module_utils.common.tabular import render_table

REPORT_COLUMNS = ('identity', 'serial', 'status', 'current', 'hosts', 'not_before', 'not_after', 'days_left',
                  'expiring', 'pending_revocation', 'revocation_reason', 'revoked_at', 'renewed_by',
                  'fingerprint_sha256', 'drift', 'pickup')
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


def _drift_text(host: str, finding: dict) -> str:
    where = '/'.join(str(finding[k]) for k in ('store', 'user') if finding.get(k))
    if finding['kind'] == 'missing':
        what = 'missing, %s' % finding.get('outcome', 'still_missing').replace('_', ' ')
    elif finding['kind'] == 'unclaimed':
        what = 'installed, claimed by no identity of the host'
    else:
        what = '%s copy installed, %s' % ('revoked' if finding['kind'] == 'revoked_installed'
                                          else finding.get('reason') or 'superseded', finding.get('outcome', ''))
    return '%s %s: %s' % (host, where, what.rstrip(', '))


def _drift_by_row(host_audits) -> tuple:
    """({serial: [text]}, {identity: [text]}): what the last audit of each host found, by the serial it names
    (a copy removed or left) and by identity (a current certificate that was missing)."""
    by_serial: dict = {}
    by_identity: dict = {}
    for audit in host_audits or []:
        for finding in audit.get('findings') or []:
            text = _drift_text(str(audit.get('host')), finding)
            if finding.get('kind') == 'missing':
                by_identity.setdefault(str(finding.get('identity')), []).append(text)
            elif finding.get('serial'):
                by_serial.setdefault(str(finding['serial']), []).append(text)
    return by_serial, by_identity


def _pickup_text(pickup: dict) -> str:
    """Where the person stands with a pickup, in the officer's words (the info module's entry holds no secret)."""
    state = pickup.get('state')
    first = str(pickup.get('first_pickup_at') or '')[:10]
    ends = str(pickup.get('window_ends_at') or '')[:10]
    if state == 'open':
        return 'awaiting pickup' + (' until %s' % ends if ends else '')
    if state == 'picked_up':
        confirmed = ', replacement confirmed' if pickup.get('confirmed_at') else ''
        return 'picked up %s%s' % (first, confirmed)
    if state == 'locked':
        return 'locked after %s wrong PINs' % pickup.get('failed_attempts')
    if state == 'expired':
        if pickup.get('downloads'):
            return 'picked up %s, window closed' % first
        return 'expired %s, never picked up' % ends
    return 'withdrawn'  # closed by the officer before any download


def _pickups_by_serial(pickups) -> dict:
    """{serial: text} of each certificate's latest pickup (client_certificate_pickup_info's list, oldest first)."""
    latest = {}
    for pickup in pickups or []:
        latest[str(pickup.get('serial'))] = _pickup_text(pickup)
    return latest


def certificate_report(certificates, deployments=None, expiring_within=30, now=None, days=TIMELINE_DAYS,
                       host_audits=None, pickups=None):
    """One row per certificate: the info module's fields plus ``hosts`` (from the deployment records), ``drift``
    (what the last drift audit of each host found about it, from ``host_audits``), ``pickup`` (where the latest
    pickup of it stands, from ``pickups``), a signed ``days_left`` (negative once expired), ``expiring`` and
    ``timeline`` (0..1, where not_after falls in the next ``days`` days)."""
    moment = _now(now)
    drift_serial, drift_identity = _drift_by_row(host_audits)
    pickup_of = _pickups_by_serial(pickups)
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
        found = list(drift_serial.get(str(certificate.get('serial')), []))
        if certificate.get('current'):
            found += drift_identity.get(str(certificate.get('identity')), [])
        row['drift'] = '; '.join(sorted(found))
        row['pickup'] = pickup_of.get(str(certificate.get('serial')), '')
        row['days_left'] = days_left
        row['expiring'] = bool(row.get('status') == 'valid' and days_left is not None and days_left <= horizon)
        row['timeline'] = (min(max(days_left / float(days), 0.0), 1.0) if days_left is not None else 0.0)
        rows.append(row)
    return rows


AUDIT_COUNTS = ('missing', 'restored', 'still_missing', 'removed_revoked', 'removed_superseded', 'unclaimed',
                'problems')


def drift_counts(host_audits):
    """The report's drift counts over the hosts' last audits: hosts audited, hosts with drift, and the sums."""
    counts = dict.fromkeys(('hosts_audited', 'hosts_with_drift') + AUDIT_COUNTS, 0)
    for audit in host_audits or []:
        summary = audit.get('summary') or {}
        counts['hosts_audited'] += 1
        counts['hosts_with_drift'] += 1 if summary.get('drift') else 0
        for key in AUDIT_COUNTS:
            counts[key] += int(summary.get(key, 0))
    return counts


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
            'drift_counts': drift_counts,
            'timeline_axis': timeline_axis,
            'to_csv': to_csv,
        }
