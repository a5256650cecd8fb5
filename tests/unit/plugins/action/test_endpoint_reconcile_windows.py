# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Windows path of the endpoint_reconcile action plugin against an emulated Windows store.

No Windows host runs here: ``_execute_module`` is replaced by an in-memory store that answers
ansible.windows.win_powershell (the listing the read script returns) and ansible.windows.win_certificate_store
(import of a PKCS#12 file, the CA into Root, removal by thumbprint) the way those modules behave: a PKCS#12 import
puts every certificate of the file into My (the key on the client certificate, the chain without one). The
certificates, PKCS#12 files and the CA are real (the managed CA library, tests/unit/conftest.py).
"""

from __future__ import annotations

import base64
import datetime
import json
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible.errors import AnsibleActionFail
from ansible.plugins.shell.powershell import ShellModule

from ansible_collections.certfleet.pki.plugins.action.endpoint_reconcile import ActionModule
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import reconcile_windows
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib

P12_PASSWORD = 'p12 transport secret for windows'
FAST = 1000  # PBKDF2 rounds: these tests are not about PKCS#12 strength
STORE = 'ansible.windows.win_certificate_store'
POWERSHELL = 'ansible.windows.win_powershell'


def thumbprint(certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # Windows names certificates by SHA-1


class EmulatedWindows:
    """Cert:\\<location>\\My and Root as dicts {thumbprint: {'der', 'has_key', 'friendly'}}; files put on the host."""

    def __init__(self):
        self.my = {'CurrentUser': {}, 'LocalMachine': {}}
        self.root = {'CurrentUser': set(), 'LocalMachine': set()}
        self.files = {}
        self.calls = []
        self.failing_imports = set()  # SHA-256 fingerprints whose PKCS#12 import fails
        self.keyless_imports = set()  # ... whose import reports success but leaves the certificate without its key
        self.read_error = None
        self.removed_tmp = []
        self.imported_files = []  # the PKCS#12 bytes each import was given

    def hold(self, certificate, has_key=True, location='CurrentUser', friendly='') -> None:
        der = certificate.public_bytes(serialization.Encoding.DER)
        self.my[location][thumbprint(certificate)] = {'der': der, 'has_key': has_key, 'friendly': friendly}

    def holds(self, fingerprint_sha256, location='CurrentUser') -> bool:
        return any(x509.load_der_x509_certificate(c['der']).fingerprint(hashes.SHA256()).hex().upper()
                   == fingerprint_sha256 for c in self.my[location].values())

    def writes(self) -> list:
        """The arguments of every win_certificate_store call, in order."""
        return [args for name, args in self.calls if name == STORE]

    def execute(self, module_name, module_args, task_vars=None):
        args = json.loads(json.dumps(module_args))  # what crosses the wire is JSON
        self.calls.append((module_name, args))
        if module_name == POWERSHELL:
            return self._read(args)
        assert module_name == STORE, module_name
        if args['state'] == 'absent':
            found = self.my[args['store_location']].pop(args['thumbprint'], None)
            return {'changed': found is not None, 'thumbprints': [args['thumbprint']]}
        data = self.files[args['path']]
        if args['store_name'] == 'Root':
            certificate = x509.load_pem_x509_certificate(data)
            self.root[args['store_location']].add(thumbprint(certificate))
            return {'changed': True, 'thumbprints': [thumbprint(certificate)]}
        return self._import(args, data)

    def _read(self, args) -> dict:
        assert 'SupportsShouldProcess' in args['script']  # runs in check mode too
        assert args['depth'] >= 3  # result -> my -> the fields of one certificate
        if self.read_error:
            return {'failed': True, 'msg': self.read_error}
        params = args['parameters']
        listing = [{'RawData': base64.b64encode(c['der']).decode(), 'Thumbprint': t, 'HasPrivateKey': c['has_key'],
                    'FriendlyName': c['friendly']} for t, c in self.my[params['Location']].items()]
        return {'changed': False, 'result': {'my': listing, 'root': sorted(self.root[params['CaLocation']])}}

    def _import(self, args, data) -> dict:
        assert args['key_exportable'] is False and args['store_name'] == 'My'
        self.imported_files.append(data)
        key, certificate, chain = pkcs12.load_key_and_certificates(data, args['password'].encode())
        if certificate.fingerprint(hashes.SHA256()).hex().upper() in self.failing_imports:
            return {'failed': True, 'msg': 'Failed to load cert from file: the specified network password is not '
                                           'correct'}
        keyed = key is not None and certificate.fingerprint(hashes.SHA256()).hex().upper() not in self.keyless_imports
        self.hold(certificate, has_key=keyed, location=args['store_location'])
        for extra in chain or []:
            if thumbprint(extra) not in self.my[args['store_location']]:
                self.hold(extra, has_key=False, location=args['store_location'])
        return {'changed': True, 'thumbprints': [thumbprint(certificate)]}


class Fleet:
    """alice with an old and a current certificate, bob, a certificate of another CA, and the call's arguments."""

    def __init__(self, ca, make_ca, tmp_path):
        self.tmp_path = tmp_path
        self.ca_pem = open(ca.file('ca.pem')).read()
        self.ca_certificate = x509.load_pem_x509_certificate(self.ca_pem.encode())
        self.alice_old = ca.ensure('alice')
        self.alice = ca.ensure('alice', force=True)
        self.alice_p12 = self._export(ca, 'alice')
        self.bob = ca.ensure('bob')
        self.bob_p12 = self._export(ca, 'bob')
        self.foreign = make_ca('other-ca').ensure('alice')
        self.password_file = tmp_path / 'transfer.password'
        self.password_file.write_text(P12_PASSWORD + '\n')
        self.host = EmulatedWindows()

    def _export(self, ca, identity) -> str:
        path = self.tmp_path / ('%s.p12' % identity)
        ca.export(identity=identity, dest=str(path), password=P12_PASSWORD, iterations=FAST)
        return str(path)

    @staticmethod
    def certificate(issued) -> x509.Certificate:
        return x509.load_pem_x509_certificate(issued['certificate'].encode())

    def alice_wanted(self, with_p12=True) -> dict:
        wanted = {'identity': 'alice', 'serial': self.alice['serial'],
                  'fingerprint_sha256': self.alice['fingerprint_sha256'],
                  'superseded_fingerprints_sha256': [self.alice_old['fingerprint_sha256']]}
        if with_p12:
            wanted.update(pkcs12_src=self.alice_p12, pkcs12_password_src=str(self.password_file))
        return wanted

    def run(self, identities=None, check_mode=False, diff=True, **params) -> dict:
        params.setdefault('ca_certificate', self.ca_pem)
        params['identities'] = [self.alice_wanted()] if identities is None else identities
        task = types.SimpleNamespace(args=params, check_mode=check_mode, diff=diff, async_val=0,
                                     action='certfleet.pki.endpoint_reconcile')
        shell = ShellModule()
        shell.tmpdir = None
        connection = types.SimpleNamespace(_shell=shell)
        action = _EmulatedAction(task, connection, types.SimpleNamespace(become=True), None, None, None)
        action.host = self.host
        return action.run(task_vars={})


class _EmulatedAction(ActionModule):
    """The action plugin with its host calls answered by the emulated store."""

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):
        return self.host.execute(module_name, module_args, task_vars)

    def _make_tmp_path(self, remote_user=None):
        self._connection._shell.tmpdir = 'C:\\Users\\ansible\\AppData\\Local\\Temp\\ansible-tmp-1'
        return self._connection._shell.tmpdir

    def _remove_tmp_path(self, tmp_path, force=False):
        self.host.removed_tmp.append(tmp_path)
        self.host.files = {p: d for p, d in self.host.files.items() if not p.startswith(tmp_path)}
        self._connection._shell.tmpdir = None

    def _transfer_file(self, local_path, remote_path):
        with open(local_path, 'rb') as handle:
            self.host.files[remote_path] = handle.read()
        return remote_path

    def _transfer_data(self, remote_path, data):
        self.host.files[remote_path] = data if isinstance(data, bytes) else data.encode()
        return remote_path


@pytest.fixture
def fleet(ca, make_ca, tmp_path) -> Fleet:
    return Fleet(ca, make_ca, tmp_path)


def only_store(result) -> dict:
    assert len(result['stores']) == 1, result['stores']
    return result['stores'][0]


# -- missing, present, idempotence -----------------------------------------------------------------------------------
def test_missing_identity_is_imported_verified_and_the_ca_added_to_root(fleet):
    result = fleet.run()
    store = only_store(result)
    assert result['changed'] is True and not result.get('failed'), result
    assert store['store'] == 'windows' and store['path'] == 'Cert:\\CurrentUser\\My'
    assert store['imported'] == ['alice'] and store['missing'] == [] and store['problems'] == []
    assert fleet.host.holds(fleet.alice['fingerprint_sha256'])
    assert store['ca_changed'] == 'add' and store['ca_store'] == 'Cert:\\LocalMachine\\Root'
    assert thumbprint(fleet.ca_certificate) in fleet.host.root['LocalMachine']
    # the verification is a second read after the writes
    modules = [call[0] for call in fleet.host.calls]
    assert modules.count(POWERSHELL) == 2 and modules.index(STORE) < len(modules) - 1
    assert result['summary']['imported'] == 1 and result['diff'] and 'alice' not in result['diff'][0]['before']
    assert fleet.host.removed_tmp and fleet.host.files == {}  # the PKCS#12 and the CA left the host


def test_the_pkcs12_reaches_the_host_in_the_legacy_encryption_every_windows_build_imports(fleet):
    """The batch export is AES (modern); Windows before 10 1709 and Server 2016 refuse AES PKCS#12 files, so the
    controller re-packs it under the same one-time password."""
    with open(fleet.alice_p12, 'rb') as handle:
        assert pkcs12_lib.describe(handle.read())['encryption'] == 'modern'
    result = fleet.run()
    assert only_store(result)['imported'] == ['alice']
    sent = fleet.host.imported_files[0]
    assert pkcs12_lib.describe(sent)['encryption'] == 'legacy'
    key, certificate, _chain = pkcs12.load_key_and_certificates(sent, P12_PASSWORD.encode())
    assert key is not None
    assert certificate.fingerprint(hashes.SHA256()).hex().upper() == fleet.alice['fingerprint_sha256']


def test_second_run_writes_nothing_and_reports_unchanged(fleet):
    fleet.run()
    before = len(fleet.host.writes())
    again = fleet.run()
    store = only_store(again)
    assert again['changed'] is False and store['present'] == ['alice'] and store['imported'] == []
    assert len(fleet.host.writes()) == before
    assert store['ca_changed'] is None and again['diff'] == []


def test_missing_without_pkcs12_is_reported_and_nothing_is_written(fleet):
    result = fleet.run(identities=[fleet.alice_wanted(with_p12=False)])
    store = only_store(result)
    assert store['missing'] == ['alice'] and store['imported'] == []
    assert [a for a in fleet.host.writes() if a['store_name'] == 'My'] == []


def test_copy_without_its_key_counts_as_missing_and_is_imported_with_the_key(fleet):
    fleet.host.hold(fleet.certificate(fleet.alice), has_key=False)
    store = only_store(fleet.run())
    assert store['imported'] == ['alice']
    assert fleet.host.my['CurrentUser'][thumbprint(fleet.certificate(fleet.alice))]['has_key'] is True


# -- removals --------------------------------------------------------------------------------------------------------
def test_superseded_certificate_is_removed_after_the_current_one_is_imported(fleet):
    old = fleet.certificate(fleet.alice_old)
    fleet.host.hold(old, friendly='alice 2025')
    result = fleet.run()
    store = only_store(result)
    assert store['imported'] == ['alice'] and store['deferred'] == []
    assert [(r['serial'], r['reason'], r['identity'], r['thumbprint']) for r in store['removed']] == [
        (fleet.alice_old['serial'], 'superseded', 'alice', thumbprint(old))]
    assert store['removed'][0]['fingerprint_sha256'] == fleet.alice_old['fingerprint_sha256']
    assert store['removed'][0]['subject'] == old.subject.rfc4514_string()
    assert not fleet.host.holds(fleet.alice_old['fingerprint_sha256'])
    order = [a.get('state') for a in fleet.host.writes()]
    assert order.index('present') < order.index('absent')  # import (and verify) first, then remove


def test_expired_certificate_of_the_identity_is_removed_as_expired(fleet, monkeypatch):
    old = fleet.certificate(fleet.alice_old)
    fleet.host.hold(old)
    fleet.host.hold(fleet.certificate(fleet.alice))
    later = old.not_valid_after_utc + datetime.timedelta(days=1)
    monkeypatch.setattr(reconcile_windows, 'utc_now', lambda: later)
    store = only_store(fleet.run())
    assert store['present'] == ['alice']
    assert [(r['serial'], r['reason']) for r in store['removed']] == [(fleet.alice_old['serial'], 'expired')]


def test_another_identity_and_a_foreign_certificate_are_untouched(fleet):
    fleet.host.hold(fleet.certificate(fleet.bob))
    fleet.host.hold(fleet.certificate(fleet.foreign))
    store = only_store(fleet.run())
    assert [u['serial'] for u in store['unclaimed']] == [fleet.bob['serial']]
    assert [f['serial'] for f in store['foreign']] == [fleet.foreign['serial']]
    assert store['removed'] == []
    assert fleet.host.holds(fleet.bob['fingerprint_sha256'])
    assert fleet.host.holds(fleet.foreign['fingerprint_sha256'])
    assert [a for a in fleet.host.writes() if a['state'] == 'absent'] == []


def test_revoked_certificate_of_our_ca_is_removed_whoever_it_belongs_to(fleet):
    fleet.host.hold(fleet.certificate(fleet.bob))
    store = only_store(fleet.run(revoked_serials=[fleet.bob['serial']]))
    assert [(r['serial'], r['reason']) for r in store['removed']] == [(fleet.bob['serial'], 'revoked')]
    assert not fleet.host.holds(fleet.bob['fingerprint_sha256'])


def test_old_certificate_waits_while_the_current_one_cannot_be_imported(fleet):
    fleet.host.hold(fleet.certificate(fleet.alice_old))
    result = fleet.run(identities=[fleet.alice_wanted(with_p12=False)])
    store = only_store(result)
    assert [d['serial'] for d in store['deferred']] == [fleet.alice_old['serial']]
    assert store['deferred'][0]['thumbprint'] == thumbprint(fleet.certificate(fleet.alice_old))
    assert fleet.host.holds(fleet.alice_old['fingerprint_sha256'])


def test_failed_import_keeps_the_old_certificate_and_is_a_problem(fleet):
    fleet.host.hold(fleet.certificate(fleet.alice_old))
    fleet.host.failing_imports.add(fleet.alice['fingerprint_sha256'])
    result = fleet.run()
    store = only_store(result)
    assert result['failed'] is True and 'importing alice' in result['msg']
    assert store['missing'] == ['alice'] and store['imported'] == [] and store['removed'] == []
    assert [d['serial'] for d in store['deferred']] == [fleet.alice_old['serial']]
    assert fleet.host.holds(fleet.alice_old['fingerprint_sha256'])
    assert fleet.host.files == {}  # the remote folder goes on failure too


def test_import_reported_but_not_held_with_its_key_is_a_problem_and_the_old_one_stays(fleet):
    fleet.host.hold(fleet.certificate(fleet.alice_old))
    fleet.host.keyless_imports.add(fleet.alice['fingerprint_sha256'])
    result = fleet.run()
    store = only_store(result)
    assert result['failed'] is True and store['imported'] == [] and store['missing'] == ['alice']
    assert any('does not hold alice' in p for p in store['problems'])
    assert fleet.host.holds(fleet.alice_old['fingerprint_sha256']) and store['removed'] == []


def test_a_store_that_cannot_be_read_is_a_problem_and_nothing_is_written(fleet):
    fleet.host.read_error = 'Access is denied'
    result = fleet.run()
    store = only_store(result)
    assert result['failed'] is True and store['exists'] is None and 'Access is denied' in store['problems'][0]
    assert fleet.host.writes() == []


def test_failed_import_can_be_reported_without_failing(fleet):
    fleet.host.failing_imports.add(fleet.alice['fingerprint_sha256'])
    result = fleet.run(fail_on_problems=False)
    assert not result.get('failed') and result['summary']['problems'] == 1


# -- check mode, secrets, options ------------------------------------------------------------------------------------
def test_check_mode_predicts_and_makes_no_write_call(fleet):
    fleet.host.hold(fleet.certificate(fleet.alice_old))
    result = fleet.run(check_mode=True)
    store = only_store(result)
    assert fleet.host.writes() == [] and fleet.host.files == {}
    assert result['changed'] is True and store['imported'] == ['alice'] and store['ca_changed'] == 'add'
    assert [r['serial'] for r in store['removed']] == [fleet.alice_old['serial']]
    assert '(import) alice' in result['diff'][0]['after']
    assert fleet.host.holds(fleet.alice_old['fingerprint_sha256']) and not fleet.host.holds(
        fleet.alice['fingerprint_sha256'])


def test_no_password_or_pkcs12_in_the_result_or_the_read(fleet):
    result = fleet.run()
    text = json.dumps(result)
    p12 = open(fleet.alice_p12, 'rb').read()
    assert P12_PASSWORD not in text and base64.b64encode(p12).decode()[:40] not in text
    for name, args in fleet.host.calls:
        assert P12_PASSWORD not in json.dumps(args) or (name == STORE and args.get('password') == P12_PASSWORD)
        assert base64.b64encode(p12).decode()[:40] not in json.dumps(args)  # files travel, never bytes in args


def test_local_machine_store_is_read_and_written_there(fleet):
    store = only_store(fleet.run(windows_store_location='local_machine'))
    assert store['path'] == 'Cert:\\LocalMachine\\My' and store['imported'] == ['alice']
    assert fleet.host.holds(fleet.alice['fingerprint_sha256'], location='LocalMachine')
    imports = [a for a in fleet.host.writes() if a['store_name'] == 'My']
    assert imports[0]['key_storage'] == 'machine'


def test_a_call_without_identities_only_trusts_our_ca_and_touches_no_certificate(fleet):
    """The fleet's first call on a Windows host with CurrentUser stores, run as SYSTEM: our CA into
    LocalMachine\\Root, which a store user may not write; the certificates of LocalMachine\\My stay."""
    fleet.host.hold(fleet.certificate(fleet.alice_old), location='LocalMachine')
    result = fleet.run(identities=[], revoked_serials=[], windows_store_location='local_machine')
    store = only_store(result)
    assert store['ca_changed'] == 'add' and thumbprint(fleet.ca_certificate) in fleet.host.root['LocalMachine']
    assert store['removed'] == [] and len(store['unclaimed']) == 1 and store['problems'] == []
    assert [a['store_name'] for a in fleet.host.writes()] == ['Root']
    again = fleet.run(identities=[], revoked_serials=[], windows_store_location='local_machine')
    assert again['changed'] is False


def test_unknown_location_and_a_host_path_are_refused_before_the_host_is_touched(fleet):
    with pytest.raises(AnsibleActionFail, match='windows_store_location'):
        fleet.run(windows_store_location='machine')
    wanted = dict(fleet.alice_wanted(with_p12=False), pkcs12_path='C:\\t\\a.p12', pkcs12_password='x')
    with pytest.raises(AnsibleActionFail, match='pkcs12_src'):
        fleet.run(identities=[wanted])
    assert fleet.host.calls == []
    assert len(fleet.host.removed_tmp) == 2  # the remote folder goes on a refused input too


def test_pkcs12_of_another_certificate_is_refused_on_the_controller(fleet):
    wanted = dict(fleet.alice_wanted(), pkcs12_src=fleet.bob_p12)
    with pytest.raises(AnsibleActionFail, match='fingerprint'):
        fleet.run(identities=[wanted])
    assert fleet.host.calls == []


def test_windows_options_do_not_reach_the_linux_module(fleet):
    from ansible.plugins.shell.sh import ShellModule as PosixShell
    task = types.SimpleNamespace(args={'ca_certificate': fleet.ca_pem, 'identities': [fleet.alice_wanted(False)],
                                       'windows_store_location': 'local_machine'},
                                 check_mode=False, diff=False, async_val=0, action='certfleet.pki.endpoint_reconcile')
    shell = PosixShell()
    shell.tmpdir = None
    action = _EmulatedAction(task, types.SimpleNamespace(_shell=shell), types.SimpleNamespace(become=True),
                             None, None, None)
    action.host = fleet.host
    seen = []
    action._execute_module = lambda module_name=None, module_args=None, **kw: seen.append(
        (module_name, module_args)) or {'changed': False}
    action.run(task_vars={})
    assert seen[0][0] == 'certfleet.pki.endpoint_reconcile' and 'windows_store_location' not in seen[0][1]


# -- the listing -----------------------------------------------------------------------------------------------------
def test_listing_items_that_are_not_certificates_or_do_not_match_their_thumbprint_are_problems(fleet):
    certificate = fleet.certificate(fleet.bob)
    good = {'RawData': base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode(),
            'Thumbprint': thumbprint(certificate).lower(), 'HasPrivateKey': True, 'FriendlyName': None}
    listing = [good, {'RawData': 'not base64!', 'Thumbprint': 'AA'}, dict(good, Thumbprint='00' * 20)]
    entries, problems = reconcile_windows.parse_listing(listing)
    assert [(e.serial, e.has_key, e.nickname) for e in entries] == [(fleet.bob['serial'], True, '')]
    assert len(problems) == 2 and 'entry 1' in problems[0] and 'entry 2' in problems[1]
    single = reconcile_windows.parse_listing(good)[0]  # PowerShell may return a list of one as the item
    assert len(single) == 1
