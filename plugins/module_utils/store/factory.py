# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which store holds a CA's state, chosen from the CA's configuration (private module_utils).

Without a store URL the state is the embedded SQLite store, ``state.db`` in ``ca_path``. A store URL (the
``ca_store`` option) names a shared store, and its scheme chooses the engine: an engine registers an opener in
``SHARED_STORES``. Callers open stores only here, never by constructing an engine.
"""

from __future__ import annotations

import os

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import CertificateStore
from ansible_collections.certfleet.pki.plugins.module_utils.store.sqlite import SQLiteStore

EMBEDDED_STATE_FILE = 'state.db'


def _postgresql_engine() -> dict:
    # Imported on first use: psycopg's import alone costs every embedded-store module run about 0.13 s.
    from ansible_collections.certfleet.pki.plugins.module_utils.store import postgresql  # pylint: disable=C0415
    return {'open': postgresql.open_postgresql, 'exists': postgresql.postgresql_exists,
            'name': postgresql.postgresql_name}


# URL scheme -> a loader of its engine: a dict of open(store_url, create, prefetch_meta, prefetch_identity) ->
# CertificateStore, exists(store_url) -> bool, and name(store_url) -> the URL without its password. The PostgreSQL
# store takes both libpq URL schemes; it needs psycopg only when used (a clear StoreError names it otherwise).
SHARED_STORES: dict = {'postgresql': _postgresql_engine, 'postgres': _postgresql_engine}


def _embedded_path(ca_path: str | None) -> str:
    if not ca_path:
        raise InputError('is required when no shared store is set', 'ca_path')
    return os.path.join(os.path.abspath(os.path.expanduser(ca_path)), EMBEDDED_STATE_FILE)


def _shared_store(store_url: str):
    """The engine of a store URL; the URL itself is never repeated, it may carry a password."""
    scheme = store_url.split('://', 1)[0].lower() if '://' in store_url else ''
    if not scheme:
        raise InputError('is not a store URL (expected a URL such as postgresql://HOST/DBNAME); leave it unset for '
                         'the embedded store in ca_path', 'ca_store')
    if scheme not in SHARED_STORES:
        supported = ', '.join(sorted(SHARED_STORES)) or 'none in this version'
        raise InputError('the store URL scheme %r is not supported (shared stores: %s); leave ca_store unset for the '
                         'embedded store in ca_path' % (scheme, supported), 'ca_store')
    return SHARED_STORES[scheme]()


def open_store(ca_path: str | None = None, store_url: str | None = None, create: bool = False,
               prefetch_meta=(), prefetch_identity: str | None = None) -> CertificateStore:
    """Open the CA's store, migrated to the newest schema.

    ``prefetch_meta``: meta keys a shared store may read while opening (same round trip); the first
    ``get_meta_many`` asking for some of them is answered from that read. ``prefetch_identity``: the identity the
    caller decides on first; a shared store asks for its record right after opening and answers the first
    ``current_with_history`` of it from that (the caller unlocks the CA's key meanwhile).

    ``create=True`` starts a new, empty store that is not the CA's state until ``activate()`` (``discard()``
    abandons it); for the embedded store, whatever an unfinished creation left in ``ca_path`` is removed.
    """
    if store_url:
        return _shared_store(store_url)['open'](store_url, create, prefetch_meta, prefetch_identity)
    path = _embedded_path(ca_path)
    return SQLiteStore.create_new(path) if create else SQLiteStore(path)


def store_exists(ca_path: str | None = None, store_url: str | None = None) -> bool:
    """Whether the CA's state has been created (without opening or checking it)."""
    if store_url:
        return _shared_store(store_url)['exists'](store_url)
    return os.path.exists(_embedded_path(ca_path))


def store_name(store_url: str) -> str:
    """A shared store's URL without its password, for messages (does not connect)."""
    return _shared_store(store_url)['name'](store_url)
