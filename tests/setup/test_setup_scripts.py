# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The newcomer's path: the system packages step, its place before the virtualenv, and the test summary.

install-system-packages.sh runs with stand-ins for ``dpkg-query``, ``id`` and ``apt-get`` first on PATH, so a
machine without python3-venv (and without root) is simulated without touching this machine's packages.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'tests' / 'setup' / 'install-system-packages.sh'
SUMMARY = ROOT / 'tests' / 'setup' / 'summary.py'

FAKE_DPKG_QUERY = '''#!/bin/sh
# dpkg-query -W -f=FORMAT PACKAGE: installed unless PACKAGE is listed in $FAKE_MISSING
for package in "$@"; do :; done
case " $FAKE_MISSING " in
  *" $package "*) echo "dpkg-query: no packages found matching $package" >&2; exit 1 ;;
esac
printf 'install ok installed'
'''
FAKE_ID = '#!/bin/sh\necho "$FAKE_UID"\n'
FAKE_APT_GET = '#!/bin/sh\necho "$*" >> "$FAKE_APT_LOG"\n'


Run = tuple[subprocess.CompletedProcess, list[str]]


def run_script(tmp_path: pathlib.Path, which: str, uid: int, missing: list[str]) -> Run:
    fake = tmp_path / 'bin'
    fake.mkdir(exist_ok=True)
    for name, text in (('dpkg-query', FAKE_DPKG_QUERY), ('id', FAKE_ID), ('apt-get', FAKE_APT_GET)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    log = tmp_path / 'apt.log'
    env = dict(os.environ, PATH='%s:/usr/bin:/bin' % fake, FAKE_UID=str(uid), FAKE_MISSING=' '.join(missing),
               FAKE_APT_LOG=str(log))
    completed = subprocess.run(['bash', str(SCRIPT), which], env=env, capture_output=True, text=True, check=False)
    return completed, (log.read_text().splitlines() if log.exists() else [])


@pytest.mark.parametrize('which', ['venv', 'demo', 'test'])
def test_python3_venv_missing_as_root_is_installed(tmp_path, which):
    completed, apt = run_script(tmp_path, which, 0, ['python3-venv'])
    assert completed.returncode == 0, completed.stderr
    assert apt[0] == 'update -qq'
    assert apt[1].startswith('install ') and apt[1].split()[-1] == 'python3-venv'


@pytest.mark.parametrize('which', ['venv', 'demo', 'test'])
def test_python3_venv_missing_without_root_stops_and_says_so(tmp_path, which):
    completed, apt = run_script(tmp_path, which, 1000, ['python3-venv'])
    assert completed.returncode == 1
    assert apt == []
    assert 'missing system packages: python3-venv' in completed.stderr
    assert 'apt-get install --no-install-recommends python3-venv' in completed.stderr
    assert 'python3 -m venv' in completed.stderr


def test_everything_present_installs_nothing(tmp_path):
    completed, apt = run_script(tmp_path, 'test', 0, [])
    assert (completed.returncode, apt, completed.stdout, completed.stderr) == (0, [], '', '')


def test_browser_packages_are_installed_as_root(tmp_path):
    completed, apt = run_script(tmp_path, 'test', 0, ['chromium', 'nginx-light'])
    assert completed.returncode == 0, completed.stderr
    assert apt[1].split()[-2:] == ['nginx-light', 'chromium']


def test_browser_packages_without_root_only_announce_the_skip(tmp_path):
    completed, apt = run_script(tmp_path, 'test', 1000, ['chromium', 'firefox-esr'])
    assert completed.returncode == 0
    assert apt == []
    assert 'test_browsers.py) will be skipped' in completed.stderr
    assert 'firefox-esr chromium' in completed.stderr


@pytest.mark.skipif(shutil.which('make') is None, reason='needs make')
@pytest.mark.parametrize('goal, packages', [('demo', 'demo'), ('test', 'test'), ('unit', 'venv'), ('build', 'venv')])
def test_virtualenv_is_created_after_the_system_packages_step(tmp_path, goal, packages):
    # A virtualenv that does not exist yet: `make -n` prints what a fresh machine runs, in order.
    venv = os.path.relpath(tmp_path / 'venv', ROOT)
    env = {key: value for key, value in os.environ.items() if not key.startswith('MAKE')}
    completed = subprocess.run(['make', '-n', 'VENV=%s' % venv, goal], cwd=ROOT, env=env, capture_output=True,
                               text=True, check=False, timeout=120)
    lines = completed.stdout.splitlines()
    step = 'bash tests/setup/install-system-packages.sh %s' % packages
    assert step in lines, completed.stdout + completed.stderr
    create = [index for index, line in enumerate(lines) if line.endswith('-m venv %s' % venv)]
    assert create and lines.index(step) < create[0], completed.stdout


def test_summary_counts_skips_and_slowest(tmp_path, capsys):
    reports = tmp_path / 'reports'
    passing = [sys.executable, '-c', 'pass']
    failing = [sys.executable, '-c', 'raise SystemExit(3)']
    subprocess.run([sys.executable, str(SUMMARY), 'run', str(reports), 'unit', '--'] + passing, check=True)
    assert subprocess.run([sys.executable, str(SUMMARY), 'run', str(reports), 'sanity', '--'] + failing,
                          check=False).returncode == 3
    assert json.loads((reports / 'sanity.json').read_text())['returncode'] == 3
    (reports / 'unit.xml').write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.unit.test_a" name="test_fast" time="0.5"/>'
        '<testcase classname="tests.unit.test_a" name="test_slow" time="12.25"/>'
        '<testcase classname="tests.unit.test_a" name="test_off" time="0.0">'
        '<skipped type="pytest.skip" message="needs certutil">reason</skipped></testcase>'
        '<testcase classname="tests.unit.test_a" name="test_bad" time="1.0"><failure message="x"/></testcase>'
        '</testsuite></testsuites>')
    completed = subprocess.run([sys.executable, str(SUMMARY), 'print', str(reports)], capture_output=True,
                               text=True, check=True)
    lines = completed.stdout.splitlines()
    unit = next(line for line in lines if line.startswith('unit '))
    assert unit.split()[1:4] == ['2', '1', '1']
    assert next(line for line in lines if line.startswith('sanity ')).endswith('FAILED (exit 3)')
    assert '  [unit] tests.unit.test_a::test_off: needs certutil' in lines
    slowest = lines[lines.index('slowest tests (setup, call and teardown):') + 1]
    assert slowest.strip().startswith('12.2') and slowest.endswith('test_slow')


def test_postgresql_server_is_installed_as_root_and_announced_otherwise(tmp_path):
    completed, apt = run_script(tmp_path, 'test', 0, ['postgresql'])
    assert completed.returncode == 0, completed.stderr
    assert apt[1].split()[-1] == 'postgresql'
    (tmp_path / 'user').mkdir()
    completed, apt = run_script(tmp_path / 'user', 'test', 1000, ['postgresql'])
    assert completed.returncode == 0 and apt == []
    assert 'PostgreSQL store tests skip themselves' in completed.stderr
