# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    CertfleetError, InputError, PolicyError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    atomic_write, check_dest_folder, ensure_private_dir, file_mode, read_bytes,
)


def test_atomic_write_creates_with_mode_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'secret.bin'
    atomic_write(str(target), b'first')
    assert target.read_bytes() == b'first'
    assert file_mode(str(target)) == 0o600
    atomic_write(str(target), b'second', 0o644)
    assert target.read_bytes() == b'second'
    assert file_mode(str(target)) == 0o644
    assert sorted(os.listdir(tmp_path)) == ['secret.bin']


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / 'data'
    atomic_write(str(target), b'old')
    with pytest.raises(TypeError):
        atomic_write(str(target), 'not bytes')  # type: ignore[arg-type]
    assert target.read_bytes() == b'old'
    assert sorted(os.listdir(tmp_path)) == ['data']


def test_atomic_write_is_private_even_under_a_lax_umask(tmp_path):
    old = os.umask(0)
    try:
        atomic_write(str(tmp_path / 'k'), b'x')
    finally:
        os.umask(old)
    assert file_mode(str(tmp_path / 'k')) == 0o600


def test_ensure_private_dir(tmp_path):
    path = str(tmp_path / 'ca')
    assert ensure_private_dir(path) is True
    assert file_mode(path) == 0o700
    os.chmod(path, 0o755)
    assert ensure_private_dir(path) is False
    assert file_mode(path) == 0o700


def test_ensure_private_dir_refuses_missing_parent_and_files(tmp_path):
    with pytest.raises(InputError, match='does not exist'):
        ensure_private_dir(str(tmp_path / 'missing' / 'ca'))
    assert not (tmp_path / 'missing').exists()
    (tmp_path / 'file').write_bytes(b'')
    with pytest.raises(InputError, match='not a folder'):
        ensure_private_dir(str(tmp_path / 'file'))


def test_check_dest_folder(tmp_path):
    check_dest_folder(str(tmp_path / 'out.p12'))
    with pytest.raises(InputError) as err:
        check_dest_folder(str(tmp_path / 'nope' / 'out.p12'))
    assert err.value.field == 'dest'
    assert str(tmp_path / 'nope') in str(err.value)
    with pytest.raises(InputError, match='is a folder'):
        check_dest_folder(str(tmp_path))


def test_read_bytes_and_file_mode_of_missing_file(tmp_path):
    assert read_bytes(str(tmp_path / 'none')) is None
    assert file_mode(str(tmp_path / 'none')) is None


def test_error_message_names_the_field_once():
    assert InputError('must not be empty', 'subject.CN').message == 'subject.CN: must not be empty'
    assert InputError('subject.CN must not be empty', 'subject.CN').message == 'subject.CN must not be empty'
    assert InputError('plain').message == 'plain'
    error = PolicyError('too long', 'valid_days')
    assert isinstance(error, InputError) and isinstance(error, CertfleetError)
    assert error.field == 'valid_days'
