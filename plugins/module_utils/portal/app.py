# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pickup portal: a WSGI application (stdlib and cryptography only) in front of ``ca.pickup`` (private
module_utils).

Run by a production WSGI server, for example::

    PYTHONPATH=/opt/certfleet-portal/collections CERTFLEET_PORTAL_CONFIG=/etc/certfleet-portal/portal.json \\
        gunicorn --workers 2 --bind 127.0.0.1:8443 \\
        ansible_collections.certfleet.pki.plugins.module_utils.portal.app:application

The flow: ``GET /p/<id>.<secret>`` asks for the PIN; ``POST`` there checks it (``ca.pickup.check_pin``, which counts
wrong PINs and locks the pickup) and shows what will be downloaded; ``POST /p/<token>/download`` sends the file
(``ca.pickup.download``); ``POST /p/<token>/done`` shows the done page, which for a renewal offers ``POST
/p/<token>/confirm`` (``ca.pickup.confirm_replacement``: the old serial is revoked). The PIN is carried from the PIN
page to the download inside a sealed ticket (AES-GCM under a key derived from the secret key, bound to the pickup and
a few minutes), never in a cookie or a log. Every POST carries a CSRF token: an HMAC of a random cookie and the
pickup id. The logs name the pickup id and the client address only; the token secret and the PIN never appear
(and the WSGI server's access log must stay off, since the request path carries the token).

Config (JSON, the file named by ``CERTFLEET_PORTAL_CONFIG``): ``ca_path`` or ``ca_store`` (a PostgreSQL URL),
``ca_passphrase_file``, ``secret_key_file``, ``base_url``, ``trusted_proxies`` (addresses whose X-Forwarded-For is
believed), ``max_body_bytes``, ``throttle_failures`` and ``throttle_minutes`` (wrong PINs per client address, per
worker process, before it is turned away for a while).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import os
import re
import secrets
import struct
import threading
import time
import urllib.parse
from http.cookies import CookieError, SimpleCookie

from ansible_collections.certfleet.pki.plugins.module_utils.ca.pickup import PickupError
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.portal import texts

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:
    pass

CONFIG_ENV = 'CERTFLEET_PORTAL_CONFIG'
CSRF_COOKIE = 'certfleet_csrf'
LANG_COOKIE = 'certfleet_lang'
TICKET_SECONDS = 15 * 60  # from the PIN page to the download: enough to read the page, short if a tab is left open
DEFAULTS = {'max_body_bytes': 4096, 'throttle_failures': 20, 'throttle_minutes': 15, 'trusted_proxies': []}
CONFIRMED_BY = 'the person, in the pickup portal'
_TOKEN_PATH = re.compile(r'^/p/([A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43})(/download|/done|/confirm)?/?$')
_STATUS = {200: '200 OK', 303: '303 See Other', 400: '400 Bad Request', 403: '403 Forbidden', 404: '404 Not Found',
           405: '405 Method Not Allowed', 409: '409 Conflict', 413: '413 Payload Too Large',
           429: '429 Too Many Requests', 500: '500 Internal Server Error'}
LOG = logging.getLogger('certfleet.portal')

STYLESHEET = b'''body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans JP",sans-serif;margin:0;
background:#f4f5f7;color:#1d2330;line-height:1.5}
main{max-width:34rem;margin:0 auto;padding:1.25rem}
header{background:#1f4e79;color:#fff;padding:.75rem 1.25rem;display:flex;justify-content:space-between;
align-items:center}
header a{color:#fff}
h1{font-size:1.35rem;margin:.5rem 0 1rem}
.card{background:#fff;border-radius:.5rem;padding:1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.12);overflow-wrap:anywhere}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=password]{font-size:1.4rem;letter-spacing:.2em;width:100%;box-sizing:border-box;
padding:.5rem;border:1px solid #8a94a6;border-radius:.35rem}
button{font-size:1.05rem;background:#1f4e79;color:#fff;border:0;border-radius:.35rem;padding:.7rem 1.1rem;
margin-top:1rem;width:100%}
button.secondary{background:#fff;color:#1f4e79;border:1px solid #1f4e79}
.error{background:#fdecea;border-left:4px solid #c62828;padding:.6rem .8rem;margin-bottom:1rem}
.note{color:#4a5468;font-size:.92rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.35rem 1rem;margin:0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}
footer{text-align:center;color:#6b7385;font-size:.85rem;padding:1rem}
@media (max-width:32rem){dl{grid-template-columns:1fr;gap:0}dd{margin-bottom:.6rem}}
'''


class PortalConfig:
    """The checked settings; secrets are read from their files once, at start."""

    def __init__(self, values: dict):
        unknown = sorted(set(values) - {'ca_path', 'ca_store', 'ca_passphrase_file', 'secret_key_file', 'base_url',
                                        'trusted_proxies', 'max_body_bytes', 'throttle_failures',
                                        'throttle_minutes', 'notices'})
        if unknown:
            raise CertfleetError('unknown portal settings: %s' % ', '.join(unknown), 'config')
        if bool(values.get('ca_path')) == bool(values.get('ca_store')):
            raise CertfleetError('give exactly one of ca_path and ca_store', 'config')
        self.ca_path = values.get('ca_path')
        self.ca_store = values.get('ca_store')
        self.ca_passphrase = _read_secret(values.get('ca_passphrase_file'), 'ca_passphrase_file', required=False)
        secret_key = _read_secret(values.get('secret_key_file'), 'secret_key_file', required=True)
        if len(secret_key) < 32:
            raise CertfleetError('the secret key must have at least 32 characters', 'secret_key_file')
        self.secret_key = secret_key.encode('utf-8')
        self.base_url = str(values.get('base_url') or '').rstrip('/')
        self.secure_cookies = self.base_url.startswith('https://')
        self.trusted_proxies = set(values.get('trusted_proxies', DEFAULTS['trusted_proxies']) or [])
        self.max_body_bytes = int(values.get('max_body_bytes', DEFAULTS['max_body_bytes']))
        self.throttle_failures = int(values.get('throttle_failures', DEFAULTS['throttle_failures']))
        self.throttle_seconds = 60 * int(values.get('throttle_minutes', DEFAULTS['throttle_minutes']))
        self.notices = _notice_settings(values.get('notices'))

    @classmethod
    def from_file(cls, path: str) -> 'PortalConfig':
        with open(path, encoding='utf-8') as handle:
            return cls(json.load(handle))


def _notice_settings(options):
    """The officer's e-mail notices (download complete, replacement complete), or None: the settings of
    client_certificate_notice, the SMTP password read from ``smtp.password_file``."""
    if not options:
        return None
    from ansible_collections.certfleet.pki.plugins.module_utils.notify.events import NoticeSettings

    options = dict(options)
    smtp = dict(options.get('smtp') or {})
    if smtp.get('password_file'):
        smtp['password'] = _read_secret(smtp.pop('password_file'), 'notices.smtp.password_file', required=True)
    options['smtp'] = smtp
    return NoticeSettings.from_options(options)


def _read_secret(path, name: str, required: bool) -> str | None:
    if not path:
        if required:
            raise CertfleetError('is required', name)
        return None
    with open(path, encoding='utf-8') as handle:
        return handle.read().strip()


class Throttle:
    """Wrong PINs per client address within a sliding window, in this process's memory. The store's per-pickup count
    is the real lock; this slows one address guessing across many pickups."""

    def __init__(self, failures: int, seconds: int, clock=time.monotonic):
        self.failures, self.seconds, self.clock = failures, seconds, clock
        self._seen = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client)) >= self.failures

    def failed(self, client: str) -> None:
        with self._lock:
            self._seen[client] = self._recent(client) + [self.clock()]
            if len(self._seen) > 10000:  # a flood of addresses must not grow memory without end
                self._seen = {k: v for k, v in self._seen.items() if self._recent(k)}

    def _recent(self, client: str) -> list:
        horizon = self.clock() - self.seconds
        return [moment for moment in self._seen.get(client, []) if moment > horizon]


class Sealer:
    """Tickets the browser carries between pages: AES-GCM under a key derived per purpose from the secret key, bound
    to the pickup id, with an expiry. The browser can neither read nor change them."""

    def __init__(self, secret_key: bytes):
        self.secret_key = secret_key

    def _key(self, purpose: str) -> bytes:
        return hmac.new(self.secret_key, b'certfleet-portal-ticket:' + purpose.encode('ascii'), hashlib.sha256).digest()

    def seal(self, purpose: str, pickup_id: str, data: dict, now: float) -> str:
        nonce = os.urandom(12)
        plain = struct.pack('>Q', int(now) + TICKET_SECONDS) + json.dumps(data).encode('utf-8')
        sealed = AESGCM(self._key(purpose)).encrypt(nonce, plain, pickup_id.encode('ascii'))
        return base64.urlsafe_b64encode(nonce + sealed).decode('ascii')

    def open(self, purpose: str, pickup_id: str, ticket: str, now: float) -> dict | None:
        try:
            raw = base64.urlsafe_b64decode(ticket.encode('ascii'))
            plain = AESGCM(self._key(purpose)).decrypt(raw[:12], raw[12:], pickup_id.encode('ascii'))
        except (InvalidTag, ValueError, TypeError, UnicodeError):
            return None
        if struct.unpack('>Q', plain[:8])[0] < now:
            return None
        return json.loads(plain[8:].decode('utf-8'))

    def csrf_token(self, cookie_value: str, pickup_id: str) -> str:
        return hmac.new(self.secret_key, ('csrf:%s:%s' % (cookie_value, pickup_id)).encode('ascii'),
                        hashlib.sha256).hexdigest()


class Request:
    """What the application reads of a WSGI request."""

    def __init__(self, environ: dict, config: PortalConfig):
        self.environ = environ
        self.method = environ.get('REQUEST_METHOD', 'GET').upper()
        self.path = environ.get('PATH_INFO', '/') or '/'
        self.query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
        self.cookies = {}
        try:
            self.cookies = {k: v.value for k, v in SimpleCookie(environ.get('HTTP_COOKIE', '')).items()}
        except CookieError:
            pass
        self.user_agent = environ.get('HTTP_USER_AGENT', '')
        self.client = _client_address(environ, config.trusted_proxies)
        self.form = {}
        lang = (self.query.get('lang') or [None])[0]
        self.lang_switched = lang in texts.LANGUAGES
        self.language = texts.choose_language(lang, self.cookies.get(LANG_COOKIE), environ.get('HTTP_ACCEPT_LANGUAGE'))

    def read_form(self, limit: int) -> bool:
        """Parse a urlencoded body; False when it is larger than ``limit``."""
        try:
            length = int(self.environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            return False
        if length > limit:
            return False
        body = self.environ['wsgi.input'].read(length) if length > 0 else b''
        parsed = urllib.parse.parse_qs(body.decode('utf-8', 'replace'), keep_blank_values=True)
        self.form = {key: values[0] for key, values in parsed.items()}
        return True


def _client_address(environ: dict, trusted_proxies: set) -> str:
    remote = environ.get('REMOTE_ADDR', '') or 'unknown'
    forwarded = environ.get('HTTP_X_FORWARDED_FOR', '')
    if remote in trusted_proxies and forwarded:
        return forwarded.split(',')[-1].strip() or remote  # the address the proxy itself saw
    return remote


class Response:
    def __init__(self, status: int, body: bytes, content_type: str = 'text/html; charset=utf-8'):
        self.status, self.body = status, body
        self.headers = [('Content-Type', content_type)]

    def cookie(self, name: str, value: str, secure: bool, max_age: int | None = None) -> None:
        parts = ['%s=%s' % (name, value), 'Path=/', 'HttpOnly', 'SameSite=Strict']
        if max_age is not None:
            parts.append('Max-Age=%d' % max_age)
        if secure:
            parts.append('Secure')
        self.headers.append(('Set-Cookie', '; '.join(parts)))


def security_headers(secure: bool) -> list:
    headers = [('Content-Security-Policy', "default-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                           "base-uri 'none'"),
               ('X-Frame-Options', 'DENY'), ('Referrer-Policy', 'no-referrer'),
               ('X-Content-Type-Options', 'nosniff'), ('Cache-Control', 'no-store'),
               ('Cross-Origin-Opener-Policy', 'same-origin')]
    if secure:
        headers.append(('Strict-Transport-Security', 'max-age=31536000'))
    return headers


class PortalApp:
    """The WSGI callable. One CA is opened per worker process, on its first request (after the server forked)."""

    def __init__(self, config: PortalConfig, clock=None, wall_clock=time.time):
        self.config = config
        self.clock = clock  # the CA's clock; None is the real time (tests pass a fake one)
        self.wall_clock = wall_clock
        self.sealer = Sealer(config.secret_key)
        self.throttle = Throttle(config.throttle_failures, config.throttle_seconds)
        self._ca = None
        self._ca_pid = None
        self._ca_lock = threading.Lock()

    # -- the CA ---------------------------------------------------------------------------------------------------
    def ca(self):
        with self._ca_lock:
            if self._ca is None or self._ca_pid != os.getpid():
                from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
                options = {} if self.clock is None else {'clock': self.clock}
                self._ca = ManagedCA(self.config.ca_path, self.config.ca_passphrase, store_url=self.config.ca_store,
                                     **options)
                self._ca_pid = os.getpid()
            return self._ca

    def close(self) -> None:
        with self._ca_lock:
            if self._ca is not None and self._ca_pid == os.getpid():
                self._ca.__exit__(None, None, None)
            self._ca = None

    # -- WSGI -----------------------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ, self.config)
        try:
            response = self.route(request)
        except Exception as exc:  # pylint: disable=broad-except
            # A traceback's locals and messages may hold the token or the PIN: log the kind and the pickup id only.
            LOG.error('internal error (%s) on %s of pickup %s', type(exc).__name__, request.method,
                      _pickup_id_of(request.path))
            self.close()  # a broken connection must not serve the next request
            response = self.page(request, 500, 'error', [('p', 'error')])
        if request.lang_switched:
            response.cookie(LANG_COOKIE, request.language, self.config.secure_cookies, 365 * 86400)
        headers = response.headers + security_headers(self.config.secure_cookies)
        headers.append(('Content-Length', str(len(response.body))))
        start_response(_STATUS[response.status], headers)
        return [response.body if request.method != 'HEAD' else b'']

    def route(self, request: Request) -> Response:
        if request.path == '/static/portal.css':
            response = Response(200, STYLESHEET, 'text/css; charset=utf-8')
            return response
        if request.path == '/healthz':
            return Response(200, b'ok\n', 'text/plain; charset=utf-8')
        match = _TOKEN_PATH.match(request.path)
        if match is None:
            return self.page(request, 404, 'title', [('p', 'not_found')])
        token, action = match.group(1), (match.group(2) or '').strip('/') or 'pin'
        pickup_id = token.split('.', 1)[0]
        if request.method in ('GET', 'HEAD'):
            return self.pin_page(request, token, pickup_id) if action == 'pin' else self.page(
                request, 405, 'title', [('p', 'expired_form')])
        if request.method != 'POST':
            return self.page(request, 405, 'title', [('p', 'not_found')])
        if not request.read_form(self.config.max_body_bytes):
            return self.page(request, 413, 'title', [('p', 'forbidden')])
        if not self.csrf_ok(request, pickup_id):
            LOG.warning('pickup %s: POST without a valid CSRF token from %s', pickup_id, request.client)
            return self.page(request, 403, 'title', [('p', 'forbidden')])
        return getattr(self, 'post_' + action)(request, token, pickup_id)

    # -- CSRF -----------------------------------------------------------------------------------------------------
    def csrf_cookie(self, request: Request, response: Response) -> str:
        value = request.cookies.get(CSRF_COOKIE)
        if not value or not re.match(r'^[A-Za-z0-9_-]{43}$', value):
            value = secrets.token_urlsafe(32)
            response.cookie(CSRF_COOKIE, value, self.config.secure_cookies)
        return value

    def csrf_ok(self, request: Request, pickup_id: str) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, '')
        sent = request.form.get('csrf', '')
        return bool(cookie and sent) and hmac.compare_digest(self.sealer.csrf_token(cookie, pickup_id), sent)

    # -- pages ----------------------------------------------------------------------------------------------------
    def pin_page(self, request: Request, token: str, pickup_id: str, status: int = 200, error: str | None = None,
                 *, view: dict | None = None) -> Response:
        if view is None:
            try:
                view = self.ca().open_pickup(token)
            except PickupError:
                LOG.info('pickup %s: opened, not available (from %s)', pickup_id, request.client)
                return self.unavailable(request)
        t = texts.MESSAGES[request.language]
        blocks = [('error', error)] if error else []
        blocks += [('p', 'pin_intro'), ('form-pin', None),
                   ('note', t['attempts_left'] % view['attempts_left'])]
        return self.page(request, status, 'pin_heading', blocks, token=token, pickup_id=pickup_id,
                         issuer=view['issuer'])

    def unavailable(self, request: Request, status: int = 404, message: str = 'unavailable') -> Response:
        return self.page(request, status, 'unavailable_heading', [('p', message)])

    def post_pin(self, request: Request, token: str, pickup_id: str) -> Response:
        t = texts.MESSAGES[request.language]
        if self.throttle.blocked(request.client):
            LOG.warning('pickup %s: PIN attempt refused, too many wrong PINs from %s', pickup_id, request.client)
            return self.pin_page(request, token, pickup_id, 429, t['throttled'])
        pin = request.form.get('pin', '')
        try:
            view = self.ca().check_pickup_pin(token, pin, request.client)
        except PickupError as exc:
            return self.pin_refused(request, token, pickup_id, exc)
        LOG.info('pickup %s: PIN accepted from %s', pickup_id, request.client)
        ticket = self.sealer.seal('pin', pickup_id, {'pin': pin.strip()}, self.wall_clock())
        return self.confirm_page(request, token, pickup_id, view, ticket)

    def pin_refused(self, request: Request, token: str, pickup_id: str, exc: PickupError) -> Response:
        t = texts.MESSAGES[request.language]
        if exc.code == 'wrong_pin':
            self.throttle.failed(request.client)
            LOG.info('pickup %s: wrong PIN from %s, %s attempts left', pickup_id, request.client, exc.attempts_left)
            return self.pin_page(request, token, pickup_id, 400, t['wrong_pin'] % exc.attempts_left)
        if exc.code == 'pickup_locked':
            self.throttle.failed(request.client)
            LOG.warning('pickup %s: locked after wrong PINs, the last from %s', pickup_id, request.client)
            return self.unavailable(request, 403, 'locked')
        LOG.info('pickup %s: PIN sent, not available (from %s)', pickup_id, request.client)
        return self.unavailable(request)

    def confirm_page(self, request: Request, token: str, pickup_id: str, view: dict, ticket: str) -> Response:
        t = texts.MESSAGES[request.language]
        details = [(t['subject'], view['subject']), (t['serial'], view['serial']),
                   (t['valid_until'], view['not_after']),
                   (t['format'], texts.FORMAT_NAMES[request.language][view['format']])]
        done_ticket = self.sealer.seal('done', pickup_id, {'renewal_of': view['renewal_of'], 'serial': view['serial']},
                                       self.wall_clock())
        blocks = [('p', t['confirm_intro'] % view['downloads_left']), ('dl', details), ('h2', 'advice_heading'),
                  ('p', texts.advice(request.language, view['format'], request.user_agent)),
                  ('form-download', ticket), ('note', t['after_download']), ('form-done', done_ticket)]
        return self.page(request, 200, 'confirm_heading', blocks, token=token, pickup_id=pickup_id,
                         issuer=view['issuer'])

    def post_download(self, request: Request, token: str, pickup_id: str) -> Response:
        sealed = self.sealer.open('pin', pickup_id, request.form.get('ticket', ''), self.wall_clock())
        if sealed is None:
            return self.page(request, 400, 'title', [('p', 'expired_form')])
        try:
            found = self.ca().download_pickup(token, sealed['pin'], request.client)
        except PickupError as exc:
            return self.pin_refused(request, token, pickup_id, exc)
        LOG.info('pickup %s: downloaded (serial %s, %s) by %s', pickup_id, found.serial, found.format, request.client)
        self.notify('download_complete', pickup_id, hidden=[sealed['pin']], serial=found.serial,
                    pickup_id=found.pickup_id, time=to_iso(found.downloaded_at), client=found.client,
                    format=found.format, old_serial=found.renewal_of)
        response = Response(200, found.content, found.media_type)
        response.headers.append(('Content-Disposition', 'attachment; filename="%s"' % found.filename))
        return response

    def post_done(self, request: Request, token: str, pickup_id: str) -> Response:
        sealed = self.sealer.open('done', pickup_id, request.form.get('ticket', ''), self.wall_clock())
        if sealed is None:
            return self.page(request, 400, 'title', [('p', 'expired_form')])
        t = texts.MESSAGES[request.language]
        blocks = [('p', 'done_intro')]
        if sealed.get('renewal_of'):
            blocks += [('p', t['renewal_intro'] % sealed['renewal_of']),
                       ('form-confirm', request.form.get('ticket', ''))]
        return self.page(request, 200, 'done_heading', blocks, token=token, pickup_id=pickup_id)

    def post_confirm(self, request: Request, token: str, pickup_id: str) -> Response:
        if self.sealer.open('done', pickup_id, request.form.get('ticket', ''), self.wall_clock()) is None:
            return self.page(request, 400, 'title', [('p', 'expired_form')])
        t = texts.MESSAGES[request.language]
        try:
            result = self.ca().confirm_replacement(token=token, by=CONFIRMED_BY)
        except PickupError as exc:
            if exc.code == 'not_picked_up':
                return self.page(request, 409, 'title', [('p', 'not_downloaded')])
            return self.unavailable(request)
        except CertfleetError:
            return self.unavailable(request)
        LOG.info('pickup %s: replacement confirmed from %s; revoked %s', pickup_id, request.client,
                 ', '.join(result['revoked']) or 'nothing (already done)')
        if result['changed']:
            self.notify('replacement_complete', pickup_id, serial=result['serial'], old_serial=result['old_serial'],
                        confirmed_by=result['confirmed_by'], time=result['confirmed_at'])
        return self.page(request, 200, 'replaced_heading', [('p', t['replaced_intro'] % result['old_serial'])])

    def notify(self, kind: str, log_id: str, *, hidden=(), **facts) -> None:
        """The officer's notice of what just happened; a mail that cannot go out is logged, the person's step
        stands (the audit log has it either way)."""
        if self.config.notices is None:
            return
        from ansible_collections.certfleet.pki.plugins.module_utils.notify.events import notify_event

        try:
            notify_event(self.ca(), self.config.notices, kind, secrets=hidden, **facts)
        except CertfleetError as exc:
            LOG.warning('pickup %s: the %s notice was not sent (%s, %s)', log_id, kind, exc.code, exc.field)

    # -- HTML -----------------------------------------------------------------------------------------------------
    def page(self, request: Request, status: int, heading: str, blocks: list, *, token: str | None = None,
             pickup_id: str | None = None, issuer: str | None = None) -> Response:
        """A whole page. Blocks are (kind, message key or text); every text is escaped here."""
        t = texts.MESSAGES[request.language]
        response = Response(status, b'')
        csrf = self.sealer.csrf_token(self.csrf_cookie(request, response), pickup_id) if pickup_id else ''
        action = '/p/%s' % token if token else ''
        body = []
        for kind, value in blocks:
            text = t.get(value, value) if isinstance(value, str) else value
            if kind == 'p':
                body.append('<p>%s</p>' % html.escape(text))
            elif kind == 'note':
                body.append('<p class="note">%s</p>' % html.escape(text))
            elif kind == 'error':
                body.append('<div class="error" role="alert" id="error">%s</div>' % html.escape(text))
            elif kind == 'h2':
                body.append('<h2>%s</h2>' % html.escape(text))
            elif kind == 'dl':
                body.append('<dl id="details">%s</dl>' % ''.join(
                    '<dt>%s</dt><dd>%s</dd>' % (html.escape(k), html.escape(str(v))) for k, v in value))
            elif kind == 'form-pin':
                body.append('<form method="post" action="%s" autocomplete="off"><input type="hidden" name="csrf" '
                            'value="%s"><label for="pin">%s</label><input type="password" id="pin" name="pin" '
                            'inputmode="numeric" pattern="[0-9 ]*" maxlength="16" required autofocus>'
                            '<button type="submit" id="submit-pin">%s</button></form>'
                            % (action, csrf, html.escape(t['pin_label']), html.escape(t['pin_submit'])))
            elif kind in ('form-download', 'form-done', 'form-confirm'):
                target, label, css = {'form-download': ('download', 'download', ''),
                                      'form-done': ('done', 'continue', ' class="secondary"'),
                                      'form-confirm': ('confirm', 'confirm_replacement', '')}[kind]
                body.append('<form method="post" action="%s/%s"><input type="hidden" name="csrf" value="%s">'
                            '<input type="hidden" name="ticket" value="%s"><button type="submit" id="%s"%s>%s'
                            '</button></form>' % (action, target, csrf, html.escape(value), target, css,
                                                  html.escape(t[label])))
        other = 'ja' if request.language == 'en' else 'en'
        switch = '<a href="?lang=%s" id="lang" lang="%s">%s</a>' % (other, other, html.escape(t['language'])) \
            if request.method in ('GET', 'HEAD') else ''
        issuer_line = '<footer>%s</footer>' % html.escape(t['issuer'] % issuer) if issuer else ''
        document = ('<!DOCTYPE html><html lang="%s"><head><meta charset="utf-8">'
                    '<meta name="viewport" content="width=device-width, initial-scale=1">'
                    '<meta name="robots" content="noindex"><title>%s</title>'
                    '<link rel="stylesheet" href="/static/portal.css"></head><body>'
                    '<header><strong>%s</strong>%s</header><main><h1 id="heading">%s</h1><div class="card">%s</div>'
                    '</main>%s</body></html>'
                    % (request.language, html.escape(t['title']), html.escape(t['title']), switch,
                       html.escape(t[heading]), ''.join(body), issuer_line))
        response.body = document.encode('utf-8')
        return response


def _pickup_id_of(path: str) -> str:
    match = _TOKEN_PATH.match(path or '')
    return match.group(1).split('.', 1)[0] if match else '-'


def create_app(config, clock=None) -> PortalApp:
    """The WSGI application for ``config`` (a dict or a :class:`PortalConfig`); ``clock`` only for tests."""
    if not isinstance(config, PortalConfig):
        config = PortalConfig(dict(config))
    return PortalApp(config, clock=clock)


class _LazyApplication:
    """The module-level ``application`` for WSGI servers: reads ``$CERTFLEET_PORTAL_CONFIG`` when the worker imports
    it (a bad config stops the server at start); without it, importing needs no config (the sanity import test)."""

    def __init__(self):
        self._app = None
        self._lock = threading.Lock()
        if os.environ.get(CONFIG_ENV):
            self._app = create_app(PortalConfig.from_file(os.environ[CONFIG_ENV]))  # a bad config stops the worker
        if not LOG.handlers:  # under a WSGI server: pickup ids and addresses to stderr (the journal), nothing secret
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter('[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s'))
            LOG.addHandler(handler)
            LOG.setLevel(logging.INFO)

    def __call__(self, environ, start_response):
        with self._lock:
            if self._app is None:
                path = os.environ.get(CONFIG_ENV)
                if not path:
                    raise RuntimeError('set %s to the portal config file' % CONFIG_ENV)
                self._app = create_app(PortalConfig.from_file(path))
        return self._app(environ, start_response)


application = _LazyApplication()
