# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client_certificate module in-process: the batch option (certificates) through AnsibleModule's argument
spec, and the single-identity result as before."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.certfleet.pki.plugins.modules import client_certificate

from conftest import PASSPHRASE  # pylint: disable=import-error


def _run(capsys, args: dict) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        client_certificate.main()
    return json.loads(capsys.readouterr().out)


def _args(ca, **params) -> dict:
    return dict({'ca_path': ca.path, 'ca_passphrase': PASSPHRASE, 'key_type': 'ec-p256'}, **params)


BATCH = [{'identity': 'alice', 'subject': {'CN': 'Alice'}, 'email': 'alice@example.org'},
         {'identity': 'bob', 'subject': {'CN': 'Bob'}, 'key_type': 'ec-p384', 'valid_days': 60},
         {'identity': 'carol', 'subject': {'CN': 'Carol'}, 'profile': 'client_email'}]


def test_a_batch_through_the_module(ca, capsys):
    predicted = _run(capsys, _args(ca, certificates=BATCH, _ansible_check_mode=True, _ansible_diff=True))
    assert predicted['changed'] is True and predicted['counts'] == {'issued': 3, 'renewed': 0, 'unchanged': 0}
    assert len(predicted['diff']) == 3 and ca.records() == []

    result = _run(capsys, _args(ca, certificates=BATCH, valid_days=90))
    assert result['changed'] is True and result['counts'] == {'issued': 3, 'renewed': 0, 'unchanged': 0}
    assert 'diff' not in result and 'identity' not in result
    alice, bob, carol = result['certificates']
    assert [alice['identity'], bob['identity'], carol['identity']] == ['alice', 'bob', 'carol']
    assert alice['sans'] == ['email:alice@example.org'] and alice['key_type'] == 'ec-p256'
    assert bob['key_type'] == 'ec-p384' and carol['profile'] == 'client_email'
    assert all('diff' not in entry and entry['certificate'].startswith('-----BEGIN CERTIFICATE')
               for entry in result['certificates'])
    assert 'PRIVATE KEY' not in json.dumps(result)

    again = _run(capsys, _args(ca, certificates=BATCH, valid_days=90))
    assert again['changed'] is False and again['counts'] == {'issued': 0, 'renewed': 0, 'unchanged': 3}


@pytest.mark.parametrize('params, words', [
    ({}, 'one of the following is required: identity, certificates'),
    ({'identity': 'alice', 'certificates': BATCH}, 'mutually exclusive: identity|certificates'),
    ({'csr': 'x', 'certificates': BATCH}, 'mutually exclusive: csr|certificates'),
    ({'subject': {'CN': 'x'}, 'certificates': BATCH}, 'mutually exclusive: subject|certificates'),
    ({'certificates': [{'subject': {'CN': 'x'}}]}, 'missing required arguments: identity'),
    ({'certificates': [{'identity': 'x', 'csr': 'y'}]}, 'csr'),
    ({'certificates': [{'identity': 'x', 'key_type': 'dsa'}]}, 'key_type'),
])
def test_the_argument_spec_refuses(ca, capsys, params, words):
    failed = _run(capsys, _args(ca, **params))
    assert failed['failed'] is True and words in failed['msg'], failed['msg']
    assert ca.records() == []


def test_an_invalid_entry_fails_naming_it_and_writes_nothing(ca, capsys):
    entries = BATCH + [{'identity': 'dave', 'subject': {}}]
    failed = _run(capsys, _args(ca, certificates=entries))
    assert failed['failed'] is True and failed['field'] == 'certificates[3].subject'
    assert failed['error_code'] == 'invalid_input' and "'dave'" in failed['msg']
    assert ca.records() == []


def test_the_single_identity_result_is_as_before(ca, capsys):
    result = _run(capsys, _args(ca, identity='alice', subject={'CN': 'Alice'}, _ansible_diff=True))
    assert result['changed'] is True and result['action'] == 'issued' and result['identity'] == 'alice'
    assert 'certificates' not in result and 'counts' not in result
    assert result['diff']['after']['identity'] == 'alice'
