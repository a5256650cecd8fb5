# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where library errors meet AnsibleModule (private module_utils)."""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.common.deps import (
    CRYPTOGRAPHY_IMPORT_ERROR, CRYPTOGRAPHY_MINIMUM, CRYPTOGRAPHY_VERSION, cryptography_ok,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError


def ca_argument_spec(**extra) -> dict:
    spec = {
        # One of the two: ca_path (the embedded store) or ca_store (a shared store's URL, which may carry a
        # password); the library says which is missing or that both were given.
        'ca_path': {'type': 'path'},
        'ca_store': {'type': 'str', 'no_log': True},
        'ca_passphrase': {'type': 'str', 'no_log': True},
    }
    spec.update(extra)
    return spec


def require_cryptography(module) -> None:
    from ansible.module_utils.basic import missing_required_lib
    if not cryptography_ok():
        if CRYPTOGRAPHY_VERSION is None:
            module.fail_json(msg=missing_required_lib('cryptography >= %s' % CRYPTOGRAPHY_MINIMUM),
                             exception=CRYPTOGRAPHY_IMPORT_ERROR)
        module.fail_json(msg='cryptography %s is too old; certfleet.pki needs >= %s'
                         % (CRYPTOGRAPHY_VERSION, CRYPTOGRAPHY_MINIMUM))


def run(module, operation) -> None:
    """Run ``operation()`` and exit: its dict is the result, a CertfleetError becomes fail_json."""
    try:
        result = operation()
    except CertfleetError as exc:
        failure = {'msg': exc.message, 'error_code': exc.code}
        if exc.code == 'missing_library':
            from ansible.module_utils.basic import missing_required_lib
            failure['msg'] = '%s %s' % (missing_required_lib(getattr(exc, 'library', 'psycopg')),
                                        exc.message)
        if exc.field:
            failure['field'] = exc.field
        if getattr(exc, 'path', None):
            failure['path'] = exc.path
        module.fail_json(**failure)
    for warning in result.pop('warnings', None) or []:
        module.warn(warning)
    if not module._diff:
        result.pop('diff', None)
    module.exit_json(**result)
