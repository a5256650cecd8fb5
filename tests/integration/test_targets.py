# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module through real Ansible against localhost: one playbook per target (tests/integration/targets/*).

Each target runs its cases as create / identical rerun / check mode and every bad input, and asserts on the
results and on the disk itself; a failing assert fails the play. Here we only check the play's outcome.
"""

from __future__ import annotations

import re

import pytest

from integration_support import TARGETS

MODULE_TARGETS = ['ca', 'client_certificate', 'client_certificate_revoke', 'client_certificate_export',
                  'client_certificate_info', 'crl']

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

_RECAP = re.compile(r'^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+'
                    r'skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)', re.MULTILINE)


def recap(output: str) -> dict:
    match = _RECAP.search(output)
    assert match, 'no PLAY RECAP for localhost in the output'
    names = ('ok', 'changed', 'unreachable', 'failed', 'skipped', 'rescued', 'ignored')
    return dict(zip(names, (int(value) for value in match.groups())))


def test_every_module_has_a_target():
    modules = {path.stem for path in (TARGETS.parents[2] / 'plugins' / 'modules').glob('*.py')
               if not path.name.startswith('_')}
    assert modules <= set(MODULE_TARGETS), 'modules without an integration target: %s' % (modules - set(MODULE_TARGETS))
    for target in MODULE_TARGETS:
        assert (TARGETS / target / 'tasks' / 'main.yml').is_file()
        assert (TARGETS / target / 'aliases').is_file()


@pytest.mark.parametrize('target', MODULE_TARGETS)
def test_target(target, ansible, work_dir):
    playbook = ansible.base / ('%s.yml' % target)
    playbook.write_text(WRAPPER.format(target=target, targets=TARGETS))
    run = ansible.run(playbook, extra_vars=ansible.common_vars(work_dir))
    assert run.returncode == 0, run.explain()
    assert 'failed=0' in run.stdout, run.explain()
    counts = recap(run.stdout)
    assert counts['failed'] == 0 and counts['unreachable'] == 0, run.explain()
    # The target really ran its cases (a wrapper that includes nothing would also end with failed=0).
    assert counts['ok'] >= 20, run.explain()
    # Every ignored error is a bad-input case whose assert ran right after it.
    assert counts['ignored'] >= 3, run.explain()
