# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No playbook, role, test playbook or documented example hands a secret to a module through a task's or play's
``environment``: Ansible puts that environment on the module's command line, and -vvv prints the line."""

from __future__ import annotations

import ast
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET_NAME = re.compile(r'PASS|SECRET|TOKEN|PRIVATE|CREDENTIAL', re.IGNORECASE)
YAML_FILES = ('playbooks/*.yml', 'playbooks/tasks/*.yml', 'roles/*/tasks/*.yml', 'roles/*/handlers/*.yml',
              'tests/integration/playbooks/**/*.yml', 'tests/integration/targets/*/tasks/*.yml',
              'molecule/**/*.yml', 'docs/awx/*.yml')
DOCUMENTS = ('README.md', 'docs/*.md', 'roles/*/README.md')
CODE_BLOCK = re.compile(r'```ya?ml\n(.*?)```', re.DOTALL)


def secrets_in_environments(node, where: str) -> list:
    """Where an ``environment`` mapping in ``node`` (parsed YAML) sets a variable whose name says it is secret."""
    found = []
    if isinstance(node, dict):
        environment = node.get('environment')
        if isinstance(environment, dict):
            found += ['%s: environment %s' % (where, name) for name in environment if SECRET_NAME.search(str(name))]
        elif isinstance(environment, str):  # a template: what it sets cannot be checked here
            found.append('%s: environment is a template' % where)
        for value in node.values():
            found += secrets_in_environments(value, where)
    elif isinstance(node, list):
        for value in node:
            found += secrets_in_environments(value, where)
    return found


def _module_examples():
    for path in sorted((ROOT / 'plugins').glob('*/*.py')):
        for node in ast.parse(path.read_text(encoding='utf-8')).body:
            if (isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'EXAMPLES' for t in node.targets)
                    and isinstance(node.value, ast.Constant)):
                yield path, node.value.value


def _documents():
    """(where, parsed YAML) of every YAML file and documented example; code blocks that are fragments are left."""
    for pattern in YAML_FILES:
        for path in sorted(ROOT.glob(pattern)):
            yield str(path.relative_to(ROOT)), yaml.safe_load(path.read_text(encoding='utf-8'))
    for path, text in _module_examples():
        yield str(path.relative_to(ROOT)) + ' EXAMPLES', yaml.safe_load(text)
    for pattern in DOCUMENTS:
        for path in sorted(ROOT.glob(pattern)):
            for number, block in enumerate(CODE_BLOCK.findall(path.read_text(encoding='utf-8'))):
                try:
                    yield '%s block %d' % (path.relative_to(ROOT), number), yaml.safe_load(block)
                except yaml.YAMLError:
                    continue


def test_the_check_finds_a_secret_in_an_environment():
    planted = yaml.safe_load('- hosts: all\n  environment: {PGPASSWORD: "{{ pw }}"}\n  tasks:\n'
                             '    - command: "true"\n      environment: {LANG: C, CERTFLEET_SMTP_PASSWORD: x}\n'
                             '    - command: "true"\n      environment: "{{ smtp_variables }}"\n')
    assert secrets_in_environments(planted, 'x') == [
        'x: environment PGPASSWORD', 'x: environment CERTFLEET_SMTP_PASSWORD', 'x: environment is a template']


def test_no_secret_travels_in_a_task_environment():
    documents = list(_documents())
    assert len(documents) > 100  # the playbooks, roles, targets, examples and README blocks were all read
    found = [line for where, node in documents for line in secrets_in_environments(node, where)]
    assert found == []
