# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Working in other people's homes as they would (private module_utils).

Root writing inside a user's home must not follow what that user planted: a symlink from ``user.js`` to
``/etc/shadow``, an ``nssdb`` folder that points at ``/root/.ssh``, a ``profiles.ini`` naming ``/etc``. Checking
each path before using it is racy (the user can swap it between the check and the write). Instead the work on such
a path runs in a child process with the user's uid, gid and groups, so the kernel applies that user's rights to
every path it follows: a planted link leads only where the user could write anyway, and root's files stay out of
reach. Inputs only root may read (a PKCS#12 in root's private transfer folder) travel to the child as content.
"""

from __future__ import annotations

import os
import pickle
import platform
import stat
import tempfile
from dataclasses import dataclass

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError

_MAX_LINKS = 40


class UnsafePathError(CertfleetError):
    """A path in someone's home cannot be used safely: a planted link, or a place its owner may not write."""

    code = 'unsafe_path'


@dataclass(frozen=True)
class Owner:
    """The user whose rights apply to a path."""

    uid: int
    gid: int
    name: str
    home: str | None = None

    def __str__(self) -> str:
        return self.name


def owner_by_uid(uid: int, gid: int | None = None) -> Owner:
    import pwd
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        # A home owned by a uid without a passwd entry (a removed account, an image built elsewhere).
        return Owner(uid=uid, gid=uid if gid is None else gid, name=str(uid))
    return Owner(uid=entry.pw_uid, gid=entry.pw_gid, name=entry.pw_name, home=entry.pw_dir)


def owner_by_name(name, field: str = 'owner') -> Owner:
    """A user name, or a numeric uid given as text."""
    import pwd
    text = str(name).strip()
    if text.isdigit():
        return owner_by_uid(int(text))
    try:
        entry = pwd.getpwnam(text)
    except KeyError:
        raise UnsafePathError('user %r does not exist on %s' % (text, platform.node()), field)
    return Owner(uid=entry.pw_uid, gid=entry.pw_gid, name=entry.pw_name, home=entry.pw_dir)


def path_controller(path: str) -> Owner | None:
    """The user who controls ``path``: the owner of the first component, walking down from ``/``, that root does
    not own. ``None`` when root owns every existing component (nobody else could have planted anything there).

    Root's own symlinks are followed (only root could have made them); a link owned by someone else ends the walk
    at its owner. A root folder that others may write to without the sticky bit is refused: anyone could plant
    there.
    """
    pending = [part for part in os.path.abspath(path).split('/') if part]
    current = '/'
    links = 0
    while pending:
        part = pending.pop(0)
        candidate = os.path.join(current, part)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UnsafePathError('%s cannot be examined (%s)' % (candidate, exc.strerror or exc))
        if info.st_uid != 0:
            return owner_by_uid(info.st_uid, info.st_gid)
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise UnsafePathError('%s: too many levels of symbolic links' % path)
            target = os.readlink(candidate)
            pending = [p for p in target.split('/') if p] + pending
            current = '/' if target.startswith('/') else current
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise UnsafePathError('%s is a root folder that others may write to (mode %o): anything below it could '
                                  'have been planted' % (candidate, stat.S_IMODE(info.st_mode)))
        current = candidate
    return None


def acting_owner(path: str, owner=None, field: str = 'owner') -> Owner | None:
    """Whose rights to use for ``path``: the given ``owner`` (name or uid), else the path's controller."""
    if owner not in (None, ''):
        return owner_by_name(owner, field)
    return path_controller(path)


def needs_switch(owner: Owner | None) -> bool:
    return owner is not None and os.geteuid() == 0 and owner.uid != 0


def run_as(owner: Owner | None, operation, contents: dict | None = None, **kwargs):
    """``operation(**kwargs)`` with ``owner``'s rights when this process is root and ``owner`` is someone else.

    ``contents`` maps keyword names to bytes that the owner may not be able to read from where they are: each is
    written to a 0600 file in a private folder of the owner's and passed to ``operation`` as that file's path.
    Errors of certfleet.pki raised by ``operation`` are raised here as they were; any other failure becomes an
    UnsafePathError naming the user.
    """
    if not needs_switch(owner):
        return _with_contents(operation, contents, kwargs)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        status = 0
        try:
            _become(owner)
            outcome = ('ok', _with_contents(operation, contents, kwargs))
        except CertfleetError as exc:
            outcome, status = ('error', exc), 1
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
            outcome, status = ('error', UnsafePathError('as user %s: %s' % (owner, exc))), 1
        try:
            payload = pickle.dumps(outcome)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or error
            payload, status = pickle.dumps(('error', UnsafePathError('as user %s: %s' % (owner, exc)))), 1
        with os.fdopen(write_end, 'wb') as pipe:
            pipe.write(payload)
        os._exit(status)  # no atexit handlers: the parent's temporary folders are the parent's
    os.close(write_end)
    with os.fdopen(read_end, 'rb') as pipe:
        payload = pipe.read()
    _pid, wait_status = os.waitpid(pid, 0)
    if not payload:
        raise UnsafePathError('the work as user %s ended without a result (wait status %d)' % (owner, wait_status))
    kind, value = pickle.loads(payload)  # our own child's bytes, written just now
    if kind == 'error':
        raise value
    return value


def as_owner_of(path: str, operation, *, owner=None, files=(), **kwargs):
    """``operation(**kwargs)`` with the rights of whoever controls ``path`` (or of ``owner``, name or uid).

    ``files`` names keyword arguments holding paths that only this process may be able to read (the PKCS#12 in
    root's transfer folder, a CA certificate): when the rights switch, each is read here and handed over as a
    private copy. A value holding PEM text is passed as it is.
    """
    user = acting_owner(path, owner)
    if not needs_switch(user):
        return operation(**kwargs)
    contents = {}
    for field in files:
        value = kwargs.get(field)
        if value in (None, '') or '-----BEGIN' in str(value):
            continue
        try:
            with open(os.path.expanduser(str(value)), 'rb') as handle:
                contents[field] = handle.read()
        except FileNotFoundError:
            raise InputError('%s does not exist' % value, field)
        except OSError as exc:
            raise InputError('%s cannot be read (%s)' % (value, exc.strerror or exc), field)
    return run_as(user, operation, contents=contents, **kwargs)


def _become(owner: Owner) -> None:
    if owner.name != str(owner.uid):
        groups = os.getgrouplist(owner.name, owner.gid)
    else:
        groups = [owner.gid]
    os.setgroups(groups)
    os.setgid(owner.gid)
    os.setuid(owner.uid)
    os.umask(0o077)
    os.chdir('/')
    # Root's temporary folders (Ansible's remote tmp) are not the user's: let tempfile choose one they may use.
    for name in ('TMPDIR', 'TEMP', 'TMP'):
        os.environ.pop(name, None)
    tempfile.tempdir = None
    if owner.home:
        os.environ['HOME'] = owner.home


def _with_contents(operation, contents, kwargs):
    if not contents:
        return operation(**kwargs)
    with tempfile.TemporaryDirectory(prefix='certfleet-') as folder:  # 0700, its creator's
        call = dict(kwargs)
        for name, data in contents.items():
            path = os.path.join(folder, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
            call[name] = path
        return operation(**call)


def check_writable_as_self(path: str, what: str, field: str) -> None:
    """Refuse, with a message naming host, user and path, when the current user may not create or change ``path``.

    Runs inside :func:`run_as` (so it tests the home owner's rights); a clear refusal beats an NSS tool's error.
    """
    probe = path
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.access(probe, os.W_OK, follow_symlinks=True):
        import pwd
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = str(os.geteuid())
        real = os.path.realpath(probe)
        where = probe if real == probe else '%s (which leads to %s)' % (probe, real)
        raise UnsafePathError('on %s, user %s may not write %s: refusing to write %s there'
                              % (platform.node(), user, where, what), field)


def refuse_symlink(path: str, what: str, field: str) -> None:
    """A file certfleet writes in a home is never a symlink: refuse one, naming host and path."""
    if os.path.islink(path):
        raise UnsafePathError('on %s, %s %s is a symbolic link (to %s); refusing to follow it'
                              % (platform.node(), what, path, os.readlink(path)), field)
