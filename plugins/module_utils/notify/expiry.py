# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Expiry warnings: one mail per current certificate expiring within N days, once per certificate and window
(private module_utils).

"Once" is read back from the audit log: a warning sent for a serial with the same ``expiring_within`` is not sent
again; a shorter window (a second, later reminder) is a new one.
"""

from __future__ import annotations

import datetime

from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import validate_identity
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import parse_positive_days
from ansible_collections.certfleet.pki.plugins.module_utils.notify.events import (
    AUDIT_ACTION, compose_notice, deliver, record_facts,
)

KIND = 'expiry_warning'


def expiring(ca, within_days: int, identities=None, exclude=()) -> tuple:
    """(certificates to warn about, those already warned for this window). Reads only."""
    now = ca.clock()
    horizon = now + datetime.timedelta(days=within_days)
    with ca.store.read():
        candidates = [r for r in ca.store.find(identities=identities) if r.is_current and r.state(now) == 'valid'
                      and r.not_after <= horizon and r.identity not in exclude]
        warned = _warned(ca.store, sorted({r.identity for r in candidates}), within_days)
    due = [r for r in candidates if r.serial not in warned]
    return due, [r for r in candidates if r.serial in warned]


def _warned(store, identities: list, within_days: int) -> set:
    serials = set()
    for identity in identities:
        for entry in store.audit_entries(identity=identity):
            detail = entry['detail'] or {}
            if (entry['action'] == AUDIT_ACTION and detail.get('kind') == KIND
                    and detail.get('expiring_within') == within_days):
                serials.update(entry['serials'])
    return serials


def send_expiry_warnings(ca, settings, *, expiring_within, identities=None, exclude_identities=(),
                         check_mode=False, secrets=()) -> dict:
    """Warn about every certificate due; in check mode compose them and send nothing."""
    within = parse_positive_days(expiring_within, 'expiring_within')
    wanted = [validate_identity(i) for i in identities] if identities else None
    exclude = {validate_identity(i) for i in exclude_identities or ()}
    due, already = expiring(ca, within, wanted, exclude)
    now = ca.clock()
    notices = []
    for record in due:
        facts = dict(record_facts(ca, record, now), expiring_within=within)
        notice = compose_notice(ca, settings, KIND, facts, secrets)
        if check_mode:
            notices.append(notice.to_result(sent=False))
        else:
            audit_detail = {'expiring_within': within, 'not_after': facts['not_after']}
            notices.append(deliver(ca, settings, notice, audit_detail))
    return {'changed': bool(notices), 'notices': notices,
            'already_warned': [{'identity': r.identity, 'serial': r.serial} for r in already]}
