# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The macOS keychain store of the reconcile call (endpoints.reconcile_keychain through reconcile_host).

macOS cannot run here: the keychain is FakeSecurity of test_keychain.py, an in-memory keychain that answers the
`security` command lines keychain.py builds in security's own output formats. Certificates, keys and PKCS#12 files
are real (the managed CA of the other unit tests). The host-rule tests put a real Firefox NSS database (real
certutil and pk12util) at the macOS place next to the emulated keychain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import reconcile
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import reconcile_keychain as rk

from test_keychain import ERROR_LOCKED, LOGIN_PASSWORD, FakeSecurity  # pylint: disable=import-error

P12_PASSWORD = 'p12 transport secret'
FAST = 1000
NSS_TOOLS = shutil.which('certutil') is not None and shutil.which('pk12util') is not None


def _certificate(pem: str):
    return x509.load_pem_x509_certificate(pem.encode('ascii'))


def sha1(record: dict) -> str:
    return _certificate(record['certificate']).fingerprint(hashes.SHA1()).hex().upper()


class Mac:
    """A home with a login keychain (FakeSecurity) and, on demand, a Firefox profile at the macOS place; alice (an
    old and a current certificate, same subject), bob, and an alice of a foreign CA."""

    def __init__(self, ca, make_ca, tmp_path):
        self.ca = ca
        self.ca_pem = open(ca.file('ca.pem')).read()
        self.alice_old = ca.ensure('alice')
        self.alice_old_p12 = self._export(ca, 'alice', tmp_path / 'alice-old.p12')
        self.alice = ca.ensure('alice', force=True)
        self.alice_p12 = self._export(ca, 'alice', tmp_path / 'alice.p12')  # AES: macOS could not read it as is
        self.bob = ca.ensure('bob')
        other = make_ca('other-ca')
        self.foreign = other.ensure('alice')
        self.home = str(tmp_path / 'home')
        self.keychain = os.path.join(self.home, 'Library', 'Keychains', 'login.keychain-db')
        os.makedirs(os.path.dirname(self.keychain))
        with open(self.keychain, 'wb') as handle:
            handle.write(b'kych')
        self.fake = FakeSecurity(self.keychain)
        self.profile = None

    @staticmethod
    def _export(ca, identity, path) -> str:
        ca.export(identity=identity, dest=str(path), password=P12_PASSWORD, iterations=FAST)
        return str(path)

    def hold(self, *records, key=True) -> None:
        """Put certificates in the keychain as a user's earlier import would have."""
        for record in records:
            self.fake.add(_certificate(record['certificate']), key=key)

    def firefox_profile(self) -> str:
        root = os.path.join(self.home, 'Library', 'Application Support', 'Firefox')
        self.profile = os.path.join(root, 'Profiles', 'abcd1234.default-release')
        os.makedirs(self.profile)
        with open(os.path.join(root, 'profiles.ini'), 'w') as handle:
            handle.write('[Profile0]\nName=default-release\nIsRelative=1\nPath=Profiles/abcd1234.default-release\n'
                         'Default=1\n')
        return self.profile

    def alice_wanted(self, with_p12=True) -> dict:
        wanted = {'identity': 'alice', 'serial': self.alice['serial'],
                  'fingerprint_sha256': self.alice['fingerprint_sha256'], 'certificate': self.alice['certificate']}
        if with_p12:
            wanted.update(pkcs12_path=self.alice_p12, pkcs12_password=P12_PASSWORD)
        return wanted

    def run(self, identities=None, keychain_password=None, trust_ca=True, runner=None, **params) -> dict:
        params.setdefault('homes', [self.home])
        params.setdefault('stores', ['keychain'])
        params.setdefault('system', 'Darwin')
        params.setdefault('ca_certificate', self.ca_pem)
        params.setdefault('keychain', rk.KeychainOptions(password=keychain_password, trust_ca=trust_ca,
                                                         runner=runner or self.fake))
        return reconcile.reconcile_host(identities=[self.alice_wanted()] if identities is None else identities,
                                        **params)

    def keys(self) -> set:
        return set(self.fake.keys)

    def write_commands(self) -> list:
        return [call[1] for call in self.fake.writes]


@pytest.fixture
def mac(ca, make_ca, tmp_path) -> Mac:
    return Mac(ca, make_ca, tmp_path)


def store(result, kind='keychain') -> dict:
    found = [s for s in result['stores'] if s['store'] == kind]
    assert len(found) == 1, result['stores']
    return found[0]


# -- missing, present --------------------------------------------------------------------------------------------------
def test_missing_identity_is_imported_verified_and_the_rerun_writes_nothing(mac):
    first = mac.run()
    outcome = store(first)
    assert first['changed'] is True and outcome['problems'] == []
    assert outcome['imported'] == ['alice'] and outcome['missing'] == [] and outcome['path'] == mac.keychain
    assert outcome['ca_changed'] == 'trust'
    assert sha1(mac.alice) in mac.keys()  # with its key: an identity
    ca_sha1 = _certificate(mac.ca_pem).fingerprint(hashes.SHA1()).hex().upper()
    assert mac.fake.trusted[ca_sha1] == {'ssl', 'basic'}
    commands = mac.write_commands()
    assert commands.index('import') < commands.index('add-trusted-cert')  # imports first, as for NSS
    # The AES PKCS#12 reached security re-packed under a one-time password, and the copy is gone.
    imported = [c for c in mac.fake.calls if c[1] == 'import'][0]
    assert imported[imported.index('-P') + 1] != P12_PASSWORD and not os.path.exists(imported[2])
    assert first['diff'] and mac.alice['serial'] in first['diff'][0]['after']

    mac.fake.calls.clear()
    again = mac.run()
    outcome = store(again)
    assert again['changed'] is False and again['diff'] == []
    assert outcome['present'] == ['alice'] and outcome['imported'] == [] and outcome['ca_changed'] is None
    assert mac.fake.calls and mac.fake.writes == []  # read, and not one write


def test_missing_without_pkcs12_is_reported_and_nothing_is_written(mac):
    result = mac.run([mac.alice_wanted(with_p12=False)], trust_ca=False)
    outcome = store(result)
    assert result['changed'] is False and outcome['missing'] == ['alice'] and outcome['imported'] == []
    assert mac.fake.writes == [] and mac.fake.certificates == {}


def test_current_certificate_without_its_key_is_replaced_by_the_identity(mac):
    mac.hold(mac.alice, key=False)
    outcome = store(mac.run(trust_ca=False))
    assert outcome['imported'] == ['alice'] and outcome['problems'] == []
    assert mac.write_commands() == ['delete-certificate', 'import']
    assert sha1(mac.alice) in mac.keys()


# -- removals: exactly the identity's own ----------------------------------------------------------------------------
def test_superseded_certificate_leaves_only_once_the_current_one_is_there(mac):
    mac.hold(mac.alice_old)
    waiting = store(mac.run([mac.alice_wanted(with_p12=False)], trust_ca=False))
    assert waiting['missing'] == ['alice'] and waiting['removed'] == []
    assert [(d['serial'], d['reason'], d['identity']) for d in waiting['deferred']] == [
        (mac.alice_old['serial'], 'superseded', 'alice')]
    assert mac.fake.writes == [] and sha1(mac.alice_old) in mac.keys()

    done = store(mac.run(trust_ca=False))
    assert done['imported'] == ['alice'] and done['deferred'] == []
    assert [(r['serial'], r['reason'], r['identity']) for r in done['removed']] == [
        (mac.alice_old['serial'], 'superseded', 'alice')]
    assert mac.keys() == {sha1(mac.alice)}
    commands = mac.write_commands()
    assert commands == ['import', 'delete-identity']  # the old one went after the new one was verified
    assert [c for c in mac.fake.calls if c[1] == 'delete-identity'][0][3] == sha1(mac.alice_old)
    assert mac.run(trust_ca=False)['changed'] is False


def test_another_identitys_and_a_foreign_certificate_are_untouched(mac):
    mac.hold(mac.alice_old, mac.bob, mac.foreign)
    # The foreign certificate's serial is in the list: a serial of another issuer is not ours to remove.
    result = mac.run(revoked_serials=[mac.foreign['serial']], trust_ca=False)
    outcome = store(result)
    assert [r['serial'] for r in outcome['removed']] == [mac.alice_old['serial']]
    assert [u['serial'] for u in outcome['unclaimed']] == [mac.bob['serial']]
    assert [f['serial'] for f in outcome['foreign']] == [mac.foreign['serial']]
    assert {sha1(mac.bob), sha1(mac.foreign), sha1(mac.alice)} == mac.keys()
    deleted = [c[3] for c in mac.fake.calls if c[1].startswith('delete-')]
    assert deleted == [sha1(mac.alice_old)]


def test_revoked_certificate_is_removed_even_while_the_current_one_is_missing(mac):
    mac.hold(mac.alice_old, mac.bob)
    result = mac.run([mac.alice_wanted(with_p12=False)], revoked_serials=[mac.alice_old['serial'].lower()],
                     trust_ca=False)
    outcome = store(result)
    assert outcome['missing'] == ['alice'] and outcome['deferred'] == []
    assert [(r['serial'], r['reason']) for r in outcome['removed']] == [(mac.alice_old['serial'], 'revoked')]
    assert mac.keys() == {sha1(mac.bob)}


def test_expired_certificate_is_removed_as_expired(mac):
    import datetime
    mac.hold(mac.alice_old, mac.alice)
    plan = reconcile.build_plan(identities=[mac.alice_wanted(with_p12=False)], ca_certificate=mac.ca_pem)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=4000)
    outcome = rk.reconcile_keychain(path=mac.keychain, plan=plan, check_mode=True, now=later,
                                    options=rk.KeychainOptions(runner=mac.fake, trust_ca=False))
    assert [(r['serial'], r['reason']) for r in outcome['removed']] == [(mac.alice_old['serial'], 'expired')]
    assert mac.fake.writes == []


# -- check mode ----------------------------------------------------------------------------------------------------
def test_check_mode_writes_nothing_and_predicts_what_the_run_does(mac):
    mac.hold(mac.alice_old)
    held = dict(mac.fake.certificates)
    predicted = mac.run(check_mode=True)
    guess = store(predicted)
    assert predicted['changed'] is True and mac.fake.writes == [] and mac.fake.certificates == held
    assert guess['imported'] == ['alice'] and guess['ca_changed'] == 'trust'
    assert [r['serial'] for r in guess['removed']] == [mac.alice_old['serial']] and guess['deferred'] == []
    assert '(import) alice' in predicted['diff'][0]['after'] and '(trust)' in predicted['diff'][0]['after']

    done = store(mac.run())
    for key in ('imported', 'removed', 'deferred', 'missing', 'ca_changed', 'changed'):
        assert done[key] == guess[key], key
    assert mac.run(check_mode=True)['changed'] is False


# -- failures stay in their store ------------------------------------------------------------------------------------
def test_locked_keychain_without_password_is_a_problem_and_nothing_changes(mac):
    mac.hold(mac.alice_old)
    mac.fake.locked = True
    held, keys = dict(mac.fake.certificates), mac.keys()
    result = mac.run()
    outcome = store(result)
    assert 'locked' in outcome['problems'][0] and 'keychain_password' in outcome['problems'][0]
    assert 'keychain: system' not in outcome['problems'][0]  # keychain.py's advice; not a store of this call
    assert outcome['missing'] == ['alice'] and outcome['imported'] == [] and outcome['removed'] == []
    assert [d['serial'] for d in outcome['deferred']] == [mac.alice_old['serial']]
    assert outcome['changed'] is False and outcome['ca_changed'] is None
    # The refused import was the only write tried: no trust change, no removal after it.
    assert mac.write_commands() == ['import']
    assert mac.fake.certificates == held and mac.keys() == keys

    unlocked = store(mac.run(keychain_password=LOGIN_PASSWORD))
    assert unlocked['problems'] == [] and unlocked['imported'] == ['alice']
    assert mac.fake.stdin[[c[1] for c in mac.fake.calls].index('unlock-keychain')] == LOGIN_PASSWORD + '\n'
    assert mac.keys() == {sha1(mac.alice)}


def test_wrong_keychain_password_is_a_problem_of_the_store(mac):
    mac.fake.locked = True
    outcome = store(mac.run(keychain_password='not it'))
    assert outcome['exists'] is None and 'wrong password' in outcome['problems'][0]
    assert 'not it' not in json.dumps(outcome)
    assert [c[1] for c in mac.fake.calls] == ['unlock-keychain']


class FailingImport(FakeSecurity):
    def do_import(self, rest, stdin):
        return 1, '', 'security: SecKeychainItemImport: Unknown format in import.\n'


def test_failed_import_keeps_the_old_certificate(mac):
    mac.fake = FailingImport(mac.keychain)
    mac.hold(mac.alice_old)
    outcome = store(mac.run(trust_ca=False))
    assert outcome['missing'] == ['alice'] and outcome['imported'] == []
    assert len(outcome['problems']) == 1 and 'importing alice' in outcome['problems'][0]
    assert 'Unknown format' in outcome['problems'][0]
    assert [d['serial'] for d in outcome['deferred']] == [mac.alice_old['serial']] and outcome['removed'] == []
    assert mac.keys() == {sha1(mac.alice_old)}
    assert 'delete-identity' not in mac.write_commands()


def test_import_that_security_reports_but_does_not_do_is_caught(mac):
    class Silent(FakeSecurity):
        def do_import(self, rest, stdin):
            return 0, '1 identity imported.\n', ''

    mac.fake = Silent(mac.keychain)
    mac.hold(mac.alice_old)
    outcome = store(mac.run(trust_ca=False))
    assert outcome['missing'] == ['alice'] and 'does not hold alice' in outcome['problems'][0]
    assert mac.keys() == {sha1(mac.alice_old)}


def test_trust_refused_headless_is_a_problem_and_the_import_is_still_done(mac):
    mac.fake.trust_fails = True
    outcome = store(mac.run())
    assert outcome['imported'] == ['alice'] and outcome['ca_changed'] is None
    assert len(outcome['problems']) == 1 and 'keychain_trust_ca: false' in outcome['problems'][0]
    assert sha1(mac.alice) in mac.keys()


def test_a_trust_change_refused_as_locked_stops_the_removals_too(mac):
    class LockedTrust(FakeSecurity):
        def do_add_trusted_cert(self, rest, stdin):
            if self.locked:
                return 1, '', 'SecTrustSettingsSetTrustSettings: User interaction is not allowed.\n'
            return super().do_add_trusted_cert(rest, stdin)

    mac.fake = LockedTrust(mac.keychain, locked=True)
    mac.hold(mac.alice, mac.alice_old)
    outcome = store(mac.run([mac.alice_wanted(with_p12=False)], revoked_serials=[mac.alice_old['serial']]))
    assert outcome['present'] == ['alice'] and outcome['removed'] == [] and outcome['ca_changed'] is None
    assert 'trusting the CA' in outcome['problems'][0] and 'keychain_trust_ca: false' in outcome['problems'][0]
    assert 'not removed: the keychain is locked' in outcome['problems'][1]
    assert mac.write_commands() == ['add-trusted-cert'] and sha1(mac.alice_old) in mac.keys()


def test_a_shared_key_is_never_deleted_with_the_old_certificate(mac, ca, tmp_path):
    """A renewal from the same key: delete-identity on the old certificate would take the new one's key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, 'carol')])).sign(key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM).decode('ascii')
    old = ca.ensure('carol', csr=pem)
    new = ca.ensure('carol', csr=pem, force=True)
    mac.hold(old, new)
    carol = {'identity': 'carol', 'fingerprint_sha256': new['fingerprint_sha256']}
    outcome = store(mac.run([carol], trust_ca=False))
    assert outcome['present'] == ['carol'] and outcome['removed'] == []
    assert 'shares its key' in outcome['problems'][0]
    assert mac.fake.writes == []


# -- which keychain ------------------------------------------------------------------------------------------------
def test_home_without_a_login_keychain_is_skipped_and_a_named_missing_keychain_is_a_problem(mac):
    os.unlink(mac.keychain)
    assert mac.run()['stores'] == []
    named = mac.run(keychain=rk.KeychainOptions(keychain='~/Library/Keychains/certfleet.keychain-db',
                                                runner=mac.fake))
    outcome = store(named)
    assert outcome['path'] == os.path.join(mac.home, 'Library/Keychains/certfleet.keychain-db')
    assert 'does not exist' in outcome['problems'][0] and mac.fake.calls == []


def test_an_absolute_keychain_path_is_for_one_home_only(mac, tmp_path):
    other = tmp_path / 'other-home'
    other.mkdir()
    with pytest.raises(InputError) as error:
        mac.run(homes=[mac.home, str(other)], keychain=rk.KeychainOptions(keychain=mac.keychain, runner=mac.fake))
    assert error.value.field == 'keychain' and mac.fake.calls == []
    outcome = store(mac.run(keychain=rk.KeychainOptions(keychain=mac.keychain, runner=mac.fake, trust_ca=False)))
    assert outcome['imported'] == ['alice']


@pytest.mark.parametrize('system, stores, words', [
    ('Linux', ['keychain'], 'does not exist on Linux'),
    ('Darwin', ['chromium'], 'does not exist on Darwin'),
    ('Darwin', ['safari'], 'unknown store safari'),
])
def test_stores_of_another_system_are_refused_before_anything_is_read(mac, system, stores, words):
    with pytest.raises(InputError) as error:
        mac.run(system=system, stores=stores)
    assert error.value.field == 'stores' and words in error.value.message
    assert mac.fake.calls == []


def test_the_default_stores_of_a_mac_are_firefox_and_the_keychain(mac):
    result = mac.run(stores=None, trust_ca=False, identities=[mac.alice_wanted(with_p12=False)])
    assert [s['store'] for s in result['stores']] == ['keychain']  # no Firefox profile in this home
    if NSS_TOOLS:
        mac.firefox_profile()
        result = mac.run(stores=None, trust_ca=False, identities=[mac.alice_wanted(with_p12=False)])
        assert sorted(s['store'] for s in result['stores']) == ['firefox', 'keychain']
        assert store(result, 'firefox')['path'] == mac.profile


# -- the host's rule across Firefox and the keychain ---------------------------------------------------------------
def hand_import(db, p12) -> None:
    os.makedirs(str(db), exist_ok=True)
    if not os.path.exists(os.path.join(str(db), 'cert9.db')):
        subprocess.run(['certutil', '-N', '-d', 'sql:%s' % db, '--empty-password'], capture_output=True, check=True)
    subprocess.run(['pk12util', '-i', p12, '-d', 'sql:%s' % db, '-W', P12_PASSWORD], capture_output=True,
                   check=True)


def nss_fingerprints(db) -> set:
    out = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines()[4:]:
        if line.strip():
            nickname = line.rsplit(None, 1)[0].strip()
            pem = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db, '-n', nickname, '-a'],
                                 capture_output=True, check=True).stdout
            found |= {c.fingerprint(hashes.SHA256()).hex().upper() for c in x509.load_pem_x509_certificates(pem)}
    return found


@pytest.mark.skipif(not NSS_TOOLS, reason='certutil and pk12util (libnss3-tools) are required')
def test_a_locked_keychain_keeps_the_old_certificate_in_firefox_too_until_the_host_is_complete(mac):
    profile = mac.firefox_profile()
    hand_import(profile, mac.alice_old_p12)
    mac.hold(mac.alice_old)
    mac.fake.locked = True
    first = mac.run(stores=['firefox', 'keychain'], trust_ca=False, firefox_certificate_selection='unmanaged')
    firefox, keychain = store(first, 'firefox'), store(first, 'keychain')
    assert keychain['problems'] and keychain['missing'] == ['alice']
    # Firefox was still done, but its old certificate waits: the keychain does not hold the current one yet.
    assert firefox['imported'] == ['alice'] and firefox['problems'] == [] and firefox['removed'] == []
    assert [d['serial'] for d in firefox['deferred']] == [mac.alice_old['serial']]
    assert mac.alice_old['fingerprint_sha256'] in nss_fingerprints(profile)

    predicted = mac.run(stores=['firefox', 'keychain'], trust_ca=False, keychain_password=LOGIN_PASSWORD,
                        firefox_certificate_selection='unmanaged', check_mode=True)
    for kind in ('firefox', 'keychain'):
        assert [r['serial'] for r in store(predicted, kind)['removed']] == [mac.alice_old['serial']], kind
    assert mac.alice_old['fingerprint_sha256'] in nss_fingerprints(profile) and sha1(mac.alice_old) in mac.keys()

    done = mac.run(stores=['firefox', 'keychain'], trust_ca=False, keychain_password=LOGIN_PASSWORD,
                   firefox_certificate_selection='unmanaged')
    assert store(done, 'keychain')['imported'] == ['alice'] and store(done, 'firefox')['present'] == ['alice']
    for kind in ('firefox', 'keychain'):
        assert [r['serial'] for r in store(done, kind)['removed']] == [mac.alice_old['serial']], kind
        assert store(done, kind)['deferred'] == []
    assert mac.alice_old['fingerprint_sha256'] not in nss_fingerprints(profile)
    assert mac.keys() == {sha1(mac.alice)}


@pytest.mark.skipif(not NSS_TOOLS, reason='certutil and pk12util (libnss3-tools) are required')
def test_a_firefox_store_that_cannot_take_the_import_keeps_the_old_one_in_the_keychain(mac):
    mac.firefox_profile()  # a profile Firefox never opened: no database, and none may be created
    mac.hold(mac.alice_old)
    result = mac.run(stores=['firefox', 'keychain'], trust_ca=False, create_db=False,
                     firefox_certificate_selection='unmanaged')
    assert store(result, 'firefox')['missing'] == ['alice']
    keychain = store(result, 'keychain')
    assert keychain['imported'] == ['alice'] and keychain['removed'] == []
    assert [d['serial'] for d in keychain['deferred']] == [mac.alice_old['serial']]
    assert mac.keys() == {sha1(mac.alice), sha1(mac.alice_old)}
    complete = mac.run(stores=['firefox', 'keychain'], trust_ca=False, firefox_certificate_selection='unmanaged')
    assert store(complete, 'firefox')['imported'] == ['alice']
    assert [r['serial'] for r in store(complete, 'keychain')['removed']] == [mac.alice_old['serial']]
    assert mac.keys() == {sha1(mac.alice)}


# -- secrets ------------------------------------------------------------------------------------------------------
def test_no_secret_in_results_reprs_or_leftover_files(mac, tmp_path, monkeypatch):
    private = tmp_path / 'tmp'  # not the shared /tmp, where other runs come and go
    private.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(private))
    mac.fake.locked = True
    result = mac.run(keychain_password=LOGIN_PASSWORD)
    text = json.dumps(result)
    assert store(result)['imported'] == ['alice']
    for secret in (P12_PASSWORD, LOGIN_PASSWORD, 'PRIVATE KEY'):
        assert secret not in text
    options = rk.KeychainOptions(password=LOGIN_PASSWORD, runner=mac.fake)
    assert LOGIN_PASSWORD not in repr(options)
    plan = reconcile.build_plan(identities=[mac.alice_wanted()], ca_certificate=mac.ca_pem)
    assert P12_PASSWORD not in repr(plan)
    assert not any(P12_PASSWORD in arg or LOGIN_PASSWORD in arg for call in mac.fake.calls for arg in call)
    imported = [c for c in mac.fake.calls if c[1] == 'import'][0]
    assert imported[2].startswith(str(private) + os.sep)  # the PKCS#12 copy was made there, and removed
    assert os.listdir(str(private)) == []


def test_locked_error_text_is_the_one_security_prints():
    # The store's locked detection rests on keychain.py's reading of this exact message.
    from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import keychain as kc
    assert kc.failure('importing alice', 1, '', ERROR_LOCKED, keychain='/k', field='pkcs12_path').field == \
        'keychain_password'
