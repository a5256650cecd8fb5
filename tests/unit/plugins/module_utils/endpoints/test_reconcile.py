# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""endpoints.reconcile against real NSS databases with the real certutil and pk12util (apt: libnss3-tools).

A temporary home holds a Firefox profile (through profiles.ini) and gets Chromium's nssdb; certificates come from
the managed CA library. What the stores hold is checked with certutil itself.
"""

from __future__ import annotations

import datetime
import glob
import hashlib
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

P12_PASSWORD = 'p12 transport secret'
FAST = 1000  # PBKDF2 rounds: these tests are not about PKCS#12 strength

pytestmark = pytest.mark.skipif(shutil.which('certutil') is None or shutil.which('pk12util') is None,
                                reason='certutil and pk12util (libnss3-tools) are required')


# -- helpers: certutil as an auditor would run it ------------------------------------------------------------------
def held(db) -> dict:
    """{SHA-256 fingerprint: trust} of every certificate certutil lists in ``db``."""
    out = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines()[4:]:
        if not line.strip():
            continue
        nickname, trust = line.rsplit(None, 1)
        pem = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db, '-n', nickname.strip(), '-a'],
                             capture_output=True, check=True).stdout
        for certificate in x509.load_pem_x509_certificates(pem):
            found[certificate.fingerprint(hashes.SHA256()).hex().upper()] = trust
    return found


def hand_import(db, p12) -> None:
    """What a user does by hand: pk12util into the database (created when missing)."""
    if not os.path.exists(os.path.join(str(db), 'cert9.db')):
        os.makedirs(str(db), exist_ok=True)
        subprocess.run(['certutil', '-N', '-d', 'sql:%s' % db, '--empty-password'], capture_output=True, check=True)
    subprocess.run(['pk12util', '-i', p12, '-d', 'sql:%s' % db, '-W', P12_PASSWORD], capture_output=True,
                   check=True)


def db_sums(db) -> dict:
    return {name: hashlib.sha256(open(os.path.join(str(db), name), 'rb').read()).hexdigest()
            for name in sorted(os.listdir(str(db))) if name.endswith('.db')}


class Fleet:
    """alice (an old and a current certificate, same subject), bob, and alice from a foreign CA; a home with one
    Firefox profile that Firefox has never opened."""

    def __init__(self, ca, make_ca, tmp_path):
        self.ca = ca
        self.ca_pem = open(ca.file('ca.pem')).read()
        self.ca_fingerprint = x509.load_pem_x509_certificate(self.ca_pem.encode()).fingerprint(
            hashes.SHA256()).hex().upper()
        self.alice_old = ca.ensure('alice')
        self.alice_old_p12 = self._export(ca, 'alice', tmp_path / 'alice-old.p12')
        self.alice = ca.ensure('alice', force=True)
        self.alice_p12 = self._export(ca, 'alice', tmp_path / 'alice.p12')
        self.bob = ca.ensure('bob')
        self.bob_p12 = self._export(ca, 'bob', tmp_path / 'bob.p12')
        other = make_ca('other-ca')
        self.foreign = other.ensure('alice')
        self.foreign_p12 = self._export(other, 'alice', tmp_path / 'alice-foreign.p12')
        self.home = str(tmp_path / 'home')
        firefox_root = os.path.join(self.home, '.mozilla', 'firefox')
        self.profile = os.path.join(firefox_root, 'abcd1234.default-release')
        os.makedirs(self.profile)
        with open(os.path.join(firefox_root, 'profiles.ini'), 'w') as handle:
            handle.write('[Profile0]\nName=default-release\nIsRelative=1\nPath=abcd1234.default-release\n'
                         'Default=1\n')
        self.chromium = os.path.join(self.home, '.local', 'share', 'pki', 'nssdb')

    @staticmethod
    def _export(ca, identity, path) -> str:
        ca.export(identity=identity, dest=str(path), password=P12_PASSWORD, iterations=FAST)
        return str(path)

    def alice_wanted(self, with_p12=True) -> dict:
        wanted = {'identity': 'alice', 'serial': self.alice['serial'],
                  'fingerprint_sha256': self.alice['fingerprint_sha256']}
        if with_p12:
            wanted.update(pkcs12_path=self.alice_p12, pkcs12_password=P12_PASSWORD)
        return wanted

    def bob_wanted(self, with_p12=True) -> dict:
        wanted = {'identity': 'bob', 'fingerprint_sha256': self.bob['fingerprint_sha256']}
        if with_p12:
            wanted.update(pkcs12_path=self.bob_p12, pkcs12_password=P12_PASSWORD)
        return wanted

    def run(self, identities=None, **params) -> dict:
        params.setdefault('homes', [self.home])
        params.setdefault('ca_certificate', self.ca_pem)
        return reconcile.reconcile_host(identities=[self.alice_wanted()] if identities is None else identities,
                                        **params)


@pytest.fixture
def fleet(ca, make_ca, tmp_path) -> Fleet:
    return Fleet(ca, make_ca, tmp_path)


def store(result, kind) -> dict:
    found = [s for s in result['stores'] if s['store'] == kind]
    assert len(found) == 1, result['stores']
    return found[0]


# -- missing, present ------------------------------------------------------------------------------------------------
def test_missing_identity_is_imported_in_every_store_and_the_rerun_changes_nothing(fleet):
    first = fleet.run()
    assert first['changed'] is True
    for kind, db in (('firefox', fleet.profile), ('chromium', fleet.chromium)):
        outcome = store(first, kind)
        assert outcome['imported'] == ['alice'] and outcome['created'] is True and outcome['problems'] == []
        assert outcome['ca_changed'] in ('add', 'trust') and outcome['path'] == db
        holds = held(db)
        assert fleet.alice['fingerprint_sha256'] in holds
        assert 'T' in holds[fleet.ca_fingerprint]
    assert first['summary']['imported'] == 2 and first['summary']['stores'] == 2
    assert first['diff'] and all('alice' in d['after'] for d in first['diff'])

    sums = {db: db_sums(db) for db in (fleet.profile, fleet.chromium)}
    again = fleet.run()
    assert again['changed'] is False and again['diff'] == []
    for kind in ('firefox', 'chromium'):
        outcome = store(again, kind)
        assert outcome['present'] == ['alice'] and outcome['imported'] == [] and outcome['removed'] == []
    assert {db: db_sums(db) for db in (fleet.profile, fleet.chromium)} == sums


def test_missing_without_pkcs12_is_reported_and_nothing_is_created(fleet):
    result = fleet.run([fleet.alice_wanted(with_p12=False)])
    assert result['changed'] is False
    for kind in ('firefox', 'chromium'):
        assert store(result, kind)['missing'] == ['alice'] and store(result, kind)['exists'] is False
    assert not os.path.exists(os.path.join(fleet.profile, 'cert9.db')) and not os.path.exists(fleet.chromium)
    assert result['summary']['missing'] == 2


# -- removals: exactly the identity's own ----------------------------------------------------------------------------
def test_superseded_certificate_of_the_same_identity_is_removed(fleet):
    hand_import(fleet.profile, fleet.alice_old_p12)
    result = fleet.run(stores=['firefox'])
    outcome = store(result, 'firefox')
    assert outcome['imported'] == ['alice']
    assert [(r['identity'], r['serial'], r['reason']) for r in outcome['removed']] == [
        ('alice', fleet.alice_old['serial'], 'superseded')]
    holds = held(fleet.profile)
    assert fleet.alice['fingerprint_sha256'] in holds and fleet.alice_old['fingerprint_sha256'] not in holds
    assert fleet.run(stores=['firefox'])['changed'] is False


def test_older_certificate_waits_while_the_current_one_is_missing(fleet):
    """Without a PKCS#12 for the missing current certificate, the older one stays: the store keeps a working one."""
    hand_import(fleet.profile, fleet.alice_old_p12)
    unknown = store(fleet.run([fleet.alice_wanted(with_p12=False)], stores=['firefox']), 'firefox')
    assert [u['serial'] for u in unknown['unclaimed']] == [fleet.alice_old['serial']]  # subject not known
    assert unknown['ca_changed'] == 'trust'  # the CA came with the hand-imported chain, without trust
    wanted = dict(fleet.alice_wanted(with_p12=False), certificate=fleet.alice['certificate'])
    outcome = store(fleet.run([wanted], stores=['firefox']), 'firefox')
    assert outcome['missing'] == ['alice'] and outcome['removed'] == []
    assert [(d['serial'], d['reason']) for d in outcome['deferred']] == [(fleet.alice_old['serial'], 'superseded')]
    assert fleet.alice_old['fingerprint_sha256'] in held(fleet.profile)
    done = store(fleet.run(stores=['firefox']), 'firefox')
    assert done['imported'] == ['alice'] and [r['serial'] for r in done['removed']] == [fleet.alice_old['serial']]


def _set_token_password(db, tmp_path, old: str, new: str) -> None:
    (tmp_path / 'old.pw').write_text(old + '\n')
    (tmp_path / 'new.pw').write_text(new + '\n')
    subprocess.run(['certutil', '-W', '-d', 'sql:%s' % db, '-f', str(tmp_path / 'old.pw'), '-@',
                    str(tmp_path / 'new.pw')], capture_output=True, check=True)


def test_older_certificates_leave_the_host_only_when_every_store_has_the_current_one(fleet, tmp_path):
    """The host's rule: an import that fails in one store keeps the older certificate in EVERY store of the host
    (the renew-then-revoke-old guarantee); the run that completes the host removes it everywhere."""
    hand_import(fleet.profile, fleet.alice_old_p12)
    hand_import(fleet.chromium, fleet.alice_old_p12)
    _set_token_password(fleet.profile, tmp_path, '', 'primary-secret')
    predicted = fleet.run(check_mode=True)
    assert store(predicted, 'chromium')['removed'] == [] and store(predicted, 'chromium')['imported'] == ['alice']
    result = fleet.run()
    firefox_store, chromium_store = store(result, 'firefox'), store(result, 'chromium')
    assert firefox_store['missing'] == ['alice'] and 'primary' in firefox_store['problems'][0]
    assert chromium_store['imported'] == ['alice'] and chromium_store['removed'] == []
    assert [d['serial'] for d in chromium_store['deferred']] == [fleet.alice_old['serial']]
    assert fleet.alice_old['fingerprint_sha256'] in held(fleet.chromium)  # kept: the host is not complete
    _set_token_password(fleet.profile, tmp_path, 'primary-secret', '')
    predicted = fleet.run(check_mode=True)
    assert [r['serial'] for r in store(predicted, 'chromium')['removed']] == [fleet.alice_old['serial']]
    assert fleet.alice_old['fingerprint_sha256'] in held(fleet.chromium)  # check mode changed nothing
    done = fleet.run()
    assert store(done, 'firefox')['imported'] == ['alice']
    for kind, db in (('firefox', fleet.profile), ('chromium', fleet.chromium)):
        assert [r['serial'] for r in store(done, kind)['removed']] == [fleet.alice_old['serial']]
        assert store(done, kind)['deferred'] == []
        holds = held(db)
        assert fleet.alice['fingerprint_sha256'] in holds and fleet.alice_old['fingerprint_sha256'] not in holds
    assert fleet.run()['changed'] is False


def test_certificate_the_ca_lists_as_superseded_is_removed_even_with_another_subject(fleet):
    renamed = fleet.ca.ensure('carol', subject={'CN': 'carol', 'O': 'Old Name'})
    renamed_p12 = Fleet._export(fleet.ca, 'carol', os.path.join(os.path.dirname(fleet.home), 'carol-old.p12'))
    current = fleet.ca.ensure('carol', subject={'CN': 'carol', 'O': 'New Name'})
    current_p12 = Fleet._export(fleet.ca, 'carol', os.path.join(os.path.dirname(fleet.home), 'carol.p12'))
    hand_import(fleet.profile, renamed_p12)
    carol = {'identity': 'carol', 'fingerprint_sha256': current['fingerprint_sha256'],
             'pkcs12_path': current_p12, 'pkcs12_password': P12_PASSWORD}
    by_subject = store(fleet.run([carol], stores=['firefox'], check_mode=True), 'firefox')
    assert by_subject['removed'] == [] and [u['serial'] for u in by_subject['unclaimed']] == [renamed['serial']]
    carol['superseded_fingerprints_sha256'] = [renamed['fingerprint_sha256']]
    outcome = store(fleet.run([carol], stores=['firefox']), 'firefox')
    assert [(r['serial'], r['reason']) for r in outcome['removed']] == [(renamed['serial'], 'superseded')]
    assert renamed['fingerprint_sha256'] not in held(fleet.profile)


def test_revoked_certificate_reimported_by_hand_is_removed(fleet):
    fleet.run(stores=['firefox'])
    fleet.ca.revoke(serial=fleet.alice_old['serial'], reason='key_compromise')
    hand_import(fleet.profile, fleet.alice_old_p12)
    assert fleet.alice_old['fingerprint_sha256'] in held(fleet.profile)
    result = fleet.run(stores=['firefox'], revoked_serials=[fleet.alice_old['serial'].lower()])
    outcome = store(result, 'firefox')
    assert outcome['present'] == ['alice'] and outcome['imported'] == []
    assert [(r['serial'], r['reason']) for r in outcome['removed']] == [(fleet.alice_old['serial'], 'revoked')]
    holds = held(fleet.profile)
    assert fleet.alice_old['fingerprint_sha256'] not in holds and fleet.alice['fingerprint_sha256'] in holds


def test_another_identity_of_our_ca_is_untouched(fleet):
    hand_import(fleet.profile, fleet.bob_p12)
    outcome = store(fleet.run(stores=['firefox']), 'firefox')
    assert outcome['imported'] == ['alice'] and outcome['removed'] == []
    assert [u['serial'] for u in outcome['unclaimed']] == [fleet.bob['serial']]
    assert fleet.bob['fingerprint_sha256'] in held(fleet.profile)
    # both identities carried: each is present, neither removes the other
    both = fleet.run([fleet.alice_wanted(), fleet.bob_wanted()], stores=['firefox'])
    assert both['changed'] is False and sorted(store(both, 'firefox')['present']) == ['alice', 'bob']


def test_a_subject_two_identities_share_claims_nothing(fleet):
    """dave was issued with alice's subject: alice's older certificate could be either one's, so it stays."""
    dave = fleet.ca.ensure('dave', subject={'CN': 'alice'})
    hand_import(fleet.profile, fleet.alice_old_p12)
    wanted = [fleet.alice_wanted(), {'identity': 'dave', 'fingerprint_sha256': dave['fingerprint_sha256'],
                                     'certificate': dave['certificate']}]
    outcome = store(fleet.run(wanted, stores=['firefox']), 'firefox')
    assert outcome['imported'] == ['alice'] and outcome['missing'] == ['dave'] and outcome['removed'] == []
    assert [u['serial'] for u in outcome['unclaimed']] == [fleet.alice_old['serial']]
    assert fleet.alice_old['fingerprint_sha256'] in held(fleet.profile)
    # the CA's record settles it
    wanted[0]['superseded_fingerprints_sha256'] = [fleet.alice_old['fingerprint_sha256']]
    exact = store(fleet.run(wanted, stores=['firefox']), 'firefox')
    assert [(r['identity'], r['serial']) for r in exact['removed']] == [('alice', fleet.alice_old['serial'])]


def test_foreign_certificate_is_reported_and_untouched(fleet):
    """Same subject as alice's, issued by another CA with the same CA name: never ours to remove."""
    hand_import(fleet.profile, fleet.foreign_p12)
    result = fleet.run(stores=['firefox'], revoked_serials=[fleet.foreign['serial']])
    outcome = store(result, 'firefox')
    assert outcome['removed'] == [] and [f['serial'] for f in outcome['foreign']] == [fleet.foreign['serial']]
    assert result['summary']['foreign'] == 1
    assert fleet.foreign['fingerprint_sha256'] in held(fleet.profile)


def test_expired_certificate_of_the_identity_is_removed_as_expired(fleet):
    hand_import(fleet.profile, fleet.alice_old_p12)
    hand_import(fleet.profile, fleet.alice_p12)
    plan = reconcile.build_plan(identities=[fleet.alice_wanted()], ca_certificate=fleet.ca_pem)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=4000)
    outcome = reconcile.reconcile_store(kind='firefox', path=fleet.profile, plan=plan, check_mode=True, now=later)
    assert [(r['serial'], r['reason']) for r in outcome['removed']] == [(fleet.alice_old['serial'], 'expired')]


# -- check mode, safety, secrets ---------------------------------------------------------------------------------------
def test_check_mode_predicts_and_changes_nothing(fleet):
    hand_import(fleet.profile, fleet.alice_old_p12)
    sums = db_sums(fleet.profile)
    result = fleet.run(check_mode=True)
    firefox_store = store(result, 'firefox')
    assert result['changed'] is True and firefox_store['imported'] == ['alice']
    assert [r['serial'] for r in firefox_store['removed']] == [fleet.alice_old['serial']]
    assert store(result, 'chromium')['created'] is True
    assert db_sums(fleet.profile) == sums and not os.path.exists(fleet.chromium)
    assert fleet.alice['fingerprint_sha256'] not in held(fleet.profile)
    assert any('(import) alice' in d['after'] for d in result['diff'])


def test_planted_symlink_is_refused_and_the_other_stores_are_still_done(fleet, tmp_path):
    hand_import(fleet.profile, fleet.alice_old_p12)
    target = tmp_path / 'elsewhere.db'
    target.write_bytes(b'not yours')
    os.unlink(os.path.join(fleet.profile, 'key4.db'))
    os.symlink(str(target), os.path.join(fleet.profile, 'key4.db'))
    result = fleet.run()
    firefox_store = store(result, 'firefox')
    assert firefox_store['problems'] and 'symbolic link' in firefox_store['problems'][0]
    assert firefox_store['changed'] is False
    assert target.read_bytes() == b'not yours'
    assert store(result, 'chromium')['imported'] == ['alice']
    assert result['summary']['with_problems'] == 1


def test_no_secret_in_the_result_and_no_temporary_file_left(fleet):
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), 'certfleet-*')))
    hand_import(fleet.profile, fleet.alice_old_p12)
    result = fleet.run([fleet.alice_wanted(), fleet.bob_wanted()], db_password=None)
    text = json.dumps(result)
    assert P12_PASSWORD not in text and 'PRIVATE KEY' not in text
    assert store(result, 'firefox')['imported'] == ['alice', 'bob']
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), 'certfleet-*'))) == before


# -- inputs --------------------------------------------------------------------------------------------------------
def test_a_pkcs12_that_is_not_the_named_certificate_is_refused_before_any_store(fleet):
    wrong = dict(fleet.alice_wanted(), pkcs12_path=fleet.alice_old_p12)
    with pytest.raises(InputError, match='fingerprint'):
        fleet.run([wrong])
    foreign = {'identity': 'alice', 'fingerprint_sha256': fleet.foreign['fingerprint_sha256'],
               'pkcs12_path': fleet.foreign_p12, 'pkcs12_password': P12_PASSWORD}
    with pytest.raises(InputError):
        fleet.run([foreign])
    assert not os.path.exists(os.path.join(fleet.profile, 'cert9.db'))


def test_firefox_preferences_are_set_when_asked(fleet):
    result = fleet.run(stores=['firefox'], firefox_certificate_selection='auto')
    assert store(result, 'firefox')['preferences_changed'] is True
    with open(os.path.join(fleet.profile, 'user.js')) as handle:
        assert 'Select Automatically' in handle.read()
    assert fleet.run(stores=['firefox'], firefox_certificate_selection='auto')['changed'] is False


# -- a real user's home, as root -----------------------------------------------------------------------------------
ALICE_UID = 54331


@pytest.mark.skipif(os.geteuid() != 0, reason='switching to a home owner needs root')
def test_a_users_home_is_worked_in_with_the_users_rights_and_planted_links_lead_nowhere(fleet):
    base = tempfile.mkdtemp(prefix='certfleet-homes-', dir='/tmp')
    try:
        os.chmod(base, 0o755)
        home = os.path.join(base, 'alice')
        shutil.copytree(fleet.home, home)
        subprocess.run(['chown', '-R', '%d:%d' % (ALICE_UID, ALICE_UID), home], check=True)
        os.chmod(home, 0o700)
        secret_dir = os.path.join(base, 'root-only')
        os.mkdir(secret_dir, 0o755)
        # Chromium's folder planted as a link to a root folder: not written through
        os.makedirs(os.path.join(home, '.local', 'share', 'pki'))
        os.symlink(secret_dir, os.path.join(home, '.local', 'share', 'pki', 'nssdb'))
        os.makedirs(os.path.join(secret_dir, 'x'))
        subprocess.run(['chown', '-hR', '%d:%d' % (ALICE_UID, ALICE_UID), os.path.join(home, '.local')], check=True)
        result = fleet.run(homes=[home])
        firefox_store = store(result, 'firefox')
        assert firefox_store['imported'] == ['alice'] and firefox_store['owner'] == str(ALICE_UID)
        profile = os.path.join(home, '.mozilla', 'firefox', 'abcd1234.default-release')
        for name in ('cert9.db', 'key4.db'):
            assert os.stat(os.path.join(profile, name)).st_uid == ALICE_UID
        chromium = store(result, 'chromium')
        assert chromium['imported'] == [] and 'symbolic link' in chromium['problems'][0]
        assert os.listdir(secret_dir) == ['x']
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_module_marks_every_secret_no_log():
    from ansible_collections.certfleet.pki.plugins.modules import endpoint_reconcile as module
    assert module.IDENTITY_SPEC['pkcs12_password']['no_log'] is True
    source = open(module.__file__).read()
    assert "'db_password': {'type': 'str', 'no_log': True}" in source


def test_a_home_named_twice_is_visited_once_and_a_trust_change_shows_in_the_diff(fleet):
    hand_import(fleet.profile, fleet.alice_p12)  # the CA comes with the chain, without trust
    result = fleet.run(homes=[fleet.home, fleet.home + '/'], stores=['firefox'])
    assert result['summary']['stores'] == 1
    outcome = store(result, 'firefox')
    assert outcome['present'] == ['alice'] and outcome['ca_changed'] == 'trust'
    assert len(result['diff']) == 1 and '[T,,]' in result['diff'][0]['after']
