# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The molecule scenarios of extensions/molecule: a simulated fleet of ten local hosts and a CA host, no containers.

Each scenario runs as ``molecule test -s NAME`` from extensions/ and must exit 0; its own verify playbook checks the
end state from the CA store, the CRL and the NSS databases (see extensions/molecule/shared/verify.yml):

- ``default``: first issue, idempotence (a second run changes nothing, CRL included), check mode, verify;
- ``renew``: renewal of every identity (forced), check mode first, verify;
- ``renew_failures``: a forced renewal that fails on two hosts whose Firefox databases refuse the import (checked
  in between: old certificates valid and installed there), then a normal renewal that finishes them without
  issuing again, idempotence, check mode, verify;
- ``revoke``: certfleet.pki.revoke of an identity carried by two hosts, idempotence, check mode, verify.

Speed: the default scenario leaves its issued fleet in a snapshot folder (CERTFLEET_MOLECULE_SNAPSHOT) and the
other scenarios start from it instead of issuing again. Each scenario still works alone (it then issues itself).
Every scenario gets its own ephemeral folder below pytest's tmp_path (MOLECULE_EPHEMERAL_DIRECTORY).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from integration_support import BIN, ROOT

EXTENSIONS = ROOT / 'extensions'
SCENARIOS = ['default', 'renew', 'renew_failures', 'revoke']
TIMEOUT = 1800
MOLECULE = BIN / 'molecule'


@pytest.fixture(scope='module')
def snapshot(tmp_path_factory):
    """Where the default scenario leaves the issued fleet for the others."""
    return tmp_path_factory.mktemp('molecule-snapshot')


def molecule_env(collections_path, ephemeral, snapshot) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(('ANSIBLE_', 'MOLECULE_'))}
    env.update({
        'PATH': '%s%s%s' % (BIN, os.pathsep, env.get('PATH', '')),
        'ANSIBLE_COLLECTIONS_PATH': str(collections_path),
        'MOLECULE_EPHEMERAL_DIRECTORY': str(ephemeral),
        'CERTFLEET_MOLECULE_SNAPSHOT': str(snapshot),
        'NO_COLOR': '1',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'PY_COLORS': '0',
    })
    return env


@pytest.mark.parametrize('scenario', SCENARIOS)
def test_molecule_scenario(scenario, tmp_path, collections_path, snapshot):
    if not MOLECULE.exists():
        pytest.fail('molecule is not installed in %s (pip install -r requirements-dev.txt)' % BIN)
    for tool in ('certutil', 'openssl'):
        if shutil.which(tool) is None:
            pytest.fail('%s is required by the molecule scenarios (apt: libnss3-tools, openssl)' % tool)
    ephemeral = tmp_path / 'ephemeral'
    ephemeral.mkdir()
    started = time.monotonic()
    run = subprocess.run([str(MOLECULE), 'test', '-s', scenario], cwd=EXTENSIONS,
                         env=molecule_env(collections_path, ephemeral, snapshot),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT, check=False)
    (tmp_path / 'molecule.log').write_text(run.stdout)
    elapsed = time.monotonic() - started
    log = tmp_path / 'molecule.log'
    print('molecule test -s %s: rc %d in %.0f s (log %s)' % (scenario, run.returncode, elapsed, log))
    tail = run.stdout[-15000:]
    assert run.returncode == 0, 'molecule test -s %s exited %d:\n%s' % (scenario, run.returncode, tail)
