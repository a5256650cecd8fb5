# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the client_certificate_notice module runs (private module_utils)."""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.notify.events import (
    NoticeSettings, compose_notice, deliver,
)
from ansible_collections.certfleet.pki.plugins.module_utils.notify.expiry import KIND as EXPIRY, send_expiry_warnings
from ansible_collections.certfleet.pki.plugins.module_utils.notify.lookup import event_facts
from ansible_collections.certfleet.pki.plugins.module_utils.notify.templates import KINDS


def send_notice(ca, options: dict, check_mode: bool = False, environ=None) -> dict:
    """One notice of ``options['kind']``, or the expiry warnings due; check mode composes and sends nothing."""
    kind = options.get('kind')
    if kind not in KINDS:
        raise InputError('unknown kind %r (use %s)' % (kind, ', '.join(KINDS)), 'kind')
    settings = NoticeSettings.from_options(options, environ)
    secrets = list(options.get('secrets') or [])
    if kind == EXPIRY:
        if options.get('expiring_within') is None:
            raise InputError('is required with kind expiry_warning', 'expiring_within')
        return send_expiry_warnings(ca, settings, expiring_within=options['expiring_within'],
                                    identities=options.get('identities'),
                                    exclude_identities=options.get('exclude_identities'), check_mode=check_mode,
                                    secrets=secrets)
    facts = event_facts(ca, kind, identity=options.get('identity'), serial=options.get('serial'),
                        pickup_id=options.get('pickup_id'), url=options.get('url'))
    # The URL carries the pickup secret; it belongs in this mail and nowhere else (the guard checks the rest).
    notice = compose_notice(ca, settings, kind, facts, secrets)
    if check_mode:
        return {'changed': True, 'notices': [notice.to_result(sent=False)], 'already_warned': []}
    sent = deliver(ca, settings, notice, {'pickup_id': facts.get('pickup_id')} if facts.get('pickup_id') else None)
    return {'changed': True, 'notices': [sent], 'already_warned': []}
