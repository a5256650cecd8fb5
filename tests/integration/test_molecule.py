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
Every scenario gets its own ephemeral folder (MOLECULE_EPHEMERAL_DIRECTORY), so the scenarios that start from the
snapshot share nothing and run at the same time once the default scenario has finished (as test_targets.py runs its
targets): much of a scenario's time is one host at a time (the CA host's steps, ansible-playbook and molecule
starting up), which leaves a core free for the others.
"""

from __future__ import annotations

import concurrent.futures
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


def _run_scenario(scenario, base, collections_path, snapshot, after=None):
    """``molecule test -s SCENARIO`` in its own ephemeral folder; with ``after`` (the default scenario's future), only
    once that run has ended, whatever its outcome (without a snapshot the scenario issues itself)."""
    if after is not None:
        try:
            after.result()
        except Exception:  # noqa: BLE001 - the default scenario's own test reports its failure
            pass
    ephemeral = base / 'ephemeral'
    ephemeral.mkdir()
    started = time.monotonic()
    run = subprocess.run([str(MOLECULE), 'test', '-s', scenario], cwd=EXTENSIONS,
                         env=molecule_env(collections_path, ephemeral, snapshot),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT, check=False)
    log = base / 'molecule.log'
    log.write_text(run.stdout)
    return run, time.monotonic() - started, log


@pytest.fixture(scope='module')
def scenario_runs(request, tmp_path_factory, collections_path, snapshot):
    """Start the selected scenarios: the default one first, every other one as soon as it has ended."""
    if not MOLECULE.exists():
        pytest.fail('molecule is not installed in %s (pip install -r requirements-dev.txt)' % BIN)
    for tool in ('certutil', 'openssl'):
        if shutil.which(tool) is None:
            pytest.fail('%s is required by the molecule scenarios (apt: libnss3-tools, openssl)' % tool)
    selected = [scenario for scenario in SCENARIOS
                if any(item.nodeid.endswith('test_molecule_scenario[%s]' % scenario) for item in request.session.items)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(selected))) as executor:
        runs = {}
        if 'default' in selected:
            runs['default'] = executor.submit(_run_scenario, 'default', tmp_path_factory.mktemp('molecule-default'),
                                              collections_path, snapshot)
        for scenario in selected:
            if scenario != 'default':
                runs[scenario] = executor.submit(_run_scenario, scenario,
                                                 tmp_path_factory.mktemp('molecule-%s' % scenario),
                                                 collections_path, snapshot, runs.get('default'))
        yield runs


@pytest.mark.parametrize('scenario', SCENARIOS)
def test_molecule_scenario(scenario, scenario_runs):
    run, elapsed, log = scenario_runs[scenario].result()
    print('molecule test -s %s: rc %d in %.0f s (log %s)' % (scenario, run.returncode, elapsed, log))
    tail = run.stdout[-15000:]
    assert run.returncode == 0, 'molecule test -s %s exited %d:\n%s' % (scenario, run.returncode, tail)
