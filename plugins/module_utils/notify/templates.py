# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The texts of the notices, one per kind, as ``string.Template`` (private module_utils).

A template is a ``Subject:`` line, an empty line and the body. The defaults below are used unless
``templates_dir`` holds ``<kind>.txt`` for that kind. Placeholders (``$serial``...) are the facts of
:data:`PLACEHOLDERS`; a template naming any other is refused, so a typo cannot send a mail with a hole in it.
"""

from __future__ import annotations

import os
import string

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

KINDS = ('pickup_ready', 'download_complete', 'replacement_complete', 'revocation_complete', 'expiry_warning')
# Every fact a template may use; the ones a kind does not know read as "-".
PLACEHOLDERS = ('identity', 'subject', 'serial', 'issuer', 'time', 'client', 'url', 'window_ends_at', 'format',
                'old_serial', 'confirmed_by', 'reason', 'not_after', 'days_left', 'expiring_within', 'handback')

DEFAULT_TEMPLATES = {
    'pickup_ready': """Subject: Your certificate is ready for pickup ($identity)

Your client certificate from $issuer is ready.

Open this address on the device that should use it:

  $url

You will be asked for a PIN. The PIN is not in this e-mail: it reaches you
through another channel (for example by phone, text message or in person).
Never forward this e-mail together with the PIN.

Certificate: $subject
Serial:      $serial
The pickup closes at $window_ends_at at the latest.
""",
    'download_complete': """Subject: Certificate picked up: $subject (serial $serial)

The certificate of $identity was downloaded.

Subject DN: $subject
Serial:     $serial
Time:       $time
Client:     $client
Format:     $format
$handback""",
    'replacement_complete': """Subject: Replacement complete: $subject (serial $serial)

The renewal of $identity is complete: the new certificate is in use and the
old one has been revoked.

Subject DN:  $subject
New serial:  $serial
Old serial:  $old_serial (revoked, reason superseded)
Time:        $time
Confirmed by: $confirmed_by
""",
    'revocation_complete': """Subject: Certificate revoked: $subject (serial $serial)

The certificate of $identity has been revoked. Servers refuse it once they
load the next CRL.

Subject DN: $subject
Serial:     $serial
Reason:     $reason
Time:       $time
""",
    'expiry_warning': """Subject: Certificate expires in $days_left days: $subject (serial $serial)

The certificate of $identity expires at $not_after ($days_left days from now).
No playbook renews it: issue a new one and hand it over (for example with a
pickup) before that date.

Subject DN: $subject
Serial:     $serial
Expires:    $not_after
""",
}


def load_template(kind: str, templates_dir: str | None = None) -> tuple:
    """(subject template, body template) of ``kind``: ``templates_dir/<kind>.txt`` when it exists, else the
    default."""
    if kind not in KINDS:
        raise InputError('unknown kind %r (use %s)' % (kind, ', '.join(KINDS)), 'kind')
    text, origin = DEFAULT_TEMPLATES[kind], 'the default template'
    if templates_dir:
        path = os.path.join(os.path.expanduser(templates_dir), kind + '.txt')
        if os.path.isfile(path):
            try:
                with open(path, encoding='utf-8') as handle:
                    text, origin = handle.read(), path
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError('cannot read %s: %s' % (path, exc), 'templates_dir') from None
    head, blank_line, body = text.partition('\n\n')
    if not blank_line or not head.startswith('Subject:') or '\n' in head.strip():
        raise InputError('%s must start with one "Subject: ..." line and an empty line' % origin, 'templates_dir')
    subject, body = string.Template(head[len('Subject:'):].strip()), string.Template(body)
    unknown = sorted(set(_placeholders(subject) + _placeholders(body)) - set(PLACEHOLDERS))
    if unknown:
        raise InputError('%s uses unknown placeholders %s (known: %s)'
                         % (origin, ', '.join(unknown), ', '.join(PLACEHOLDERS)), 'templates_dir')
    return subject, body


def _placeholders(template: string.Template) -> list:
    names = []
    for match in template.pattern.finditer(template.template):
        name = match.group('named') or match.group('braced')
        if name:
            names.append(name)
        elif match.group('invalid') is not None:
            raise InputError('a lone "$" in a template; write "$$" for a dollar sign', 'templates_dir')
    return names


def handback_text(identity: str, old_serial: str) -> str:
    """The officer's ready-made revocation request for the certificate a renewal pickup replaces (the bulk
    hand-back format: action, identity, serial, reason)."""
    return ('\nThis certificate replaces serial %s. The old one stays valid until the person confirms the\n'
            'replacement on the portal (it is then revoked) or you revoke it, for example with this request\n'
            'line (certfleet.pki.requests or client_certificate_requests):\n\n'
            '  action\tidentity\tserial\treason\n  revoke\t%s\t%s\tsuperseded\n' % (old_serial, identity, old_serial))


def render(kind: str, facts: dict, templates_dir: str | None = None) -> tuple:
    """(subject, body) of ``kind`` with ``facts`` filled in; unknown facts read as "-"."""
    subject, body = load_template(kind, templates_dir)
    values = {name: '-' if facts.get(name) in (None, '') else str(facts[name]) for name in PLACEHOLDERS}
    values['handback'] = str(facts.get('handback') or '')  # a whole paragraph, or nothing
    return ' '.join(subject.substitute(values).split()), body.substitute(values)
