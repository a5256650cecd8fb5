# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A notice as an e-mail: rendered from its template, checked for secrets, optionally S/MIME-signed (private
module_utils)."""

from __future__ import annotations

import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, MIMEPart

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.notify.smtp import NoticeError
from ansible_collections.certfleet.pki.plugins.module_utils.notify.templates import render

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7
except ImportError:
    pass

# What a key or a PKCS#12 looks like in text, whoever's it is: never in a notice.
_KEY_MATERIAL = re.compile(r'-----BEGIN [A-Z ]*PRIVATE KEY-----|-----BEGIN PKCS12-----|\bMII[A-Za-z0-9+/]{60,}')


@dataclass
class Signing:
    """The S/MIME signing certificate (with its chain) and key."""
    certificate: object
    key: object = field(repr=False)
    chain: list = field(default_factory=list)

    @classmethod
    def load(cls, certificate_path: str, key_path: str, passphrase=None) -> Signing:
        certificates = _read_certificates(certificate_path)
        try:
            with open(key_path, 'rb') as handle:
                key = serialization.load_pem_private_key(handle.read(), passphrase.encode('utf-8')
                                                         if passphrase else None)
        except OSError as exc:
            raise InputError('cannot read %s: %s' % (key_path, exc.strerror), 'smime_key') from None
        except (ValueError, TypeError):
            raise InputError('%s is not a PEM private key, or smime_key_passphrase is wrong' % key_path,
                             'smime_key') from None
        if key.public_key() != certificates[0].public_key():
            raise InputError('%s is not the key of the first certificate in smime_certificate' % key_path,
                             'smime_key')
        return cls(certificate=certificates[0], key=key, chain=certificates[1:])


def _read_certificates(path: str) -> list:
    try:
        with open(path, 'rb') as handle:
            return x509.load_pem_x509_certificates(handle.read())
    except OSError as exc:
        raise InputError('cannot read %s: %s' % (path, exc.strerror), 'smime_certificate') from None
    except ValueError:
        raise InputError('%s holds no PEM certificate' % path, 'smime_certificate') from None


@dataclass
class Notice:
    """A composed notice: what the result may show (kind, recipients, subject) and the bytes to send."""
    kind: str
    recipients: list
    subject: str
    message_id: str
    message: bytes = field(repr=False)
    identity: str | None = None
    serial: str | None = None

    def to_result(self, sent: bool) -> dict:
        return {'kind': self.kind, 'recipients': list(self.recipients), 'subject': self.subject,
                'identity': self.identity, 'serial': self.serial, 'message_id': self.message_id, 'sent': sent}


def refuse_secrets(kind: str, text: str, secrets) -> None:
    """Defence in depth: a notice that carries a given secret (PIN, password) or key material is never sent.
    The error names neither the secret nor where it was."""
    for secret in secrets or ():
        if secret and str(secret).strip() and str(secret).strip() in text:
            raise NoticeError('the %s notice contains one of the secrets it must never carry; nothing was sent '
                              '(check the template and the facts given)' % kind, 'secrets', code='secret_in_notice')
    if _KEY_MATERIAL.search(text):
        raise NoticeError('the %s notice contains key material; nothing was sent' % kind, 'secrets',
                          code='secret_in_notice')


def compose(kind: str, facts: dict, *, sender: str, recipients: list, templates_dir=None, secrets=(),
            signing: Signing | None = None, date=None) -> Notice:
    """Render ``kind`` with ``facts``, refuse it when a secret got in, and build the message (signed when
    ``signing`` is given)."""
    subject, body = render(kind, facts, templates_dir)
    refuse_secrets(kind, subject + '\n' + body, secrets)
    domain = sender.rsplit('@', 1)[1]
    headers = [('From', sender), ('To', ', '.join(recipients)), ('Subject', subject),
               ('Date', email.utils.format_datetime(date) if date else email.utils.formatdate(usegmt=True)),
               ('Message-ID', email.utils.make_msgid('certfleet', domain=domain)),
               ('Auto-Submitted', 'auto-generated')]
    message = _signed(headers, body, signing) if signing is not None else _plain(headers, body)
    return Notice(kind=kind, recipients=list(recipients), subject=subject, message_id=headers[4][1],
                  message=message, identity=facts.get('identity'), serial=facts.get('serial'))


def _transfer_encoding(body: str) -> str:
    """7bit where the text allows (the URL stays whole and clickable in any reader), else quoted-printable."""
    fits = body.isascii() and all(len(line) <= 900 for line in body.splitlines())
    return '7bit' if fits else 'quoted-printable'


def _plain(headers: list, body: str) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    for name, value in headers:
        message[name] = value
    message.set_content(body, cte=_transfer_encoding(body))
    return message.as_bytes()


def _signed(headers: list, body: str, signing: Signing) -> bytes:
    """multipart/signed (RFC 8551): the text part is signed as it is sent, in CRLF form; the outer headers are
    written before the signed entity so that nothing re-encodes it."""
    part = MIMEPart(policy=email.policy.SMTP)
    part.set_content(body, cte=_transfer_encoding(body))
    builder = pkcs7.PKCS7SignatureBuilder().set_data(part.as_bytes())
    builder = builder.add_signer(signing.certificate, signing.key, hashes.SHA256())
    for certificate in signing.chain:
        builder = builder.add_certificate(certificate)
    signed = builder.sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
    outer = EmailMessage(policy=email.policy.SMTP)
    for name, value in headers:
        outer[name] = value
    head = outer.as_bytes()  # the folded, encoded header block with its closing empty line
    return head[:-2] + signed
