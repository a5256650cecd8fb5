# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private folders and atomic file writes (private module_utils)."""

from __future__ import annotations

import os
import stat
import tempfile

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

PRIVATE_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600


def ensure_private_dir(path: str) -> bool:
    """Create ``path`` (and missing parents' last level only) with mode 0700. Returns True when created."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError('folder %s does not exist' % parent)
    try:
        os.mkdir(path, PRIVATE_DIR_MODE)
        created = True
    except FileExistsError:
        if not os.path.isdir(path):
            raise InputError('%s exists and is not a folder' % path)
        created = False
    if stat.S_IMODE(os.stat(path).st_mode) != PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)
    return created


def check_dest_folder(dest: str, field: str = 'dest') -> None:
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise InputError('the folder %s does not exist' % folder, field=field)
    if os.path.isdir(dest):
        raise InputError('%s is a folder, expected a file path' % dest, field=field)


def atomic_write(path: str, data: bytes, mode: int = SECRET_FILE_MODE) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, created with ``mode``.

    Readers see the old file or the new one, never a half-written one; the temporary file is never readable by
    others, even for an instant, because it is created 0600 before any byte is written.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
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
