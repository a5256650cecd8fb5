# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the integration tests: the modules run through real ansible-playbook against localhost."""

from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'support'))  # helpers shared with unit tests
from integration_support import AnsibleRunner, ensure_collection_link


@pytest.fixture(scope='session')
def collections_path() -> pathlib.Path:
    """The symlink farm .build/collections/ansible_collections/certfleet/pki -> the work tree."""
    return ensure_collection_link()


@pytest.fixture
def ansible(tmp_path, collections_path) -> AnsibleRunner:
    return AnsibleRunner(tmp_path / 'ansible')


@pytest.fixture
def work_dir(tmp_path) -> pathlib.Path:
    work = tmp_path / 'work'
    work.mkdir()
    return work
