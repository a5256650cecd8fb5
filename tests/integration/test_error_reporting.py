# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors a user can act on, seen through ansible-playbook: a damaged state.db, a damaged CA key, a file that
cannot be written. Each failure must be a clean fail_json (msg, field, error_code), never a MODULE FAILURE or a
traceback, and must leave nothing written.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest
from integration_support import AnsibleRunner, ensure_collection_link

PASSPHRASE = 'integration passphrase 9'
IDENTITIES = ['user%02d' % n for n in range(30)]


def _library():
    root = str(ensure_collection_link())
    if root not in sys.path:
        sys.path.insert(0, root)
    from ansible_collections.certfleet.pki.plugins.module_utils.ca import service, setup  # pylint: disable=import-error
    return service, setup


def _make_ca(path: pathlib.Path) -> None:
    service, setup = _library()
    setup.ensure_ca(ca_path=str(path), ca_passphrase=PASSPHRASE, subject={'CN': 'Errors Test CA'},
                    key_type='ec-p256')
    with service.ManagedCA(str(path), PASSPHRASE) as ca:
        for identity in IDENTITIES:
            ca.ensure_certificate(ca.build_wanted(identity=identity, subject={'CN': identity}, key_type='ec-p256'))


def run_tasks(ansible: AnsibleRunner, tasks: list, name: str = 'tasks') -> list:
    """Run each task with ignore_errors and return every registered result, in order."""
    results = ansible.base / ('%s-results.json' % name)
    play_tasks = []
    for index, task in enumerate(tasks):
        play_tasks.append(dict(task, register='r%d' % index, ignore_errors=True))
    play_tasks.append({'ansible.builtin.copy': {
        'dest': str(results), 'mode': '0600',
        'content': '{{ [%s] | to_json }}' % ', '.join('r%d' % i for i in range(len(tasks)))}})
    playbook = ansible.base / ('%s.yml' % name)
    playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': play_tasks}]))
    run = ansible.run(playbook)
    assert run.returncode == 0, run.explain()
    assert 'MODULE FAILURE' not in run.output and 'Traceback' not in run.output, run.explain()
    return json.loads(results.read_text())


def _tree(folder: pathlib.Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def damaged_ca(tmp_path_factory, collections_path):
    base = tmp_path_factory.mktemp('damaged')
    ca_path = base / 'ca'
    _make_ca(ca_path)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'unit' / 'plugins' / 'module_utils' / 'store'))
    try:
        from test_sqlite_damaged import damage_state_db  # pylint: disable=import-error
    finally:
        sys.path.pop(0)
    lost = damage_state_db(str(ca_path / 'state.db'))
    return {'base': base, 'ca': ca_path, 'lost': lost}


def test_damaged_store_through_ansible(damaged_ca, tmp_path):
    ansible = AnsibleRunner(tmp_path / 'ansible')
    ca = damaged_ca['ca']
    state = str(ca / 'state.db')
    before = _tree(ca)
    common = {'ca_path': str(ca), 'ca_passphrase': PASSPHRASE}
    results = run_tasks(ansible, [
        {'certfleet.pki.client_certificate_info': common},
        {'certfleet.pki.client_certificate_info': dict(common, identity=damaged_ca['lost'][0])},
        {'certfleet.pki.client_certificate': dict(common, identity=damaged_ca['lost'][0], valid_days=30,
                                                  subject={'CN': damaged_ca['lost'][0]})},
        {'certfleet.pki.client_certificate_revoke': dict(common, identity=damaged_ca['lost'][0], which='current')},
        {'certfleet.pki.client_certificate_export': dict(common, identity=damaged_ca['lost'][0],
                                                         dest=str(tmp_path / 'out.p12'), password='x' * 12)},
        {'certfleet.pki.crl': dict(common, dest=str(tmp_path / 'crl.pem'))},
        {'certfleet.pki.ca': dict(common, subject={'CN': 'Errors Test CA'}, key_type='ec-p256')},
    ])
    for result in results:
        assert result.get('failed'), result
        assert result['error_code'] == 'store_damaged', result
        assert result['field'] == 'ca_path', result
        assert state in result['msg'] and 'damaged' in result['msg'], result
        assert 'Backup and recovery' in result['msg'], result
        assert PASSPHRASE not in json.dumps(result)
    assert _tree(ca) == before
    assert not (tmp_path / 'out.p12').exists() and not (tmp_path / 'crl.pem').exists()


def test_damaged_ca_key_and_wrong_passphrase_through_ansible(tmp_path, collections_path):
    ansible = AnsibleRunner(tmp_path / 'ansible')
    ca = tmp_path / 'ca'
    service, setup = _library()
    setup.ensure_ca(ca_path=str(ca), ca_passphrase=PASSPHRASE, subject={'CN': 'Key Test CA'}, key_type='ec-p256')
    tasks = [{'certfleet.pki.client_certificate': {'ca_path': str(ca), 'ca_passphrase': 'wrong horse',
                                                   'identity': 'alice', 'subject': {'CN': 'alice'}}}]
    wrong = run_tasks(ansible, tasks, 'wrong')[0]
    lines = (ca / 'ca.key').read_bytes().splitlines()
    (ca / 'ca.key').write_bytes(b'\n'.join(lines[:2] + lines[4:]) + b'\n')
    tasks[0]['certfleet.pki.client_certificate']['ca_passphrase'] = PASSPHRASE
    damaged = run_tasks(ansible, tasks, 'damaged')[0]
    assert wrong['failed'] and wrong['error_code'] == 'wrong_passphrase' and wrong['field'] == 'ca_passphrase'
    assert 'wrong passphrase' in wrong['msg']
    assert damaged['failed'] and damaged['error_code'] == 'ca_key_damaged' and damaged['field'] == 'ca_path'
    assert str(ca / 'ca.key') in damaged['msg'] and 'damaged' in damaged['msg']
    assert 'wrong passphrase' not in damaged['msg']


def test_unwritable_destinations_through_ansible(tmp_path, collections_path):
    """A destination that cannot be written is a clean failure naming the option, the path and the reason."""
    ansible = AnsibleRunner(tmp_path / 'ansible')
    ca = tmp_path / 'ca'
    service, setup = _library()
    setup.ensure_ca(ca_path=str(ca), ca_passphrase=PASSPHRASE, subject={'CN': 'Write Test CA'}, key_type='ec-p256')
    with service.ManagedCA(str(ca), PASSPHRASE) as opened:
        opened.ensure_certificate(opened.build_wanted(identity='alice', subject={'CN': 'Alice'}, key_type='ec-p256'))
    out = tmp_path / 'out'
    out.mkdir()
    long_name = 'x' * 300
    common = {'ca_path': str(ca), 'ca_passphrase': PASSPHRASE}
    tasks = [
        {'certfleet.pki.client_certificate_export': dict(common, identity='alice', dest=str(out / long_name),
                                                         password='export password 1')},
        {'certfleet.pki.crl': dict(common, dest=str(out / (long_name + '.pem')))},
        {'certfleet.pki.client_certificate_inventory': {'ca_path': str(ca), 'dest': str(out / (long_name + '.csv'))}},
    ]
    results = run_tasks(ansible, tasks, 'unwritable')
    for task, result in zip(tasks, results, strict=True):
        dest = list(task.values())[0]['dest']
        assert result.get('failed'), result
        assert result['error_code'] == 'write_failed', result
        assert result['field'] == 'dest', result
        assert result['path'] == dest, result
        assert result['msg'].startswith('dest: cannot write %s: File name too long' % dest), result
        assert PASSPHRASE not in json.dumps(result)
    assert os.listdir(out) == []
