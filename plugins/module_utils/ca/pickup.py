# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pickup credentials: a certificate and its held key handed to a person through a URL and a PIN (private
module_utils).

A pickup is created for an identity's current certificate whose key the CA holds. It is a retrieval URL,
``BASE/p/<pickup id>.<secret>`` (the id is a public handle, the secret 32 random bytes), and a separate 8-digit PIN.
Both secrets are returned once and stored only as scrypt hashes (salt and parameters in the stored text), compared
in constant time. The person opens the URL, enters the PIN and downloads a PKCS#12 (modern or legacy encryption)
or an Apple configuration profile, protected by that PIN. Wrong PINs are counted and lock the pickup; downloads
are counted and close it; its window (N days after the first pickup, M days after issuance, never beyond the key's
retention) closes it by time. A closed pickup purges the held key unless another open pickup still needs it.

For the portal: :func:`open_pickup`, :func:`check_pin`, :func:`download`, :func:`confirm_replacement` (a renewal
pickup: the person, or the officer, confirms the new certificate works; the old serial is then revoked as
superseded through the CA's revocation path) and :func:`expire_pickups`. A token that is unknown, wrong, closed or
expired always gives the same error (code ``pickup_unavailable``), so a guesser learns nothing. All times come from
``ca.clock()``; every change is audited, never with a secret.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
import re
import secrets
import stat
import urllib.parse
from dataclasses import dataclass, field

from ansible_collections.certfleet.pki.plugins.module_utils.ca.export import held_key
from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import validate_identity
from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import commit_revoked
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    CertfleetError, InputError, KeyUnavailableError, NotFoundError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    SECRET_FILE_MODE, atomic_write, ensure_private_dir,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import parse_positive_days, to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.apple_profile import (
    build_profile, profile_identifier, serialize_profile,
)
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import (
    KEY_HELD, PICKUP_FORMATS, PickupRecord,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib

try:
    from cryptography import x509
except ImportError:
    pass

STATES = ('present', 'absent')
PICKUP_STATES = ('open', 'picked_up', 'expired', 'locked', 'closed')
PIN_DIGITS = 8
SECRET_BYTES = 32
ID_BYTES = 12
# scrypt at the cost OWASP names as its floor (N=2**14, r=8, p=1: 16 MiB, tens of milliseconds a guess).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
MAX_LIMIT = 100  # downloads and PIN attempts: a pickup is for one person, not a distribution point
DEFAULTS = {'format': 'pkcs12-modern', 'lock_after_first_days': 3, 'expire_after_issue_days': 30, 'max_downloads': 1,
            'max_attempts': 5}
MEDIA_TYPES = {'pkcs12-modern': 'application/x-pkcs12', 'pkcs12-legacy': 'application/x-pkcs12',
               'mobileconfig': 'application/x-apple-aspen-config'}
# What the portal tells the person about the file they get, in plain words.
FORMAT_ADVICE = {
    'pkcs12-modern': 'A .p12 file for Windows 10 (1809) or later, current Linux browsers and Firefox. Open it and '
                     'enter the PIN when asked.',
    'pkcs12-legacy': 'A .p12 file for older Windows and macOS importers, which refuse the modern encryption. Open it '
                     'and enter the PIN when asked.',
    'mobileconfig': 'A configuration profile for iPhone, iPad and Mac. Install it in Settings; the device asks for '
                    'the PIN to unlock the certificate.',
}
_TOKEN = re.compile(r'^([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$')
_UNSAFE_FILE_CHARS = re.compile(r'[^A-Za-z0-9._@+-]')
_LOCAL_HOSTS = ('localhost', '127.0.0.1', '::1')


class PickupError(CertfleetError):
    """A pickup cannot be used. The code ``pickup_unavailable`` (unknown, wrong, closed, expired) carries the same
    message whatever the reason; ``wrong_pin`` and ``pickup_locked`` answer a PIN attempt."""

    code = 'pickup_unavailable'
    UNAVAILABLE = 'this pickup link is not valid or no longer available; ask the registration officer for a new one'

    def __init__(self, message: str | None = None, field: str | None = None, code: str | None = None,
                 attempts_left: int | None = None):
        super().__init__(message or self.UNAVAILABLE, field, code)
        self.attempts_left = attempts_left


@dataclass
class PickupDownload:
    """What the portal sends: the file (never in a repr) and the facts for the officer's notice."""
    content: bytes = field(repr=False)
    filename: str
    media_type: str
    pickup_id: str
    identity: str
    serial: str
    subject: str
    format: str
    downloaded_at: datetime.datetime
    client: str | None
    closed: bool
    renewal_of: str | None


# -- slow hashes ----------------------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode('ascii').rstrip('=')


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def slow_hash(secret: str) -> str:
    """``scrypt$N$r$p$salt$hash``: a fresh salt, the parameters kept so that raising them later breaks nothing."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode('utf-8'), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return 'scrypt$%d$%d$%d$%s$%s' % (SCRYPT_N, SCRYPT_R, SCRYPT_P, _b64(salt), _b64(digest))


def verify_slow_hash(secret: str, encoded: str) -> bool:
    try:
        kind, n, r, p, salt, expected = encoded.split('$')
        if kind != 'scrypt':
            return False
        computed = hashlib.scrypt(secret.encode('utf-8'), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                  dklen=len(_unb64(expected)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, _unb64(expected))


_DUMMY = {}


def _dummy_hash() -> str:
    """A hash to check unknown pickup ids against, so that they take as long as known ones."""
    if 'hash' not in _DUMMY:
        _DUMMY['hash'] = slow_hash(secrets.token_urlsafe(SECRET_BYTES))
    return _DUMMY['hash']


def new_pin() -> str:
    return str(secrets.randbelow(10 ** PIN_DIGITS)).zfill(PIN_DIGITS)


# -- input ----------------------------------------------------------------------------------------------------------

def _base_url(value) -> str:
    if not value or not str(value).strip():
        raise InputError('is required: the address of the pickup portal, for example https://pki.example.org',
                         'base_url')
    text = str(value).strip().rstrip('/')
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ('https', 'http') or not parts.hostname:
        raise InputError('%r is not an http(s) URL' % text, 'base_url')
    if parts.scheme == 'http' and parts.hostname not in _LOCAL_HOSTS:
        raise InputError('must use https: the URL carries the pickup secret (http only for localhost)', 'base_url')
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InputError('must not carry a query, a fragment or credentials', 'base_url')
    return text


def _optional_days(value, field_name: str) -> int | None:
    return None if value is None else parse_positive_days(value, field_name)


def _limit(value, field_name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError('expected a whole number, got %r' % (value,), field_name)
    if isinstance(value, bool) or not 1 <= number <= MAX_LIMIT:
        raise InputError('must be between 1 and %d, got %r' % (MAX_LIMIT, value), field_name)
    return number


def _pin_file(value) -> str | None:
    """The PIN file's absolute path; its folder must be private (0700) or creatable as such, the file not a link."""
    if value is None:
        return None
    path = os.path.abspath(os.path.expanduser(str(value)))
    folder = os.path.dirname(path)
    if os.path.isdir(path) or os.path.islink(path):
        raise InputError('%s is a folder or a symbolic link, expected a new file' % path, 'pin_file')
    if os.path.isdir(folder):
        if stat.S_IMODE(os.stat(folder).st_mode) & 0o077:
            raise InputError('the folder %s can be read by others; the PIN goes only in a folder with mode 0700'
                             % folder, 'pin_file')
    elif not os.path.isdir(os.path.dirname(folder)):
        raise InputError('the folder %s does not exist' % os.path.dirname(folder), 'pin_file')
    return path


def parse_token(token) -> tuple:
    """(pickup id, secret) of ``<id>.<secret>``; anything else is the generic error."""
    match = _TOKEN.match(str(token or ''))
    if match is None:
        raise PickupError(field='token')
    return match.group(1), match.group(2)


# -- creating and withdrawing ---------------------------------------------------------------------------------------

def create_pickup(ca, *, identity, base_url=None, format=DEFAULTS['format'],
                  lock_after_first_days=DEFAULTS['lock_after_first_days'],
                  expire_after_issue_days=DEFAULTS['expire_after_issue_days'],
                  max_downloads=DEFAULTS['max_downloads'], max_attempts=DEFAULTS['max_attempts'], state='present',
                  pin_file=None, check_mode=False) -> dict:
    """Ensure the identity's current certificate has an open pickup (``present``), or has none (``absent``).

    Everything is validated before anything is written. A new pickup returns its URL and PIN once (the PIN goes to
    ``pin_file`` instead when given); an open pickup for the same certificate is left alone and neither is returned.
    """
    identity = validate_identity(identity)
    if state not in STATES:
        raise InputError('unknown state %r (use present or absent)' % (state,), 'state')
    if state == 'absent':
        return _withdraw(ca, identity, check_mode)
    options = dict(check_pickup_options({
        'base_url': base_url, 'format': format, 'lock_after_first_days': lock_after_first_days,
        'expire_after_issue_days': expire_after_issue_days, 'max_downloads': max_downloads,
        'max_attempts': max_attempts}), pin_file=_pin_file(pin_file))
    now = ca.clock()
    with ca.store.read():
        record = _pickup_certificate(ca.store, identity, now)
        expires_at = _expires_at(record, options['expire_after_issue_days'], now)
        existing = [p for p in ca.store.find_pickups(serial=record.serial, open_only=True) if p.is_open(now)]
    if existing:
        return _unchanged(existing[-1], now)
    if check_mode:
        return {'changed': True, 'pickup': None, 'pickup_id': None, 'url': None, 'pin_returned': False,
                'pin_file': options['pin_file'], 'identity': identity, 'serial': record.serial,
                'renewal_of': record.renews, 'superseded': []}
    return _create(ca, record, options, expires_at, now)


def _create(ca, record, options: dict, expires_at, now) -> dict:
    """Draw the secrets, store their hashes, and hand the URL and the PIN over once."""
    pickup_id, secret, pin = secrets.token_urlsafe(ID_BYTES), secrets.token_urlsafe(SECRET_BYTES), new_pin()
    pickup = PickupRecord(
        pickup_id=pickup_id, identity=record.identity, serial=record.serial, token_hash=slow_hash(secret),
        pin_hash=slow_hash(pin), created_at=now, format=options['format'],
        lock_after_first_days=options['lock_after_first_days'], expires_at=expires_at,
        max_downloads=options['max_downloads'], max_attempts=options['max_attempts'], renewal_of=record.renews)
    with ca.store.write():
        _expire_overdue(ca.store, now)
        latest = ca.store.current(record.identity)
        if latest is None or latest.serial != record.serial:
            raise CertfleetError('the current certificate of %r changed while the pickup was prepared; run again'
                                 % record.identity, 'identity', code='conflict')
        raced = [p for p in ca.store.find_pickups(serial=record.serial, open_only=True) if p.is_open(now)]
        if raced:
            return _unchanged(raced[-1], now)
        # A pickup of an older certificate of the identity would hand out a key the new one replaces.
        superseded = [p for p in ca.store.find_pickups(identity=record.identity, open_only=True)
                      if p.serial != record.serial]
        for old in superseded:
            _close(ca.store, old, now, 'superseded')
        ca.store.insert_pickup(pickup)
        ca.store.append_audit(now, 'pickup_create', record.identity, [record.serial], 'created', _audit_view(pickup))
    result = {'changed': True, 'pickup': pickup.to_result(now), 'pickup_id': pickup_id,
              'url': '%s/p/%s.%s' % (options['base_url'], pickup_id, secret), 'pin_returned': False,
              'pin_file': options['pin_file'], 'identity': record.identity, 'serial': record.serial,
              'renewal_of': record.renews, 'superseded': [p.pickup_id for p in superseded]}
    if options['pin_file'] is None:
        return dict(result, pin=pin, pin_returned=True)
    try:
        _write_pin(options['pin_file'], pin)
    except CertfleetError:
        with ca.store.write():  # a PIN nobody has makes the pickup useless: close it rather than leave it open
            _close(ca.store, ca.store.get_pickup(pickup_id), ca.clock(), 'pin_lost')
        raise
    return result


def check_pickup_options(options: dict) -> dict:
    """A pickup's settings checked (errors name the module option); also used by the bulk request path before any
    certificate is issued."""
    return {
        'base_url': _base_url(options.get('base_url')),
        'format': options.get('format') if options.get('format') in PICKUP_FORMATS else _bad_format(
            options.get('format')),
        'lock_after_first_days': _optional_days(options.get('lock_after_first_days'),
                                                'lock_after_first_pickup_days'),
        'expire_after_issue_days': _optional_days(options.get('expire_after_issue_days'), 'expire_after_issue_days'),
        'max_downloads': _limit(options.get('max_downloads'), 'max_downloads'),
        'max_attempts': _limit(options.get('max_attempts'), 'max_attempts'),
    }


def _bad_format(value):
    raise InputError('unknown format %r (use %s)' % (value, ', '.join(PICKUP_FORMATS)), 'format')


def _pickup_certificate(store, identity: str, now):
    """The current record of an identity whose key the CA holds (the key itself is unwrapped only at download
    time, with the PIN); errors name ``identity``."""
    record = store.current(identity)
    if record is None:
        raise NotFoundError('identity %r has no current certificate' % identity, 'identity')
    if record.state(now) != 'valid':
        raise InputError('the current certificate %s of %r is %s' % (record.serial, identity, record.state(now)),
                         'identity')
    wrapped = store.wrapped_key(record.serial) if record.key_status == KEY_HELD else None
    if wrapped is None or (record.key_retain_until is not None and now >= record.key_retain_until):
        raise KeyUnavailableError('the CA does not hold the private key of certificate %s (%s): only a certificate '
                                  'whose key the CA generated can be picked up, within its key_retention'
                                  % (record.serial, record.key_status), 'identity', code='key_unavailable')
    return record


def _expires_at(record, expire_after_issue_days, now) -> datetime.datetime:
    """The issuance-based end of the window, never beyond the key's retention nor the certificate's validity."""
    ends = [record.not_after]
    if record.key_retain_until is not None:
        ends.append(record.key_retain_until)
    if expire_after_issue_days is not None:
        by_issue = record.issued_at + datetime.timedelta(days=expire_after_issue_days)
        if by_issue <= now:
            raise InputError('certificate %s was issued at %s; %d days after issuance have passed'
                             % (record.serial, to_iso(record.issued_at), expire_after_issue_days),
                             'expire_after_issue_days')
        ends.append(by_issue)
    return min(ends)


def _unchanged(pickup: PickupRecord, now) -> dict:
    return {'changed': False, 'pickup': pickup.to_result(now), 'pickup_id': pickup.pickup_id, 'url': None,
            'pin_returned': False, 'pin_file': None, 'identity': pickup.identity, 'serial': pickup.serial,
            'renewal_of': pickup.renewal_of, 'superseded': []}


def _withdraw(ca, identity: str, check_mode: bool) -> dict:
    now = ca.clock()
    with ca.store.read():
        found = ca.store.find_pickups(identity=identity, open_only=True)
    if not found or check_mode:
        return {'changed': bool(found), 'identity': identity, 'withdrawn': [p.pickup_id for p in found]}
    with ca.store.write():
        found = ca.store.find_pickups(identity=identity, open_only=True)  # again, under the write lock
        for pickup in found:
            _close(ca.store, pickup, now, 'withdrawn')
    return {'changed': bool(found), 'identity': identity, 'withdrawn': [p.pickup_id for p in found]}


def _write_pin(path: str, pin: str) -> None:
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        ensure_private_dir(folder, 'pin_file')
    atomic_write(path, (pin + '\n').encode('ascii'), SECRET_FILE_MODE, field='pin_file')


# -- closing --------------------------------------------------------------------------------------------------------

def _audit_view(pickup: PickupRecord) -> dict:
    """What the audit log keeps of a pickup: its handle and settings, never a hash."""
    return {'pickup_id': pickup.pickup_id, 'format': pickup.format, 'expires_at': to_iso(pickup.expires_at),
            'lock_after_first_days': pickup.lock_after_first_days, 'max_downloads': pickup.max_downloads,
            'max_attempts': pickup.max_attempts, 'renewal_of': pickup.renewal_of}


def _close(store, pickup: PickupRecord, now, reason: str, changes: dict | None = None) -> bool:
    """Close the pickup and purge its key unless another open pickup needs it; returns whether the key went.
    Call inside ``store.write()``."""
    store.update_pickup(pickup.pickup_id, dict(changes or {}, closed_at=now, close_reason=reason))
    others = [p for p in store.find_pickups(serial=pickup.serial, open_only=True) if p.pickup_id != pickup.pickup_id]
    purged = False if others else store.drop_key(pickup.serial, now)
    store.append_audit(now, 'pickup_close', pickup.identity, [pickup.serial], reason,
                       {'pickup_id': pickup.pickup_id, 'key_purged': purged, 'downloads': pickup.downloads})
    return purged


def _expire_overdue(store, now) -> list:
    """Close the open pickups whose window has passed. Call inside ``store.write()``."""
    overdue = [p for p in store.find_pickups(open_only=True) if not p.is_open(now)]
    for pickup in overdue:
        _close(store, pickup, now, 'expired')
    return [p.pickup_id for p in overdue]


def expire_pickups(ca, check_mode: bool = False) -> dict:
    """Close every pickup whose window has passed (and purge keys nobody needs any more)."""
    now = ca.clock()
    with ca.store.read():
        overdue = [p.pickup_id for p in ca.store.find_pickups(open_only=True) if not p.is_open(now)]
    if overdue and not check_mode:
        with ca.store.write():
            overdue = _expire_overdue(ca.store, now)
    return {'changed': bool(overdue), 'expired': overdue}


# -- the portal's side ----------------------------------------------------------------------------------------------

def _authenticate(store, token, now, allow_closed: bool = False) -> PickupRecord:
    """The pickup the token opens, checked in constant time; the generic error for anything else."""
    pickup_id, secret = parse_token(token)
    pickup = store.get_pickup(pickup_id)
    matches = verify_slow_hash(secret, pickup.token_hash if pickup is not None else _dummy_hash())
    if pickup is None or not matches or not (allow_closed or pickup.is_open(now)):
        raise PickupError(field='token')
    return pickup


def _portal_view(ca, pickup: PickupRecord, record, now) -> dict:
    return {'pickup_id': pickup.pickup_id, 'identity': pickup.identity, 'serial': pickup.serial,
            'subject': record.subject_text, 'not_after': to_iso(record.not_after), 'format': pickup.format,
            'advice': FORMAT_ADVICE[pickup.format], 'renewal_of': pickup.renewal_of,
            'downloads_left': max(0, pickup.max_downloads - pickup.downloads),
            'attempts_left': max(0, pickup.max_attempts - pickup.failed_attempts),
            'window_ends_at': to_iso(pickup.window_ends_at()), 'issuer': ca.authority.common_name()}


def open_pickup(ca, token) -> dict:
    """What the first page shows for a token (nothing secret); the generic error when it opens nothing."""
    now = ca.clock()
    with ca.store.read():
        pickup = _authenticate(ca.store, token, now)
        record = ca.store.get(pickup.serial)
    return _portal_view(ca, pickup, record, now)


def check_pin(ca, token, pin, client=None) -> dict:
    """Check a PIN attempt: audited either way; a wrong one is counted and the last allowed one locks the pickup."""
    pickup, record, now = _checked_pin(ca, token, pin, client)
    return _portal_view(ca, pickup, record, now)


def _checked_pin(ca, token, pin, client) -> tuple:
    now = ca.clock()
    with ca.store.read():
        # Closed or out of its window is decided below, under the write lock, where a passed window gets closed.
        pickup = _authenticate(ca.store, token, now, allow_closed=True)
    correct = verify_slow_hash(str(pin or '').strip(), pickup.pin_hash)
    with ca.store.write():
        pickup = ca.store.get_pickup(pickup.pickup_id)  # again, under the write lock: attempts count exactly
        if pickup.closed_at is not None:
            failure = PickupError(field='token')
        elif not pickup.is_open(now):
            _close(ca.store, pickup, now, 'expired')
            failure = PickupError(field='token')
        elif correct:
            ca.store.append_audit(now, 'pickup_pin', pickup.identity, [pickup.serial], 'accepted',
                                  {'pickup_id': pickup.pickup_id, 'client': client})
            failure = None
        else:
            failure = _wrong_pin(ca.store, pickup, now, client)
        record = ca.store.get(pickup.serial)
        pickup = ca.store.get_pickup(pickup.pickup_id)
    if failure is not None:
        raise failure
    return pickup, record, now


def _wrong_pin(store, pickup: PickupRecord, now, client) -> PickupError:
    attempts = pickup.failed_attempts + 1
    left = max(0, pickup.max_attempts - attempts)
    store.update_pickup(pickup.pickup_id, {'failed_attempts': attempts})
    store.append_audit(now, 'pickup_pin', pickup.identity, [pickup.serial], 'wrong_pin',
                       {'pickup_id': pickup.pickup_id, 'client': client, 'failed_attempts': attempts,
                        'attempts_left': left})
    if left:
        return PickupError('the PIN is wrong; %d attempt%s left' % (left, '' if left == 1 else 's'), 'pin',
                           code='wrong_pin', attempts_left=left)
    _close(store, pickup, now, 'locked', {'locked_at': now})
    return PickupError('the PIN was wrong too many times; the pickup is locked. Ask the registration officer for a '
                       'new one', 'pin', code='pickup_locked', attempts_left=0)


def download(ca, token, pin, client=None) -> PickupDownload:
    """The file of the pickup, protected by the PIN; counts the download and closes the pickup after its last one."""
    pickup, record, now = _checked_pin(ca, token, pin, client)
    with ca.store.read():
        wrapped = ca.store.wrapped_key(record.serial)
    try:
        key = held_key(ca, record, wrapped, now, 'token')
    except KeyUnavailableError:
        raise PickupError(field='token') from None
    content = _package(ca, pickup, record, key, str(pin).strip())
    with ca.store.write():
        fresh = ca.store.get_pickup(pickup.pickup_id)  # a parallel download may have used the last one
        if fresh.closed_at is not None or not fresh.is_open(now) or fresh.downloads >= fresh.max_downloads:
            raise PickupError(field='token')
        downloads = fresh.downloads + 1
        changes = {'downloads': downloads, 'first_pickup_at': fresh.first_pickup_at or now}
        ca.store.append_audit(now, 'pickup_download', fresh.identity, [fresh.serial], 'downloaded',
                              {'pickup_id': fresh.pickup_id, 'client': client, 'subject': record.subject_text,
                               'format': fresh.format, 'downloads': downloads})
        closed = downloads >= fresh.max_downloads
        if closed:
            _close(ca.store, fresh, now, 'downloaded', changes)
        else:
            ca.store.update_pickup(fresh.pickup_id, changes)
    extension = 'mobileconfig' if pickup.format == 'mobileconfig' else 'p12'
    name = (_UNSAFE_FILE_CHARS.sub('_', pickup.identity)[:120].lstrip('.') or 'certificate') + '.' + extension
    return PickupDownload(content=content, filename=name, media_type=MEDIA_TYPES[pickup.format],
                          pickup_id=pickup.pickup_id, identity=pickup.identity, serial=pickup.serial,
                          subject=record.subject_text, format=pickup.format, downloaded_at=now, client=client,
                          closed=closed, renewal_of=pickup.renewal_of)


def _package(ca, pickup: PickupRecord, record, key, pin: str) -> bytes:
    certificate = x509.load_pem_x509_certificate(record.pem.encode('ascii'))
    chain = [ca.authority.certificate] + list(ca.authority.chain)
    if pickup.format != 'mobileconfig':
        return pkcs12_lib.serialize(key=key, certificate=certificate, chain=chain, password=pin,
                                    encryption=pickup.format.split('-')[1], friendly_name=record.identity)
    # iOS and macOS refuse AES-encrypted PKCS#12 payloads; the CA goes in its own root payload. No Password key:
    # the device asks the person for the PIN.
    data = pkcs12_lib.serialize(key=key, certificate=certificate, chain=[], password=pin, encryption='legacy',
                                friendly_name=record.identity)
    profile = build_profile(identity=record.identity, identifier=profile_identifier(record.identity), pkcs12_data=data,
                            certificate=certificate, ca=ca.authority.certificate, include_password=False)
    return serialize_profile(profile)


def confirm_replacement(ca, *, token=None, pickup_id=None, by=None) -> dict:
    """The renewal is complete: revoke the serial the pickup's certificate renews (reason superseded).

    The person confirms with the token, once they downloaded; the officer with the pickup id, whenever they decide.
    Confirming again changes nothing.
    """
    if (token is None) == (pickup_id is None):
        raise InputError('give either token or pickup_id', 'pickup_id')
    if not by or not str(by).strip():
        raise InputError('is required: who confirms the replacement', 'by')
    by = str(by).strip()
    now = ca.clock()
    with ca.store.read():
        if token is not None:
            pickup = _authenticate(ca.store, token, now, allow_closed=True)
            if pickup.downloads == 0:
                raise PickupError('the new certificate has not been downloaded yet', 'token', code='not_picked_up')
        else:
            pickup = ca.store.get_pickup(str(pickup_id))
            if pickup is None:
                raise NotFoundError('no pickup %r' % pickup_id, 'pickup_id')
    field_name = 'token' if token is not None else 'pickup_id'
    if pickup.renewal_of is None:
        raise InputError('pickup %s is not a renewal: there is no old certificate to revoke' % pickup.pickup_id,
                         field_name)
    result = {'pickup_id': pickup.pickup_id, 'identity': pickup.identity, 'serial': pickup.serial,
              'old_serial': pickup.renewal_of, 'confirmed_by': by}
    if pickup.confirmed_at is not None:
        return dict(result, changed=False, revoked=[], confirmed_at=to_iso(pickup.confirmed_at))
    with ca.store.write():
        old = ca.store.get(pickup.renewal_of)
        revoked = [old] if old is not None and old.status == 'valid' else []
        # The CA's revocation step (revoke, drop the key, audit), so the next CRL lists the old serial.
        commit_revoked(ca.store, revoked, now, 'superseded', {'pickup_id': pickup.pickup_id, 'confirmed_by': by})
        ca.store.update_pickup(pickup.pickup_id, {'confirmed_at': now})
        ca.store.append_audit(now, 'pickup_confirm', pickup.identity, [pickup.serial, pickup.renewal_of], 'confirmed',
                              {'pickup_id': pickup.pickup_id, 'confirmed_by': by,
                               'revoked': [r.serial for r in revoked]})
    return dict(result, changed=True, revoked=[r.serial for r in revoked], confirmed_at=to_iso(now))


# -- listing --------------------------------------------------------------------------------------------------------

def list_pickups(ca, *, identity=None, states=None) -> dict:
    """Pickups with their state and counters (never a hash), and the count per state. Reads only."""
    if identity is not None:
        identity = validate_identity(identity)
    wanted = list(states or [])
    for index, state in enumerate(wanted):
        if state not in PICKUP_STATES:
            raise InputError('unknown state %r (use %s)' % (state, ', '.join(PICKUP_STATES)), 'states[%d]' % index)
    now = ca.clock()
    with ca.store.read():
        found = ca.store.find_pickups(identity=identity)
        subjects = {r.serial: r.subject_text for r in ca.store.find(serials=sorted({p.serial for p in found}))}
    counts = dict.fromkeys(PICKUP_STATES, 0)
    listed = []
    for pickup in found:
        entry = dict(pickup.to_result(now), subject=subjects.get(pickup.serial))
        counts[entry['state']] += 1
        if not wanted or entry['state'] in wanted:
            listed.append(entry)
    counts['total'] = len(found)
    return {'changed': False, 'pickups': listed, 'counts': counts}
