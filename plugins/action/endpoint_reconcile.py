# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of certfleet.pki.endpoint_reconcile: PKCS#12 files named on the controller (``pkcs12_src`` with their
``pkcs12_password_src``) travel to a private temporary folder on the host inside the same task, so a host's whole
reconcile (transfer, import, verify, remove, clean up) is one task and one module run.

On a Windows host (the connection's shell is PowerShell) the store is read with ansible.windows.win_powershell, the
decision is made here on the controller (module_utils/endpoints/reconcile_windows.py, the NSS stores' rules) and the
writes go through ansible.windows.win_certificate_store."""

from __future__ import annotations

import copy

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile import build_plan
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile_windows import (
    LOCATIONS, READ_SCRIPT, WindowsStore, reconcile_windows_store,
)

MODULE = 'certfleet.pki.endpoint_reconcile'
# Options of the Windows path only; taken out before the Linux module runs (its argument spec does not know them).
WINDOWS_OPTIONS = {'windows_store_location': 'current_user', 'windows_store_ca_location': 'local_machine'}


def _read_password(path: str, index: int) -> str:
    try:
        with open(path, 'rb') as handle:
            return to_text(handle.read(), errors='surrogate_or_strict').strip()
    except OSError as exc:
        raise AnsibleActionFail('identities[%d].pkcs12_password_src: cannot read %s: %s'
                                % (index, path, exc.strerror)) from None


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # the connection's own temporary folder is used
        args = copy.deepcopy(dict(self._task.args))
        windows = {name: args.pop(name, None) or default for name, default in WINDOWS_OPTIONS.items()}
        if self._connection._shell.SHELL_FAMILY == 'powershell':
            try:
                result.update(self._run_windows(args, windows, task_vars))
            finally:
                # The folder holds the PKCS#12 files: it goes whatever happened, a refused input included.
                if self._connection._shell.tmpdir:
                    self._remove_tmp_path(self._connection._shell.tmpdir, force=True)
            return result
        identities = args.get('identities')
        staged = [(index, entry) for index, entry in enumerate(identities if isinstance(identities, list) else [])
                  if isinstance(entry, dict) and (entry.get('pkcs12_src') or entry.get('pkcs12_password_src'))]
        try:
            if staged:
                self._stage(staged)
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        finally:
            # The folder holds the PKCS#12 files: it goes whatever happened (the module ran with the keep-remote
            # setting of the connection otherwise).
            if self._connection._shell.tmpdir:
                self._remove_tmp_path(self._connection._shell.tmpdir, force=bool(staged))
        return result

    def _stage(self, staged: list) -> None:
        folder = self._connection._shell.tmpdir or self._make_tmp_path()
        remote_files = []
        for index, entry in staged:
            src, password_src = entry.pop('pkcs12_src', None), entry.pop('pkcs12_password_src', None)
            if not src or not password_src:
                raise AnsibleActionFail('identities[%d]: pkcs12_src and pkcs12_password_src go together' % index)
            if entry.get('pkcs12_path') or entry.get('pkcs12_password'):
                raise AnsibleActionFail('identities[%d]: pkcs12_src is mutually exclusive with pkcs12_path and '
                                        'pkcs12_password' % index)
            password = _read_password(password_src, index)
            remote = self._connection._shell.join_path(folder, 'identity-%d.p12' % index)
            try:
                self._transfer_file(src, remote)
            except Exception as exc:  # the connection plugin's own error, with the host's reason
                raise AnsibleActionFail('identities[%d].pkcs12_src: cannot copy %s to the host: %s'
                                        % (index, src, to_text(exc))) from None
            entry['pkcs12_path'] = remote
            entry['pkcs12_password'] = password
            remote_files.append(remote)
        # Readable by the user the module runs as (become), and only by it; the remote user's folder is 0700.
        self._fixup_perms2([folder] + remote_files, execute=False)

    # -- Windows ------------------------------------------------------------------------------------------------
    def _run_windows(self, args: dict, windows: dict, task_vars) -> dict:
        """Read, decide on the controller, write and verify one Windows store."""
        location, ca_location = windows['windows_store_location'], windows['windows_store_ca_location']
        for name, value in (('windows_store_location', location), ('windows_store_ca_location', ca_location)):
            if value not in LOCATIONS:
                raise AnsibleActionFail('%s must be one of %s, not %r' % (name, ', '.join(LOCATIONS), value))
        identities = _windows_identities(args.get('identities'))
        try:
            plan = build_plan(identities=identities, ca_certificate=args.get('ca_certificate'),
                              revoked_serials=args.get('revoked_serials'))
        except CertfleetError as exc:
            raise AnsibleActionFail('%s%s' % ('%s: ' % exc.field if exc.field else '', exc.message)) from None
        store = _HostStore(self, task_vars, location=location, ca_location=ca_location, ca_pem=plan.ca_pem)
        result = reconcile_windows_store(plan=plan, store=store, location=location, ca_location=ca_location,
                                         check_mode=bool(self._task.check_mode))
        if not self._task.diff:
            result.pop('diff', None)
        if location == 'current_user' and not self._play_context.become:
            # As roles/windows_store: over WinRM a PKCS#12 import into CurrentUser needs become (runas) as the
            # store's user, or CredSSP/Kerberos delegation.
            result['warnings'] = ['windows_store_location=current_user without become: the store is the connection '
                                  "user's, and a PKCS#12 import over WinRM may fail without become (runas)"]
        problems = ['%s %s: %s' % (s['store'], s['path'], p) for s in result['stores'] for p in s['problems']]
        if problems and boolean(args.get('fail_on_problems', True), strict=False):
            result.update(failed=True, msg='%d store(s) could not be reconciled: %s'
                          % (result['summary']['with_problems'], '; '.join(problems)))
        return result


def _windows_identities(identities) -> tuple:
    """The identities for build_plan, with the controller's PKCS#12 files opened there (fingerprint and issuer
    checked before the host is touched)."""
    if not isinstance(identities, list):
        raise AnsibleActionFail('identities must be a list')
    checked = []
    for index, entry in enumerate(identities):
        if not isinstance(entry, dict):
            raise AnsibleActionFail('identities[%d] must be a dict' % index)
        entry = dict(entry)
        if entry.get('pkcs12_path') or entry.get('pkcs12_password'):
            raise AnsibleActionFail('identities[%d]: on a Windows host give pkcs12_src and pkcs12_password_src '
                                    '(controller files: the decision is made on the controller), not pkcs12_path'
                                    % index)
        src, password_src = entry.pop('pkcs12_src', None), entry.pop('pkcs12_password_src', None)
        if bool(src) != bool(password_src):
            raise AnsibleActionFail('identities[%d]: pkcs12_src and pkcs12_password_src go together' % index)
        if src:
            entry.update(pkcs12_path=src, pkcs12_password=_read_password(password_src, index))
        checked.append(entry)
    return checked


def windows_pkcs12(wanted) -> bytes:
    """The identity's PKCS#12 as every Windows build imports it: re-packed on the controller in the legacy
    encryption (3DES, SHA-1 MAC) under the same one-time password; AES PKCS#12 needs Windows 10 1709 or Server 2019
    (the windows_store role decides that from facts; a random 128-bit one-time password makes the cipher moot)."""
    parsed = pkcs12_lib.open_pkcs12_data(wanted.pkcs12, wanted.pkcs12_password)
    return pkcs12_lib.repack(parsed, wanted.pkcs12_password, 'legacy', default_name=wanted.identity)


def _failure(outcome: dict) -> str | None:
    """The reason a module call failed, or None. Only the message: the module's no_log already masked secrets."""
    if outcome.get('failed') or outcome.get('unreachable'):
        return to_text(outcome.get('msg') or 'failed without a message')
    return None


class _HostStore(WindowsStore):
    """The store operations on the host, each one module run; PKCS#12 files and the CA go to the connection's
    temporary folder first (the caller removes it)."""

    def __init__(self, action: ActionModule, task_vars, *, location: str, ca_location: str, ca_pem: bytes):
        self.action, self.task_vars, self.ca_pem = action, task_vars, ca_pem
        self.location, self.ca_location = LOCATIONS[location], LOCATIONS[ca_location]
        # Where Windows keeps the imported key: the user's profile for CurrentUser, machine-wide for LocalMachine
        # (as roles/windows_store's key_storage auto).
        self.key_storage = 'user' if location == 'current_user' else 'machine'
        self.sent = 0

    def _module(self, name: str, args: dict) -> dict:
        return self.action._execute_module(module_name=name, module_args=args, task_vars=self.task_vars)

    def _remote(self, name: str) -> str:
        shell = self.action._connection._shell
        folder = shell.tmpdir or self.action._make_tmp_path()
        self.sent += 1
        return shell.join_path(folder, '%d-%s' % (self.sent, name))

    def read(self) -> dict:
        outcome = self._module('ansible.windows.win_powershell', {
            'script': READ_SCRIPT, 'parameters': {'Location': self.location, 'CaLocation': self.ca_location},
            # result -> my -> one certificate's fields: the default depth (2) would flatten them into strings
            'depth': 4, 'error_action': 'stop'})
        error = _failure(outcome)
        if error is not None:
            raise CertfleetError(error)
        return outcome.get('result') or {}

    def import_identity(self, wanted) -> str | None:
        remote = self._remote('identity.p12')
        try:
            self.action._transfer_data(remote, windows_pkcs12(wanted))
        except Exception as exc:  # the connection plugin's own error, with the host's reason
            return 'cannot copy the PKCS#12 file to the host: %s' % to_text(exc)
        return _failure(self._module('ansible.windows.win_certificate_store', {
            'path': remote, 'password': wanted.pkcs12_password, 'state': 'present', 'store_name': 'My',
            'store_location': self.location, 'key_exportable': False, 'key_storage': self.key_storage}))

    def trust_ca(self) -> str | None:
        remote = self._remote('ca.pem')
        try:
            self.action._transfer_data(remote, self.ca_pem)
        except Exception as exc:
            return 'cannot copy the CA certificate to the host: %s' % to_text(exc)
        return _failure(self._module('ansible.windows.win_certificate_store', {
            'path': remote, 'state': 'present', 'store_name': 'Root', 'store_location': self.ca_location}))

    def remove(self, entry) -> str | None:
        return _failure(self._module('ansible.windows.win_certificate_store', {
            'thumbprint': entry.thumbprint, 'state': 'absent', 'store_name': 'My', 'store_location': self.location}))
