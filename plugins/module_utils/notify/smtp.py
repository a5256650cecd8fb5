# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SMTP settings and sending (private module_utils).

Settings come from a dict (the module's ``smtp`` option) with environment fallbacks ``CERTFLEET_SMTP_HOST``,
``_PORT``, ``_SECURITY``, ``_USERNAME``, ``_PASSWORD``, ``_FROM``, ``_TO`` (comma-separated), ``_CA_FILE``,
``_TIMEOUT`` (what the AWX credential type injects). Every failure names the setting to look at
(``smtp.password``, ``smtp.host``...) and never carries the password.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass, field

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError
from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import validate_email

SECURITY = ('none', 'starttls', 'tls')
DEFAULT_PORTS = {'none': 25, 'starttls': 587, 'tls': 465}
ENV_PREFIX = 'CERTFLEET_SMTP_'
SETTINGS = ('host', 'port', 'security', 'username', 'password', 'from', 'to', 'ca_file', 'validate_certs',
            'timeout')
_LOOPBACK = ('localhost', '127.0.0.1', '::1')


class NoticeError(CertfleetError):
    """A notice could not be composed or sent; ``field`` names the setting to look at."""

    code = 'notice_failed'


@dataclass
class SmtpSettings:
    host: str
    port: int
    security: str
    sender: str
    recipients: list
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    validate_certs: bool = True
    timeout: float = 30.0

    @classmethod
    def from_options(cls, options: dict | None, environ=None) -> SmtpSettings:
        """Validated settings: the option when given, else its ``CERTFLEET_SMTP_*`` variable."""
        given = _merged(options or {}, os.environ if environ is None else environ)
        security = str(given.get('security') or 'starttls').lower()
        if security not in SECURITY:
            raise InputError('unknown security %r (use %s)' % (security, ', '.join(SECURITY)), 'smtp.security')
        if not given.get('host'):
            raise InputError('is required (or CERTFLEET_SMTP_HOST): the mail server', 'smtp.host')
        if not given.get('from'):
            raise InputError('is required (or CERTFLEET_SMTP_FROM): the sender address', 'smtp.from')
        recipients = given.get('to') or []
        if isinstance(recipients, str):
            recipients = [part.strip() for part in recipients.split(',') if part.strip()]
        if not recipients:
            raise InputError('is required (or CERTFLEET_SMTP_TO): at least one recipient', 'smtp.to')
        settings = cls(
            host=str(given['host']).strip(), port=_number(given.get('port') or DEFAULT_PORTS[security], 'smtp.port'),
            security=security, sender=validate_email(str(given['from']).strip(), 'smtp.from'),
            recipients=[validate_email(str(r).strip(), 'smtp.to') for r in recipients],
            username=given.get('username') or None, password=given.get('password') or None,
            ca_file=given.get('ca_file') or None, validate_certs=_boolean(given.get('validate_certs', True)),
            timeout=float(_number(given.get('timeout') or 30, 'smtp.timeout')))
        settings.check()
        return settings

    def check(self) -> None:
        if bool(self.username) != bool(self.password):
            raise InputError('username and password go together', 'smtp.password' if self.username else
                             'smtp.username')
        # A password must not cross the network in clear; on the same host nobody can read it on the way.
        if self.password and self.security == 'none' and self.host not in _LOOPBACK:
            raise InputError('is none but a password is set: use starttls or tls to %s' % self.host,
                             'smtp.security')
        if self.ca_file and not os.path.isfile(self.ca_file):
            raise InputError('%s is not a file' % self.ca_file, 'smtp.ca_file')

    def secrets(self) -> list:
        return [self.password] if self.password else []


def env_name(setting: str) -> str:
    """The environment variable a setting falls back to: CERTFLEET_SMTP_HOST for host."""
    return ENV_PREFIX + setting.upper()


def settings_from_environ(environ) -> dict:
    """The settings ``environ`` carries (CERTFLEET_SMTP_*, empty ones left out), as the ``smtp`` option takes them.

    What an AWX credential injects where the job runs reaches the module through its ``smtp`` option, whose
    password is ``no_log``; never through a task's environment, which Ansible prints with the command at -vvv."""
    return {name: environ[env_name(name)] for name in SETTINGS if environ.get(env_name(name))}


def _merged(options: dict, environ) -> dict:
    merged = {}
    for name in SETTINGS:
        value = options.get(name)
        if value is None or value == '':
            value = environ.get(env_name(name)) or None
        merged[name] = value
    return merged


def _number(value, field_name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError('expected a whole number, got %r' % (value,), field_name) from None
    if number <= 0 or number > 65535:
        raise InputError('must be between 1 and 65535, got %r' % (value,), field_name)
    return number


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ('0', 'false', 'no', 'off')


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise InputError('cannot load %s: %s' % (settings.ca_file, exc), 'smtp.ca_file') from None
    if not settings.validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def send(settings: SmtpSettings, message: bytes, recipients: list) -> None:
    """Deliver ``message`` to ``recipients``; a NoticeError naming the setting when anything fails."""
    where = '%s:%d' % (settings.host, settings.port)
    try:
        client = _connect(settings)
    except ssl.SSLCertVerificationError as exc:
        raise _certificate_failure(where, exc) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise NoticeError('cannot connect to %s (%s): %s' % (where, settings.security, _reason(exc)), 'smtp.host',
                          code='smtp_connect') from None
    try:
        _secure_and_login(client, settings, where)
        client.sendmail(settings.sender, recipients, message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise NoticeError('%s refused the recipients %s' % (where, ', '.join(sorted(exc.recipients))), 'smtp.to',
                          code='smtp_refused') from None
    except smtplib.SMTPSenderRefused as exc:
        raise NoticeError('%s refused the sender %s: %s' % (where, settings.sender, _reason(exc)), 'smtp.from',
                          code='smtp_refused') from None
    except ssl.SSLCertVerificationError as exc:
        raise _certificate_failure(where, exc) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise NoticeError('%s failed: %s' % (where, _reason(exc)), 'smtp.host', code='smtp_failed') from None
    finally:
        _quit(client)


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    if settings.security == 'tls':
        return smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                context=_tls_context(settings))
    return smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)


def _secure_and_login(client: smtplib.SMTP, settings: SmtpSettings, where: str) -> None:
    client.ehlo()
    if settings.security == 'starttls':
        if not client.has_extn('starttls'):
            raise NoticeError('%s does not offer STARTTLS; use security tls or none' % where, 'smtp.security',
                              code='smtp_security')
        client.starttls(context=_tls_context(settings))
        client.ehlo()
    if not settings.username:
        return
    try:
        client.login(settings.username, settings.password)
    except smtplib.SMTPAuthenticationError:
        raise NoticeError('%s rejected the login of %r: check smtp.username and smtp.password'
                          % (where, settings.username), 'smtp.password', code='smtp_auth') from None
    except smtplib.SMTPNotSupportedError:
        raise NoticeError('%s offers no login on this connection; check smtp.security or drop smtp.username'
                          % where, 'smtp.username', code='smtp_auth') from None


def _certificate_failure(where: str, exc) -> NoticeError:
    return NoticeError('the certificate of %s did not verify (%s); set smtp.ca_file to the CA that issued it'
                       % (where, getattr(exc, 'verify_message', None) or exc), 'smtp.ca_file', code='smtp_tls')


def _reason(exc) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error.decode('utf-8', 'replace') if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return '%d %s' % (exc.smtp_code, error)
    return str(exc) or type(exc).__name__


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()
