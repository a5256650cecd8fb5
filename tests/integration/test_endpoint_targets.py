# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The endpoint modules (NSS databases, Firefox profiles) through real Ansible against localhost.

Same shape as test_targets.py (which runs the CA modules of the action group): one playbook per target under
tests/integration/targets, run with the shared setup, asserting on results and on what certutil itself sees.
They need certutil and pk12util (apt: libnss3-tools) and openssl.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil

import pytest
from integration_support import TARGETS, AnsibleRunner, PlaybookRun, assert_target_run

ENDPOINT_TARGETS = ['nss_certificate', 'nss_certificate_info', 'firefox_profile_info', 'firefox_user_prefs',
                    'apple_profile', 'endpoint_reconcile']

WRAPPER = '''---
- name: certfleet.pki integration target {target}
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Shared setup
      ansible.builtin.include_tasks: {targets}/setup_certfleet/tasks/main.yml
    - name: Target {target}
      ansible.builtin.include_tasks: {targets}/{target}/tasks/main.yml
'''


def test_every_endpoint_module_has_a_target():
    for target in ENDPOINT_TARGETS:
        assert (TARGETS.parents[2] / 'plugins' / 'modules' / ('%s.py' % target)).is_file()
        assert (TARGETS / target / 'tasks' / 'main.yml').is_file()
        assert (TARGETS / target / 'aliases').is_file()


def _run_target(target: str, base) -> PlaybookRun:
    ansible = AnsibleRunner(base / 'ansible')
    work = base / 'work'
    work.mkdir()
    playbook = ansible.base / ('%s.yml' % target)
    playbook.write_text(WRAPPER.format(target=target, targets=TARGETS))
    return ansible.run(playbook, extra_vars=ansible.common_vars(work))


@pytest.fixture(scope='module')
def endpoint_runs(request, tmp_path_factory, collections_path):
    """Start the playbook of every selected target at once; each test waits for its own."""
    missing = [tool for tool in ('certutil', 'pk12util', 'openssl') if shutil.which(tool) is None]
    if missing:
        pytest.fail('%s required (tests/setup/install-system-packages.sh: libnss3-tools, openssl)' % ', '.join(missing))
    selected = [target for target in ENDPOINT_TARGETS
                if any(item.nodeid.endswith('test_endpoint_target[%s]' % target) for item in request.session.items)]
    workers = max(1, min(len(selected), (os.cpu_count() or 2) + 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        yield {target: executor.submit(_run_target, target, tmp_path_factory.mktemp('target-%s' % target))
               for target in selected}


@pytest.mark.parametrize('target', ENDPOINT_TARGETS)
def test_endpoint_target(target, endpoint_runs):
    run = endpoint_runs[target].result()
    assert_target_run(run, target)
