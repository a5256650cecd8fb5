# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that cannot be written: an immutable folder, a full disk, a name that is too long.

Every write of the CA-side modules fails with a WriteError that names the module option (``field``), the path and
the operating system's reason, and leaves no temporary file behind. Root ignores file modes, so the tests use what
stops root too: ``chattr +i`` (skipped where the file system does not support it), ENAMETOOLONG, and a
monkeypatched fsync that reports ENOSPC.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BulkRequest, write_inventory
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
from ansible_collections.certfleet.pki.plugins.module_utils.common import files
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, WriteError
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    atomic_write, ensure_private_dir, writing,
)

LONG = 'x' * 300  # one path component longer than NAME_MAX (255)


def _can_chattr(folder) -> bool:
    if os.geteuid() != 0 or shutil.which('chattr') is None:
        return False
    probe = folder / '.chattr-probe'
    probe.mkdir()
    try:
        return subprocess.run(['chattr', '+i', str(probe)], capture_output=True, check=False).returncode == 0
    finally:
        subprocess.run(['chattr', '-i', str(probe)], capture_output=True, check=False)
        probe.rmdir()


@contextlib.contextmanager
def immutable(folder):
    """``folder`` refuses new entries, even to root, for the duration of the block."""
    if not _can_chattr(folder.parent):
        pytest.skip('chattr +i is not available here (needs root and an ext4/xfs/btrfs-like file system)')
    subprocess.run(['chattr', '+i', str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(['chattr', '-i', str(folder)], check=True)


def _assert_write_error(err, field: str, path: str) -> None:
    assert isinstance(err, WriteError) and isinstance(err, CertfleetError)
    assert err.code == 'write_failed'
    assert err.field == field
    assert err.path == path
    assert err.reason
    assert err.message.startswith('%s: ' % field)
    assert path in err.message and err.reason in err.message


def _leftovers(folder) -> list:
    return sorted(name for name in os.listdir(folder) if name.endswith('.tmp') or '.partial' in name)


# -- the writer itself ------------------------------------------------------------------------------------------
def test_name_too_long(tmp_path):
    path = str(tmp_path / LONG)
    with pytest.raises(WriteError) as err:
        atomic_write(path, b'data', field='crl_dest')
    _assert_write_error(err.value, 'crl_dest', path)
    assert 'too long' in err.value.message
    assert os.listdir(tmp_path) == []


def test_disk_full_removes_the_temporary_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = str(tmp_path / 'out.p12')
    atomic_write(path, b'old')

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, 'fsync', full)
    with pytest.raises(WriteError) as err:
        atomic_write(path, b'new' * 1000, field='dest')
    _assert_write_error(err.value, 'dest', path)
    assert 'No space left on device' in err.value.message
    assert os.listdir(tmp_path) == ['out.p12']
    with open(path, 'rb') as handle:
        assert handle.read() == b'old'


def test_immutable_folder(tmp_path):
    folder = tmp_path / 'locked'
    folder.mkdir()
    path = str(folder / 'inventory.csv')
    with immutable(folder):
        with pytest.raises(WriteError) as err:
            atomic_write(path, b'data', field='dest')
    _assert_write_error(err.value, 'dest', path)
    assert os.listdir(folder) == []


def test_other_failures_still_remove_the_temporary_file(tmp_path):
    with pytest.raises(TypeError):
        atomic_write(str(tmp_path / 'f'), 'not bytes')  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_private_dir_in_an_immutable_parent(tmp_path):
    parent = tmp_path / 'parent'
    parent.mkdir()
    with immutable(parent):
        with pytest.raises(WriteError) as err:
            ensure_private_dir(str(parent / 'ca'), 'ca_path')
    _assert_write_error(err.value, 'ca_path', str(parent / 'ca'))


def test_writing_context_names_the_field(tmp_path):
    with pytest.raises(WriteError) as err:
        with writing(str(tmp_path / 'x'), 'output_dir'):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / 'x'))
    _assert_write_error(err.value, 'output_dir', str(tmp_path / 'x'))


# -- every CA-side writer ---------------------------------------------------------------------------------------
def test_export_dest(ca, tmp_path):
    ca.ensure('alice')
    before = ca.audit()
    dest = str(tmp_path / LONG)
    with pytest.raises(WriteError) as err:
        ca.export(identity='alice', dest=dest, password='export password 1')
    _assert_write_error(err.value, 'dest', dest)
    assert ca.audit() == before  # no "export written" entry for a file that was not written
    assert _leftovers(tmp_path) == []


def test_export_dest_in_an_immutable_folder(ca, tmp_path):
    ca.ensure('alice')
    folder = tmp_path / 'exports'
    folder.mkdir()
    dest = str(folder / 'alice.p12')
    with immutable(folder):
        with pytest.raises(WriteError) as err:
            ca.export(identity='alice', dest=dest, password='export password 1')
    _assert_write_error(err.value, 'dest', dest)
    assert os.listdir(folder) == []


def test_crl_dest(ca, tmp_path):
    dest = str(tmp_path / (LONG + '.pem'))
    with pytest.raises(WriteError) as err:
        ca.publish_crl(dest=dest)
    _assert_write_error(err.value, 'dest', dest)
    assert _leftovers(tmp_path) == [] and _leftovers(ca.path) == []


def test_crl_over_an_immutable_published_crl(ca, tmp_path):
    ca.ensure('alice')
    ca.publish_crl()
    ca.revoke(identity='alice', which='current')
    before = ca.snapshot()
    with immutable(tmp_path / 'ca' / 'crl.der'):
        with pytest.raises(WriteError) as err:
            ca.publish_crl()
    _assert_write_error(err.value, 'ca_path', ca.file('crl.der'))
    assert _leftovers(ca.path) == []
    assert ca.snapshot() == before  # the CRL number was not taken


def test_opening_a_ca_in_an_immutable_folder(ca, tmp_path):
    with immutable(tmp_path / 'ca'):
        with pytest.raises(CertfleetError) as err:
            ca.query()
    assert err.value.field == 'ca_path' and err.value.code == 'store_unwritable'
    assert ca.state_path in err.value.message and 'writable' in err.value.message


def test_inventory_dest(ca, tmp_path):
    ca.ensure('alice')
    dest = str(tmp_path / (LONG + '.csv'))
    with pytest.raises(WriteError) as err:
        with ca.open(unlock=False) as opened:
            write_inventory(opened, dest=dest)
    _assert_write_error(err.value, 'dest', dest)


def test_ca_in_an_immutable_parent(tmp_path, clock):
    parent = tmp_path / 'cas'
    parent.mkdir()
    with immutable(parent):
        with pytest.raises(WriteError) as err:
            ensure_ca(ca_path=str(parent / 'ca'), ca_passphrase='a passphrase 123', subject={'CN': 'X'},
                      key_type='ec-p256', clock=clock)
    assert err.value.field == 'ca_path' and err.value.code == 'write_failed'
    assert str(parent / 'ca') in err.value.message


def test_bulk_output_in_an_immutable_folder(ca, tmp_path):
    src = tmp_path / 'requests.tsv'
    src.write_text('action\tidentity\tCN\nissue\tcarol\tCarol\n', encoding='utf-8')
    out = tmp_path / 'out'
    out.mkdir(mode=0o700)
    before = ca.records()
    with immutable(out):
        with pytest.raises(WriteError) as err:
            with ca.open() as opened:
                BulkRequest(opened, src=str(src), dest=str(out), workers=1,
                            defaults={'key_type': 'ec-p256'}).execute()
    assert err.value.field == 'dest' and err.value.code == 'write_failed'
    assert str(out) in err.value.message
    assert os.listdir(out) == []
    assert ca.records() == before  # nothing issued when the outputs cannot be written
