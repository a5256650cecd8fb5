# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the integration tests share: the collection link, the ansible-playbook runner, store and OpenSSL helpers."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
INTEGRATION = pathlib.Path(__file__).resolve().parent
TARGETS = INTEGRATION / 'targets'
HELPER = TARGETS / 'setup_certfleet' / 'files' / 'certfleet_helper.py'
COLLECTIONS = ROOT / '.build' / 'collections'
BIN = pathlib.Path(sys.executable).parent
PLAYBOOK_TIMEOUT = 900


def ensure_collection_link() -> pathlib.Path:
    """.build/collections/ansible_collections/certfleet/pki -> the work tree (a symlink farm, created if missing)."""
    namespace = COLLECTIONS / 'ansible_collections' / 'certfleet'
    namespace.mkdir(parents=True, exist_ok=True)
    link = namespace / 'pki'
    if link.is_symlink() and pathlib.Path(os.readlink(link)).resolve() == ROOT:
        return COLLECTIONS
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(ROOT, target_is_directory=True)
    return COLLECTIONS


@dataclasses.dataclass
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str
    command: list

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def explain(self) -> str:
        tail = self.output[-12000:]
        return 'ansible-playbook exited %d: %s\n%s' % (self.returncode, ' '.join(self.command), tail)


class AnsibleRunner:
    """Runs ansible-playbook with a private inventory, temp folders and the collection on its path."""

    def __init__(self, base: pathlib.Path):
        self.base = base
        self.collections = ensure_collection_link()
        for name in ('remote-tmp', 'local-tmp', 'home'):
            (base / name).mkdir(parents=True, exist_ok=True)
        self.config = base / 'ansible.cfg'
        self.config.write_text('[defaults]\n')

    def inventory(self, hosts=('localhost',), name: str = 'inventory.ini') -> pathlib.Path:
        path = self.base / name
        lines = ['%s ansible_connection=local ansible_python_interpreter=%s' % (host, sys.executable)
                 for host in hosts]
        path.write_text('\n'.join(lines) + '\n')
        return path

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        for key in list(env):
            if key.startswith('ANSIBLE_'):
                del env[key]
        env.update({
            'ANSIBLE_CONFIG': str(self.config),
            'ANSIBLE_COLLECTIONS_PATH': str(self.collections),
            'ANSIBLE_REMOTE_TMP': str(self.base / 'remote-tmp'),
            'ANSIBLE_LOCAL_TEMP': str(self.base / 'local-tmp'),
            'ANSIBLE_NOCOLOR': '1',
            'ANSIBLE_FORCE_COLOR': '0',
            'ANSIBLE_RETRY_FILES_ENABLED': '0',
            'ANSIBLE_HOST_KEY_CHECKING': '0',
            'ANSIBLE_PIPELINING': '1',
            'ANSIBLE_DEPRECATION_WARNINGS': '0',
            'PATH': '%s%s%s' % (BIN, os.pathsep, env.get('PATH', '/usr/bin:/bin')),
        })
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def run(self, playbook: pathlib.Path, extra_vars: dict | None = None, inventory: pathlib.Path | None = None,
            args=(), env: dict | None = None, timeout: int = PLAYBOOK_TIMEOUT) -> PlaybookRun:
        inventory = inventory or self.inventory()
        command = [str(BIN / 'ansible-playbook'), '-i', str(inventory), str(playbook)]
        if extra_vars:
            vars_file = self.base / ('vars-%s.json' % playbook.stem)
            vars_file.write_text(json.dumps(extra_vars))
            command += ['-e', '@%s' % vars_file]
        command += list(args)
        completed = subprocess.run(command, cwd=self.base, env=self.env(**(env or {})), capture_output=True,
                                   text=True, timeout=timeout, check=False)
        return PlaybookRun(completed.returncode, completed.stdout, completed.stderr, command)

    def common_vars(self, work: pathlib.Path) -> dict:
        return {
            'certfleet_test_dir': str(work),
            'certfleet_helper': str(HELPER),
            'certfleet_pythonpath': str(self.collections),
        }


def sqlite_rows(db: pathlib.Path, sql: str, params=()) -> list:
    """Read the store the way an auditor would: plain sqlite3, read-only."""
    connection = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
    try:
        return list(connection.execute(sql, params))
    finally:
        connection.close()


def require_openssl() -> str:
    path = shutil.which('openssl')
    if path is None:
        pytest.fail('the openssl command line tool is required (tests/setup/install-system-packages.sh)')
    return path
