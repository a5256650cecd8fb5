# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the integration tests share: the collection link, the ansible-playbook runner, store and OpenSSL helpers."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest
import yaml

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


# -- what a target's play output proves --------------------------------------------------------------------------------
# The convention of tests/integration/targets: a task that is expected to fail carries ignore_errors and is followed
# directly by the assert that checks its failure, whose success_msg is REFUSAL_CHECKED + the failing task's name.

REFUSAL_CHECKED = 'Refusal checked: '
_RECAP = re.compile(r'^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+'
                    r'skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)', re.MULTILINE)
_HEADER = re.compile(r'^(?:TASK|RUNNING HANDLER) \[(.*)\] \**$|^PLAY (?:\[.*\] \**|RECAP \**)$')
_MSG = re.compile(r'^\s*"msg": (".*"),?$', re.MULTILINE)


def recap(output: str) -> dict:
    match = _RECAP.search(output)
    assert match, 'no PLAY RECAP for localhost in the output'
    names = ('ok', 'changed', 'unreachable', 'failed', 'skipped', 'rescued', 'ignored')
    return dict(zip(names, (int(value) for value in match.groups()), strict=True))


def task_outputs(stdout: str) -> list[tuple[str, str]]:
    """The play output of the default callback cut into (task name, what was printed under its header), in order."""
    tasks: list[tuple[str, list[str]]] = []
    for line in stdout.splitlines():
        header = _HEADER.match(line)
        if header:
            tasks.append((header.group(1) or '', []))
        elif tasks and not line.startswith('task path: '):  # -vvv names each task's file: not its output
            tasks[-1][1].append(line)
    return [(name, '\n'.join(lines)) for name, lines in tasks]


def passed_assert_message(text: str) -> str | None:
    """The success_msg of an assert that passed (printed as `ok: [localhost] => {... "msg": ...}`), else None."""
    if not text.lstrip().startswith('ok: [localhost] => {'):
        return None
    found = _MSG.search(text)
    return json.loads(found.group(1)) if found else None


def checked_refusals(stdout: str) -> tuple[int, list[str]]:
    """How many ignored failures the play had, and each one not followed directly by the passing assert checking it."""
    tasks = task_outputs(stdout)
    ignored, problems = 0, []
    for index, (name, text) in enumerate(tasks):
        if '...ignoring' not in text:
            continue
        ignored += 1
        following = tasks[index + 1] if index + 1 < len(tasks) else ('(end of play)', '')
        if passed_assert_message(following[1]) != REFUSAL_CHECKED + name:
            problems.append('the ignored failure of %r is not followed by an assert that passed with success_msg '
                            '%r (next: %r: %s)' % (name, REFUSAL_CHECKED + name, following[0],
                                                   following[1].strip()[:300]))
    return ignored, problems


def promised_refusals(tasks_file: pathlib.Path) -> int:
    """How many ignored failures a task file promises: each task with ignore_errors once, and a file that it
    includes (by a plain name, next to it) as often as the literal loop of the include has items."""
    def count(tasks: list) -> int:
        total = 0
        for task in tasks or []:
            total += sum(count(task.get(part)) for part in ('block', 'rescue', 'always'))
            if task.get('ignore_errors') is True:
                total += 1
            included = task.get('ansible.builtin.include_tasks', task.get('include_tasks'))
            if isinstance(included, str) and '{{' not in included:
                loop = task.get('loop', [None])
                assert isinstance(loop, list), '%s: the loop of %s must be a literal list' % (tasks_file, included)
                total += len(loop) * promised_refusals(tasks_file.parent / included)
        return total

    return count(yaml.safe_load(tasks_file.read_text()))


def assert_target_run(run: PlaybookRun, target: str) -> None:
    """The play of a target (setup_certfleet, then the target's tasks/main.yml) passed and proved its refusals."""
    assert run.returncode == 0, run.explain()
    counts = recap(run.stdout)
    assert counts['failed'] == 0 and counts['unreachable'] == 0, run.explain()
    # The target really ran its cases (a wrapper that includes nothing would also end with failed=0).
    assert counts['ok'] >= 20, run.explain()
    # Every ignored error is a refusal whose assert ran right after it and passed, and every bad case the task files
    # list was run: as many ignored errors as the recap counts, as the output shows checked, as the files promise.
    ignored, problems = checked_refusals(run.stdout)
    assert not problems, '\n'.join(problems) + '\n' + run.explain()
    promised = (promised_refusals(TARGETS / 'setup_certfleet' / 'tasks' / 'main.yml')
                + promised_refusals(TARGETS / target / 'tasks' / 'main.yml'))
    assert counts['ignored'] == ignored == promised, (
        'ignored errors: %d in the recap, %d checked in the output, %d promised by the task files\n%s'
        % (counts['ignored'], ignored, promised, run.explain()))
