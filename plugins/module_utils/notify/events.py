# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notices about the CA's events: facts from the store, sending, the audit log, expiry warnings (private
module_utils).

For the portal: after :func:`ca.pickup.download` (or ``confirm_replacement``) call::

    notify_event(ca, settings, 'download_complete', serial=download.serial, pickup_id=download.pickup_id,
                 time=download.downloaded_at, client=download.client, format=download.format, secrets=[pin])

``ca`` is an open ``ManagedCA`` (the CA key is not needed), ``settings`` a :class:`NoticeSettings` or the dict the
module takes (``smtp``, ``templates_dir``, ``smime_*``, ``copy_to_person``; SMTP settings fall back to
``CERTFLEET_SMTP_*``). Facts not given are read from the store by ``serial``. The call sends one mail, records it in
the audit log (kind, recipients, serial, message id; never a secret) and returns what was sent; a failure raises
:class:`NoticeError` naming the setting, and nothing is recorded then. Pass the PIN in ``secrets``: a notice that
would carry it is refused.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, NotFoundError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.notify.compose import Notice, Signing, compose
from ansible_collections.certfleet.pki.plugins.module_utils.notify.smtp import NoticeError, SmtpSettings, send
from ansible_collections.certfleet.pki.plugins.module_utils.notify.templates import KINDS, handback_text

# What the portal uses (NoticeError is what a failed send raises).
__all__ = ['AUDIT_ACTION', 'NoticeError', 'NoticeSettings', 'notify_event']
AUDIT_ACTION = 'notice'


@dataclass
class NoticeSettings:
    smtp: SmtpSettings
    templates_dir: str | None = None
    signing: Signing | None = None
    copy_to_person: bool = False
    secrets: list = field(default_factory=list, repr=False)

    @classmethod
    def from_options(cls, options: dict, environ=None) -> NoticeSettings:
        signing = None
        if options.get('smime_certificate') or options.get('smime_key'):
            if not (options.get('smime_certificate') and options.get('smime_key')):
                raise InputError('smime_certificate and smime_key go together', 'smime_key')
            signing = Signing.load(options['smime_certificate'], options['smime_key'],
                                   options.get('smime_key_passphrase'))
        smtp = SmtpSettings.from_options(options.get('smtp'), environ)
        secrets = smtp.secrets() + [s for s in (options.get('smime_key_passphrase'),) if s]
        return cls(smtp=smtp, templates_dir=options.get('templates_dir'), signing=signing,
                   copy_to_person=bool(options.get('copy_to_person')), secrets=secrets)


def _settings(settings) -> NoticeSettings:
    return settings if isinstance(settings, NoticeSettings) else NoticeSettings.from_options(dict(settings or {}))


def _text(value):
    return to_iso(value) if isinstance(value, datetime.datetime) else value


def record_facts(ca, record, now) -> dict:
    """The facts every kind may use about one certificate."""
    return {'identity': record.identity, 'subject': record.subject_text, 'serial': record.serial,
            'issuer': ca.authority.common_name(), 'not_after': to_iso(record.not_after),
            'days_left': max(0, int((record.not_after - now).total_seconds() // 86400)),
            'reason': record.revocation_reason, 'person': _person_addresses(record)}


def _person_addresses(record) -> list:
    addresses = [s.split(':', 1)[1] for s in record.sans if s.lower().startswith('email:')]
    addresses += [v for k, v in (record.subject or {}).items() if k in ('emailAddress', 'E', 'email')
                  and isinstance(v, str)]
    return sorted(set(addresses))


def compose_notice(ca, settings: NoticeSettings, kind: str, facts: dict, secrets=()) -> Notice:
    recipients = list(settings.smtp.recipients)
    if settings.copy_to_person:
        recipients += [a for a in facts.get('person') or [] if a not in recipients]
    facts = {name: _text(value) for name, value in facts.items() if name != 'person'}
    return compose(kind, facts, sender=settings.smtp.sender, recipients=recipients,
                   templates_dir=settings.templates_dir, secrets=list(settings.secrets) + list(secrets or []),
                   signing=settings.signing, date=ca.clock())


def deliver(ca, settings: NoticeSettings, notice: Notice, detail: dict | None = None) -> dict:
    """Send the notice, then record it in the audit log (only once the server accepted it)."""
    send(settings.smtp, notice.message, notice.recipients)
    with ca.store.write():
        ca.store.append_audit(ca.clock(), AUDIT_ACTION, notice.identity, [notice.serial] if notice.serial else [],
                              'sent', dict(detail or {}, kind=notice.kind, recipients=notice.recipients,
                                           message_id=notice.message_id))
    return notice.to_result(sent=True)


def notify_event(ca, settings, kind: str, *, secrets=(), **facts) -> dict:
    """Send one notice of ``kind`` with ``facts`` (the portal's hook; see the module docstring)."""
    if kind not in KINDS:
        raise InputError('unknown kind %r (use %s)' % (kind, ', '.join(KINDS)), 'kind')
    settings = _settings(settings)
    if facts.get('serial'):
        with ca.store.read():
            record = ca.store.get(str(facts['serial']))
        if record is None:
            raise NotFoundError('no certificate with serial %s' % facts['serial'], 'serial')
        facts = dict(record_facts(ca, record, ca.clock()), **{k: v for k, v in facts.items() if v is not None})
    if kind == 'download_complete' and facts.get('old_serial') and not facts.get('handback'):
        facts['handback'] = handback_text(facts.get('identity') or '', facts['old_serial'])
    notice = compose_notice(ca, settings, kind, facts, secrets)
    return deliver(ca, settings, notice)
