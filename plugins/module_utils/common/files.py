# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private folders and atomic file writes (private module_utils)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError, WriteError

PRIVATE_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600


_HINTS = {
    errno.EPERM: 'is the file or its folder immutable? see lsattr',
    errno.EACCES: 'check the owner and mode of the folder',
    errno.ENOSPC: 'free some space on that file system',
    errno.EDQUOT: 'the disk quota is exhausted',
    errno.ENAMETOOLONG: 'shorten the path',
}


def write_error(path: str, field: str | None, exc: OSError, action: str = 'write') -> WriteError:
    """The one wording for a file that cannot be written: which option, which file, and the system's reason."""
    reason = exc.strerror or str(exc)
    hint = _HINTS.get(exc.errno)
    return WriteError('cannot %s %s: %s%s' % (action, path, reason, ' (%s)' % hint if hint else ''), field,
                      path=path, reason=reason)


@contextlib.contextmanager
def writing(path: str, field: str | None, action: str = 'write'):
    """Turn an OSError of the block (mkdir, rename, chmod, unlink...) into a WriteError naming ``path``."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(getattr(exc, 'filename', None) or path, field, exc, action) from exc


def ensure_private_dir(path: str, field: str | None = None) -> bool:
    """Create ``path`` (and missing parents' last level only) with mode 0700. Returns True when created."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError('folder %s does not exist' % parent, field)
    with writing(path, field, 'create the folder'):
        try:
            os.mkdir(path, PRIVATE_DIR_MODE)
            created = True
        except FileExistsError:
            if not os.path.isdir(path):
                raise InputError('%s exists and is not a folder' % path, field)
            created = False
        if stat.S_IMODE(os.stat(path).st_mode) != PRIVATE_DIR_MODE:
            os.chmod(path, PRIVATE_DIR_MODE)
    return created


def check_dest_folder(dest: str, field: str = 'dest') -> None:
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise InputError('the folder %s does not exist' % folder, field=field)
    try:
        is_dir = stat.S_ISDIR(os.stat(dest).st_mode)
    except FileNotFoundError:
        is_dir = False
    except OSError as exc:  # a name too long, a path through a file...: say so before doing any work
        raise write_error(dest, field, exc) from exc
    if is_dir:
        raise InputError('%s is a folder, expected a file path' % dest, field=field)


def atomic_write(path: str, data: bytes, mode: int = SECRET_FILE_MODE, field: str | None = 'dest') -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, created with ``mode``.

    Readers see the old file or the new one, never a half-written one; the temporary file is never readable by
    others, even for an instant, because it is created 0600 before any byte is written. Any failure removes the
    temporary file; an OSError (read-only or immutable folder, full disk, name too long...) becomes a WriteError
    that names ``field`` (the module option that chose the path), the path and the reason.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path)[:64], suffix='.tmp', dir=folder)
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise write_error(path, field, exc) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def file_mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def read_bytes(path: str) -> bytes | None:
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _syncfs():
    """libc's syncfs(2) (Linux), or None."""
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library('c') or None, use_errno=True)
        return libc.syncfs
    except (AttributeError, ImportError, OSError):
        return None


def fsync_folder(folder: str) -> None:
    """Make the folder's entries (names created, renamed, removed) durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_folder_files(folder: str) -> None:
    """Make every file written in ``folder`` (not in its subfolders) durable with one flush, then the folder itself.

    Writing many files and calling fsync on each waits for the disk once per file; this writes them all first and
    then asks once: syncfs(2) on the folder's file system where the C library has it, else one fsync pass over the
    files (the disk still catches up on all the writes together). Raises OSError when the data did not reach the disk.
    """
    syncfs = _syncfs()
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        if syncfs is None or syncfs(descriptor) != 0:
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False):
                    file_descriptor = os.open(entry.path, os.O_RDONLY)
                    try:
                        os.fsync(file_descriptor)
                    finally:
                        os.close(file_descriptor)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
