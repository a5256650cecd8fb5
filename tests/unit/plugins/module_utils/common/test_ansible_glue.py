# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where library errors meet AnsibleModule: a missing psycopg is Ansible's missing_required_lib message, and
ca_store is a no_log option next to an optional ca_path."""

from __future__ import annotations

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import ca_argument_spec, run
from ansible_collections.certfleet.pki.plugins.module_utils.store import postgresql


class Exited(Exception):
    pass


class FakeModule:
    """What run() uses of AnsibleModule: fail_json, exit_json, warn, _diff."""
    _diff = False

    def __init__(self):
        self.failed = None
        self.warnings = []

    def fail_json(self, **failure):
        self.failed = failure
        raise Exited()

    def exit_json(self, **result):
        raise AssertionError('expected a failure, got %r' % result)

    def warn(self, text):
        self.warnings.append(text)


def test_a_missing_psycopg_is_reported_like_ansible_reports_missing_libraries(monkeypatch):
    monkeypatch.setattr(postgresql, 'psycopg', None)
    module = FakeModule()
    with pytest.raises(Exited):
        run(module, lambda: ManagedCA(store_url='postgresql://certfleet:s3cret@db.example.org/certfleet'))
    assert module.failed['error_code'] == 'missing_library' and module.failed['field'] == 'ca_store'
    assert module.failed['msg'].startswith('Failed to import the required Python library (psycopg >= 3.1)')
    assert 'pip install "psycopg[binary]"' in module.failed['msg']
    assert 's3cret' not in repr(module.failed)


def test_ca_store_is_no_log_and_ca_path_is_optional():
    spec = ca_argument_spec()
    assert spec['ca_store'] == {'type': 'str', 'no_log': True}
    assert not spec['ca_path'].get('required') and spec['ca_passphrase']['no_log'] is True
