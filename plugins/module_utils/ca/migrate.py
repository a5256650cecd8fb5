# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving an embedded CA (``ca_path``) into a shared store (``ca_store``) (private module_utils).

Everything moves: certificate, chain, the encrypted key as it is, the published CRL, and every row of the record
(serials, renewal links, revocations, held keys, deployments, bulk request lines, the audit log, the CRL number).
The copy is built in the target's staging area and activated in one step, while the source's write lock keeps
every other writer out; then the source is marked as moved, and the CA modules refuse it from then on (a CA
must not live on in two places). A target that holds any state is never overwritten. Running it again changes
nothing; after a crash between the activation and the mark, it only sets the mark.
"""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import (
    CADirectory, CERT_FILE, CHAIN_FILE, CRL_DER_FILE, CRL_PEM_FILE, CertificateAuthority, KEY_FILE,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.home import StoreHome
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import MOVED_TO
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CAError, InputError, StoreError
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import to_iso, utcnow
from ansible_collections.certfleet.pki.plugins.module_utils.store.factory import open_store, store_exists, store_name
from ansible_collections.certfleet.pki.plugins.module_utils.store.transfer import content_digest, copy_state
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import fingerprint

MIGRATED_FROM = 'migrated_from'  # meta of a target: the source and the digest of its content when copied
CA_OBJECTS = (KEY_FILE, CERT_FILE, CHAIN_FILE, CRL_DER_FILE, CRL_PEM_FILE)


def migrate_ca(*, ca_path: str | None, store_url: str | None, ca_passphrase=None, check_mode: bool = False,
               clock=utcnow) -> dict:
    """Move the CA in ``ca_path`` into the empty shared store ``store_url``. Idempotent."""
    if not ca_path:
        raise InputError('is required: the embedded CA to move', 'ca_path')
    if not store_url:
        raise InputError('is required: the shared store to move the CA into', 'ca_store')
    target_name = store_name(store_url)
    directory = CADirectory(ca_path)
    authority = CertificateAuthority.load(directory)
    authority.unlock(ca_passphrase)  # proves the caller holds the CA; the key moves as it is, encrypted
    source = open_store(ca_path=directory.path)
    try:
        with source.read():
            _require_owner(source, directory, authority)
            source.check_integrity()  # a damaged record must not be copied as if it were whole
            moved_to = source.get_meta(MOVED_TO)
        result = {'ca_path': directory.path, 'ca_store': target_name, 'ca': authority.summary()}
        if moved_to is not None or store_exists(store_url=store_url):
            return dict(result, **_already_there(source, store_url, target_name=target_name, moved_to=moved_to,
                                                 authority=authority, check_mode=check_mode, now=clock()))
        if check_mode:
            with source.read():
                counts = content_digest(source)[1]
            return dict(result, changed=True, action='migrated', counts=counts)
        return dict(result, changed=True, action='migrated', counts=_move(directory, source, store_url, clock()))
    finally:
        source.close()


def _require_owner(source, directory: CADirectory, authority: CertificateAuthority) -> None:
    if source.get_meta('ca_fingerprint_sha256') != fingerprint(authority.certificate):
        raise StoreError('%s belongs to another CA than %s; nothing was moved'
                         % (source.location, directory.file(CERT_FILE)), 'ca_path')


def _move(directory: CADirectory, source, store_url: str, now) -> dict:
    """Copy under the source's write lock, activate the target, then mark the source (one transaction)."""
    with source.write():
        digest, _counts = content_digest(source, skip_meta=(MOVED_TO,))
        try:
            target = open_store(store_url=store_url, create=True)
        except StoreError as exc:
            if exc.code == 'store_exists':  # created meanwhile by another process
                raise _not_empty(store_name(store_url)) from None
            raise
        try:
            home = StoreHome(store_url)
            home.attach(target)
            for name in CA_OBJECTS:
                data = directory.read(name)
                if data is not None:
                    home.write_secret(name, data)
            with target.write():
                counts = copy_state(source, target)
                target.set_meta(MIGRATED_FROM, {'ca_path': directory.path, 'digest': digest, 'at': to_iso(now)})
                target.append_audit(now, 'ca_migrated', None, [], 'ok', {'from': directory.path, 'rows': counts})
        except BaseException:
            target.discard()
            raise
        target.activate()
        _mark(source, target.location, now)
    return counts


def _mark(source, target_name: str, now) -> None:
    source.set_meta(MOVED_TO, {'store': target_name, 'at': to_iso(now)})
    source.append_audit(now, 'ca_moved', None, [], 'ok', {'to': target_name})


def _already_there(source, store_url: str, *, target_name: str, moved_to, authority, check_mode: bool, now) -> dict:
    """The target holds a state: this CA, copied earlier (nothing to do, or only the mark), or anything else."""
    if moved_to is not None and moved_to.get('store') != target_name:
        raise CAError('this CA was moved to %s on %s, not to %s; a CA lives in one store'
                      % (moved_to.get('store'), moved_to.get('at'), target_name), 'ca_store', code='ca_moved')
    target = open_store(store_url=store_url)
    try:
        with target.read():
            owner = target.get_meta('ca_fingerprint_sha256')
            origin = target.get_meta(MIGRATED_FROM) or {}
    finally:
        target.close()
    if owner != fingerprint(authority.certificate) or not origin:
        raise _not_empty(target_name)
    if moved_to is not None:
        return {'changed': False, 'action': 'none'}
    with source.write() if not check_mode else source.read():
        if content_digest(source, skip_meta=(MOVED_TO,))[0] != origin.get('digest'):
            raise CAError('%s holds this CA, copied from %s on %s, but the CA there has changed since; nothing was '
                          'changed: compare the two before moving it again' % (target_name, origin.get('ca_path'),
                                                                               origin.get('at')),
                          'ca_store', code='target_not_empty')
        if not check_mode:
            _mark(source, target_name, now)
    return {'changed': True, 'action': 'completed'}


def _not_empty(target_name: str) -> CAError:
    return CAError('the store %s holds a CA state already; a migration never overwrites one (give an empty '
                   'database)' % target_name, 'ca_store', code='target_not_empty')
