# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identity-level options of certfleet_identities survive every path to a certificate.

certfleet.pki.issue issues an identity with its own valid_days, key_type, profile and SANs; then the CA purges
the held key, and the next issue run reaches the deploy role's reissue path (export fails, a new certificate is
forced). The reissued certificate must carry the identity's options too: it used to fall back to 365 days.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import secrets
import shutil
import sys

import pytest
from integration_support import AnsibleRunner, ensure_collection_link, sqlite_rows

pytestmark = pytest.mark.skipif(not all(shutil.which(tool) for tool in ('certutil', 'pk12util')),
                                reason='needs certutil and pk12util (libnss3-tools)')

PROFILES_INI = '[Profile0]\nName=default\nIsRelative=1\nPath=p.default\nDefault=1\n'
IDENTITY = {'identity': 'dave', 'subject': {'CN': 'Dave'}, 'email': 'dave@example.org', 'stores': ['firefox'],
            'valid_days': 45, 'key_type': 'ec-p384', 'profile': 'client',
            'sans': ['email:dave.alias@example.org']}


def _current(ca: pathlib.Path) -> dict:
    rows = sqlite_rows(ca / 'state.db', 'SELECT serial, key_type, profile, sans_json, not_before, not_after, '
                       'key_status FROM certificates WHERE identity = ? AND is_current = 1', ('dave',))
    serial, key_type, profile, sans, not_before, not_after, key_status = rows[0]
    days = (datetime.datetime.fromisoformat(not_after.replace('Z', '+00:00'))
            - datetime.datetime.fromisoformat(not_before.replace('Z', '+00:00')))
    return {'serial': serial, 'key_type': key_type, 'profile': profile, 'sans': json.loads(sans),
            'days': round(days.total_seconds() / 86400), 'key_status': key_status}


def _assert_options(record: dict) -> None:
    assert record['key_type'] == 'ec-p384', record
    assert record['profile'] == 'client', record
    assert 'email:dave.alias@example.org' in record['sans'], record
    assert 44 <= record['days'] <= 46, record  # 45 days (the CA may backdate not_before a little)


def test_identity_options_on_issue_and_reissue(tmp_path, collections_path):
    home = tmp_path / 'home'
    (home / '.mozilla' / 'firefox' / 'p.default').mkdir(parents=True)
    (home / '.mozilla' / 'firefox' / 'profiles.ini').write_text(PROFILES_INI)
    ca = tmp_path / 'ca'
    passphrase = secrets.token_urlsafe(24)
    ansible = AnsibleRunner(tmp_path / 'ansible')
    inventory = tmp_path / 'inventory.yml'
    host = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
            'certfleet_identities': [dict(IDENTITY, homes=[str(home)])]}
    inventory.write_text(json.dumps({'all': {'vars': {'certfleet_ca_path': str(ca), 'certfleet_ca_passphrase':
                                                      passphrase}, 'hosts': {'h1': host}}}))
    root = str(ensure_collection_link())
    if root not in sys.path:
        sys.path.insert(0, root)
    from ansible_collections.certfleet.pki.plugins.module_utils.ca import service, setup  # pylint: disable=import-error
    setup.ensure_ca(ca_path=str(ca), ca_passphrase=passphrase, subject={'CN': 'Options CA'}, key_type='ec-p256')

    run = ansible.run(pathlib.Path('certfleet.pki.issue'), inventory=inventory)
    assert run.returncode == 0, run.explain()
    issued = _current(ca)
    _assert_options(issued)

    # The CA purges the held key; the host loses its certificate: the next run must reissue.
    with service.ManagedCA(str(ca), passphrase) as opened, opened.store.write():
        opened.store.drop_key(issued['serial'], opened.clock())
        opened.store.remove_deployment('dave', 'h1')
    shutil.rmtree(home / '.mozilla' / 'firefox' / 'p.default')
    (home / '.mozilla' / 'firefox' / 'p.default').mkdir()

    run = ansible.run(pathlib.Path('certfleet.pki.issue'), inventory=inventory)
    assert run.returncode == 0, run.explain()
    reissued = _current(ca)
    assert reissued['serial'] != issued['serial'], 'the reissue path was not taken:\n' + run.output[-4000:]
    _assert_options(reissued)
