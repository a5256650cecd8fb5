# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a CA's certificate, key, chain and published CRL live (private module_utils).

Two homes with one interface (``read``, ``write_public``, ``write_secret``, ``lock``...):

- ``CADirectory`` (in ``authority``): the files of ``ca_path`` beside the embedded SQLite store;
- ``StoreHome``: the same objects as entries of a shared store (``ca_store``), so that any node holding the store's
  connection settings and the CA passphrase can run every CA module with no shared disk. The CA key is kept in the
  same encrypted PKCS#8 PEM as ``ca.key`` (the passphrase never reaches the store), the store's own access control
  on top.

``open_home`` picks one from the ``ca_path`` and ``ca_store`` options.
"""

from __future__ import annotations

import base64
import contextlib
import secrets

from ansible_collections.certfleet.pki.plugins.module_utils.ca.authority import CADirectory
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CAError, InputError, StoreError
from ansible_collections.certfleet.pki.plugins.module_utils.store.factory import open_store, store_name

# The meta key prefix under which a shared store keeps the CA's objects (base64 of the file's bytes).
OBJECT_PREFIX = 'ca_object:'
VERSION_PREFIX = 'ca_object_version:'
# What identifies the CA: written once at creation, read by every run. The CRL is read fresh each time.
CA_IDENTITY = ('ca.pem', 'chain.pem', 'ca.key')


def open_home(ca_path: str | None = None, store_url: str | None = None, prefetch_meta=(),
              prefetch_identity: str | None = None):
    """The CA's home: ``ca_path`` (files and the embedded store) or ``ca_store`` (a shared store), never both.

    ``prefetch_meta``: meta keys the caller reads right after loading the CA; a shared store reads them while
    opening. ``prefetch_identity``: the identity the caller decides on first (see ``factory.open_store``)."""
    if store_url and ca_path:
        raise InputError('give ca_path (the embedded store) or ca_store (a shared store), not both; to move an '
                         'embedded CA into a shared store use certfleet.pki.ca_migrate', 'ca_store')
    if store_url:
        return StoreHome(store_url, prefetch_meta, prefetch_identity)
    if not ca_path:
        raise InputError('is required (or ca_store, for a CA kept in a shared store)', 'ca_path')
    return CADirectory(ca_path)


class StoreHome:
    """The CA's objects kept in a shared store. Opens the store lazily; ``close()`` closes it."""

    field = 'ca_store'
    ca_path = None

    def __init__(self, store_url: str, prefetch_meta=(), prefetch_identity: str | None = None):
        self.store_url = store_url
        self._prefetch_meta = tuple(prefetch_meta)
        self._prefetch_identity = prefetch_identity
        self._store = None
        self._identity = None  # the CA's certificate, chain and key, read once (they never change)

    # -- naming -----------------------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The store's password-free name, for messages and results (named without connecting)."""
        return store_name(self.store_url)

    def file(self, name: str) -> str:
        return '%s in %s' % (name, self.path)

    # -- the store --------------------------------------------------------------------------------------------
    @property
    def store(self):
        if self._store is None:
            keys = [OBJECT_PREFIX + key for key in CA_IDENTITY] + list(self._prefetch_meta)
            self._store = open_store(store_url=self.store_url, prefetch_meta=keys,
                                     prefetch_identity=self._prefetch_identity)
        return self._store

    def attach(self, store) -> None:
        """Keep the CA's objects in ``store`` (a store being created) from now on."""
        self._store = store
        self._identity = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        self._identity = None

    # -- state ------------------------------------------------------------------------------------------------
    def is_initialised(self) -> bool:
        try:
            return self.read('ca.pem') is not None
        except StoreError as exc:
            if exc.code == 'store_missing':
                return False
            raise

    def require_initialised(self) -> None:
        if not self.is_initialised():
            raise CAError('the store %s holds no certfleet CA; create it with certfleet.pki.ca and ca_store, or '
                          'move an embedded CA there with certfleet.pki.ca_migrate' % self.path,
                          'ca_store', code='ca_missing')

    def check_parent(self) -> None:
        """Nothing to check: the store's database exists or the store says why not."""

    def prepare(self) -> bool:
        return False

    def creation_lock(self):
        """None here: the engine lets one process at a time create a state and never replaces one."""
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def lock(self):
        """Exclusive between processes on every node (CRL publication)."""
        with self.store.exclusive():
            yield

    # -- objects ----------------------------------------------------------------------------------------------
    def read(self, name: str) -> bytes | None:
        if name in CA_IDENTITY and self._identity is None:  # one statement for the objects every run reads
            values = self.store.get_meta_many([OBJECT_PREFIX + key for key in CA_IDENTITY])
            self._identity = {key: values[OBJECT_PREFIX + key] for key in CA_IDENTITY}
        if name in CA_IDENTITY:
            value = self._identity[name]
        else:
            with self.store.read():
                value = self.store.get_meta(OBJECT_PREFIX + name)
        return None if value is None else base64.b64decode(value)

    def write_public(self, name: str, data: bytes) -> None:
        self._identity = None
        with self.store.write():
            self.store.set_meta(OBJECT_PREFIX + name, base64.b64encode(data).decode('ascii'))
            self.store.set_meta(VERSION_PREFIX + name, secrets.token_hex(16))

    def object_identity(self, name: str) -> str | None:
        """A token written with each version of the object: tells a version from another without reading it."""
        with self.store.read():
            return self.store.get_meta(VERSION_PREFIX + name)

    write_secret = write_public  # the key is written encrypted; the store is the CA's, readable by its owner only

    def clear_before_create(self, names) -> None:
        """Nothing to clear: a store being created starts empty."""
