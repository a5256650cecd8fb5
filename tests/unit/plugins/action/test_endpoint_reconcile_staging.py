# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin's Linux path: controller files (pkcs12_src, pkcs12_password_src) staged in the remote
temporary folder for the module and removed after, and its refusals before anything reaches the host. The host
calls are recorded, not made; the integration tests run the whole path for real."""

from __future__ import annotations

import types

import pytest
from ansible.errors import AnsibleActionFail
from ansible.plugins.shell.sh import ShellModule

from ansible_collections.certfleet.pki.plugins.action.endpoint_reconcile import ActionModule

REMOTE_TMP = '/home/ansible/.ansible/tmp/ansible-tmp-1'


class _RecordingAction(ActionModule):
    """The action plugin with its host calls recorded (transfers, module runs, temporary folder)."""

    def __init__(self, args, module_error=None):
        task = types.SimpleNamespace(args=args, check_mode=False, diff=False, async_val=0,
                                     action='certfleet.pki.endpoint_reconcile')
        shell = ShellModule()
        shell.tmpdir = None
        super().__init__(task, types.SimpleNamespace(_shell=shell), types.SimpleNamespace(become=False),
                         None, None, None)
        self.calls, self.files, self.removed = [], {}, []
        self.module_error = module_error

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):
        self.calls.append((module_name, module_args))
        if self.module_error:
            raise self.module_error
        return {'changed': True}

    def _make_tmp_path(self, remote_user=None):
        self._connection._shell.tmpdir = REMOTE_TMP
        return REMOTE_TMP

    def _remove_tmp_path(self, tmp_path, force=False):
        self.removed.append((tmp_path, force))
        self.files = {p: d for p, d in self.files.items() if not p.startswith(tmp_path)}
        self._connection._shell.tmpdir = None

    def _transfer_file(self, local_path, remote_path):
        with open(local_path, 'rb') as handle:
            self.files[remote_path] = handle.read()
        return remote_path

    def _fixup_perms2(self, remote_paths, remote_user=None, execute=True):
        self.fixed = list(remote_paths)
        return None


@pytest.fixture
def controller_files(tmp_path):
    p12 = tmp_path / 'alice.p12'
    p12.write_bytes(b'not really a PKCS#12, never opened here')
    password = tmp_path / 'alice.p12.password'
    password.write_text('one-time-password\n')
    return str(p12), str(password)


def _args(**entry):
    return {'ca_certificate': 'PEM', 'identities': [dict({'identity': 'alice', 'fingerprint_sha256': 'AB' * 32},
                                                         **entry)]}


def test_files_are_staged_for_the_module_and_removed_after(controller_files):
    p12, password = controller_files
    action = _RecordingAction(_args(pkcs12_src=p12, pkcs12_password_src=password))
    result = action.run(task_vars={})
    assert result['changed'] is True
    (name, module_args), = action.calls
    staged = module_args['identities'][0]
    assert name == 'certfleet.pki.endpoint_reconcile'
    assert staged['pkcs12_path'] == REMOTE_TMP + '/identity-0.p12' and staged['pkcs12_password'] == 'one-time-password'
    assert 'pkcs12_src' not in staged and 'pkcs12_password_src' not in staged
    assert action.fixed == [REMOTE_TMP, REMOTE_TMP + '/identity-0.p12']
    assert action.removed == [(REMOTE_TMP, True)] and action.files == {}  # the copy went with the folder


def test_the_folder_goes_when_the_module_fails(controller_files):
    p12, password = controller_files
    action = _RecordingAction(_args(pkcs12_src=p12, pkcs12_password_src=password),
                              module_error=RuntimeError('connection lost'))
    with pytest.raises(RuntimeError):
        action.run(task_vars={})
    assert action.removed == [(REMOTE_TMP, True)] and action.files == {}


@pytest.mark.parametrize('entry, message', [
    ({'pkcs12_src': 'P12'}, 'identities[0]: pkcs12_src and pkcs12_password_src go together'),
    ({'pkcs12_password_src': 'PW'}, 'identities[0]: pkcs12_src and pkcs12_password_src go together'),
    ({'pkcs12_src': 'P12', 'pkcs12_password_src': 'PW', 'pkcs12_path': '/tmp/x.p12'},
     'identities[0]: pkcs12_src is mutually exclusive with pkcs12_path'),
    ({'pkcs12_src': 'P12', 'pkcs12_password_src': '/nonexistent/pw'},
     'identities[0].pkcs12_password_src: cannot read /nonexistent/pw'),
])
def test_bad_controller_files_are_refused_before_the_module_runs(controller_files, entry, message):
    p12, password = controller_files
    entry = {k: {'P12': p12, 'PW': password}.get(v, v) for k, v in entry.items()}
    action = _RecordingAction(_args(**entry))
    with pytest.raises(AnsibleActionFail) as failure:
        action.run(task_vars={})
    assert str(failure.value).startswith(message)
    assert action.calls == [] and action.files == {}  # nothing ran, nothing stayed on the host
