# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of certfleet.pki.endpoint_reconcile: PKCS#12 files named on the controller (``pkcs12_src`` with their
``pkcs12_password_src``) travel to a private temporary folder on the host inside the same task, so a host's whole
reconcile (transfer, import, verify, remove, clean up) is one task and one module run."""

from __future__ import annotations

import copy

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

MODULE = 'certfleet.pki.endpoint_reconcile'


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
        identities = args.get('identities')
        if self._connection._shell.SHELL_FAMILY == 'powershell':
            # The Windows stores are the deploy role's (ansible.windows); nothing is read or changed here.
            result.update(changed=False, stores=[], summary={}, unsupported_platform='Windows')
            return result
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
