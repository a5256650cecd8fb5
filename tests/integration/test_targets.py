# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module through real Ansible against localhost: one playbook per target (tests/integration/targets/*).

Each target runs its cases as create / identical rerun / check mode and every bad input, and asserts on the
results and on the disk itself; a failing assert fails the play. Here we check the play's outcome, and that every
error it ignored was a refusal checked by the assert right after it (integration_support.assert_target_run).

The selected targets' playbooks start together (each with its own temp folders and CA directories), so the suite
takes about as long as the slowest target rather than their sum on a machine with a few cores.
"""

from __future__ import annotations

import concurrent.futures
import os

import pytest
import yaml
from integration_support import TARGETS, AnsibleRunner, PlaybookRun, assert_target_run
from postgresql_server import PASSWORD, PASSWORD_ROLE, PostgreSQLServer, why_unavailable

MODULE_TARGETS = ['ca', 'client_certificate', 'client_certificate_revoke', 'client_certificate_export',
                  'client_certificate_requests', 'client_certificate_inventory',
                  'client_certificate_deployment', 'client_certificate_pickup', 'client_certificate_pickup_info',
                  'client_certificate_notice', 'client_certificate_info', 'crl', 'ca_migrate']
# Targets that need a PostgreSQL server (tests/support/postgresql_server.py): each gets its own databases, and runs
# at -vvv so that the test can prove the store's password appears nowhere in the output.
POSTGRESQL_TARGETS = ['ca_migrate', 'shared_store']
ALL_TARGETS = MODULE_TARGETS + ['shared_store']

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


def test_every_ca_module_has_a_target():
    """Every module of the action group certfleet.pki.ca (meta/runtime.yml) has a target here."""
    runtime = yaml.safe_load((TARGETS.parents[2] / 'meta' / 'runtime.yml').read_text())
    group = set(runtime['action_groups']['ca'])
    assert group == set(MODULE_TARGETS), 'action group and targets differ: %s' % (group ^ set(MODULE_TARGETS))
    for target in MODULE_TARGETS:
        assert (TARGETS.parents[2] / 'plugins' / 'modules' / ('%s.py' % target)).is_file()
        assert (TARGETS / target / 'tasks' / 'main.yml').is_file()
        assert (TARGETS / target / 'aliases').is_file()


def _run_target(target: str, base, postgresql=None) -> PlaybookRun:
    ansible = AnsibleRunner(base / 'ansible')
    work = base / 'work'
    work.mkdir()
    playbook = ansible.base / ('%s.yml' % target)
    playbook.write_text(WRAPPER.format(target=target, targets=TARGETS))
    extra_vars = ansible.common_vars(work)
    args = ()
    if target in POSTGRESQL_TARGETS:
        extra_vars.update({
            'certfleet_pg_store': postgresql.url(postgresql.create_database(), PASSWORD_ROLE, PASSWORD),
            'certfleet_pg_store_empty': postgresql.url(postgresql.create_database(), PASSWORD_ROLE, PASSWORD),
            'certfleet_pg_password': PASSWORD,
        })
        args = ('-vvv',)
    return ansible.run(playbook, extra_vars=extra_vars, args=args)


@pytest.fixture(scope='module')
def target_runs(request, tmp_path_factory, collections_path):
    """Start the playbook of every selected target at once; each test waits for its own."""
    selected = [target for target in ALL_TARGETS
                if any(item.nodeid.endswith('test_target[%s]' % target) for item in request.session.items)]
    postgresql = None
    if set(selected) & set(POSTGRESQL_TARGETS):
        if why_unavailable():
            selected = [target for target in selected if target not in POSTGRESQL_TARGETS]
        else:
            postgresql = PostgreSQLServer().start()
    workers = max(1, min(len(selected), (os.cpu_count() or 2) + 1))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
            yield {target: executor.submit(_run_target, target, tmp_path_factory.mktemp('target-%s' % target),
                                           postgresql)
                   for target in selected}
    finally:
        if postgresql is not None:
            postgresql.stop()


@pytest.mark.parametrize('target', ALL_TARGETS)
def test_target(target, target_runs):
    if target not in target_runs:
        pytest.skip(why_unavailable() or 'not selected')
    run = target_runs[target].result()
    assert_target_run(run, target)
    if target in POSTGRESQL_TARGETS:  # the store's password: never in results, messages or -vvv output
        assert PASSWORD not in run.stdout and PASSWORD not in run.stderr
