# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root in other people's homes: planted links and paths lead nowhere root's files are.

These tests need root (they switch to a home owner's uid for real, with fork and setuid); as any other user they
are skipped, and pytest prints why. The "users" are uids without a passwd entry, so nothing is added to the
machine's accounts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile

import pytest
from ansible_collections.certfleet.pki.plugins.module_utils.common import owner as owner_mod
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import apple_profile as ap
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import firefox, nss

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='switching to a home owner needs root')

ALICE = 54321
MALLORY = 54322
P12_PASSWORD = 'transport-only-password'


def snapshot(path: str) -> tuple:
    """Content digest, owner and mode of a file or folder (its tree, for a folder)."""
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode):
        entries = []
        for root, dirs, files in os.walk(path):
            for name in sorted(dirs + files):
                entries.append((os.path.relpath(os.path.join(root, name), path), snapshot(os.path.join(root, name))))
        return ('dir', info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), tuple(entries))
    with open(path, 'rb') as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return ('file', info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), digest)


@pytest.fixture
def base():
    """A folder every uid may traverse (pytest's own tmp folders are root's 0700)."""
    folder = tempfile.mkdtemp(prefix='certfleet-homes-', dir='/tmp')
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def home(base):
    path = os.path.join(base, 'alice')
    os.mkdir(path, 0o700)
    os.chown(path, ALICE, ALICE)
    return path


@pytest.fixture
def root_secret(base):
    """A root-owned file and folder that a planted link points at."""
    folder = os.path.join(base, 'root-only')
    os.mkdir(folder, 0o755)
    secret = os.path.join(folder, 'shadow')
    with open(secret, 'w') as handle:
        handle.write('root:$6$secret:19000:0:99999:7:::\n')
    os.chmod(secret, 0o644)
    return folder, secret


def as_alice(path: str, *args):
    """Make ``path`` (and more) alice's, as she could have made it herself."""
    for one in (path,) + args:
        os.lchown(one, ALICE, ALICE)


# -- who controls a path ---------------------------------------------------------------------------------------------
def test_root_owned_path_has_no_controller(base):
    folder = os.path.join(base, 'kiosk')
    os.mkdir(folder, 0o700)
    assert owner_mod.path_controller(os.path.join(folder, 'profile', 'user.js')) is None


def test_first_folder_root_does_not_own_decides(home):
    inner = os.path.join(home, '.mozilla')
    os.mkdir(inner)
    os.chown(inner, MALLORY, MALLORY)  # deeper owners do not matter: alice can rename it away
    controller = owner_mod.path_controller(os.path.join(inner, 'firefox'))
    assert (controller.uid, controller.gid, controller.name) == (ALICE, ALICE, str(ALICE))


def test_a_root_link_is_followed_a_user_link_ends_the_walk(base, home):
    root_link = os.path.join(base, 'homes')
    os.symlink(base, root_link)
    assert owner_mod.path_controller(os.path.join(root_link, 'alice', 'x')).uid == ALICE
    planted = os.path.join(base, 'planted')
    os.symlink('/etc', planted)
    os.lchown(planted, ALICE, ALICE)
    assert owner_mod.path_controller(os.path.join(planted, 'passwd')).uid == ALICE


def test_a_root_folder_anyone_may_write_is_refused(base):
    shared = os.path.join(base, 'shared')
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    with pytest.raises(owner_mod.UnsafePathError, match='others may write'):
        owner_mod.path_controller(os.path.join(shared, 'x'))
    os.chmod(shared, 0o1777)  # sticky, like /tmp: entries of others cannot be renamed
    assert owner_mod.path_controller(os.path.join(shared, 'x')) is None


def test_unknown_user_is_an_error_naming_the_field():
    with pytest.raises(owner_mod.UnsafePathError, match="user 'certfleet-no-such-user' does not exist") as caught:
        owner_mod.owner_by_name('certfleet-no-such-user', 'users')
    assert caught.value.field == 'users' and caught.value.code == 'unsafe_path'


# -- working as the owner --------------------------------------------------------------------------------------------
def _write(path: str, text: str) -> str:
    with open(path, 'w') as handle:
        handle.write(text)
    return '%d:%d' % (os.geteuid(), os.getegid())


def test_work_runs_with_the_owners_ids_and_files_are_theirs(home):
    target = os.path.join(home, 'note')
    who = owner_mod.run_as(owner_mod.path_controller(target), _write, path=target, text='hello')
    assert who == '%d:%d' % (ALICE, ALICE)
    info = os.stat(target)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (ALICE, ALICE, 0o600)


def test_a_planted_link_to_a_root_file_cannot_be_written_through(home, root_secret):
    _folder, secret = root_secret
    before = snapshot(secret)
    link = os.path.join(home, 'note')
    os.symlink(secret, link)
    as_alice(link)
    with pytest.raises(owner_mod.UnsafePathError, match='as user %d: .*Permission denied' % ALICE):
        owner_mod.run_as(owner_mod.path_controller(link), _write, path=link, text='pwned')
    assert snapshot(secret) == before


def test_certfleet_errors_cross_back_with_field_and_code(home):
    def refuse():
        raise InputError('is not a profile folder', 'profile')
    with pytest.raises(InputError) as caught:
        owner_mod.run_as(owner_mod.path_controller(home), refuse)
    assert caught.value.field == 'profile' and caught.value.code == 'invalid_input'
    assert caught.value.message == 'profile: is not a profile folder'


def test_contents_reach_the_owner_as_private_files(home, base):
    private = os.path.join(base, 'root-private')
    os.mkdir(private, 0o700)
    source = os.path.join(private, 'client.p12')
    with open(source, 'wb') as handle:
        handle.write(b'bytes only root may read')

    def read(path):
        info = os.stat(path)
        with open(path, 'rb') as handle:
            return handle.read(), info.st_uid, stat.S_IMODE(info.st_mode), os.path.dirname(path)
    with open(source, 'rb') as handle:
        data = handle.read()
    content, uid, mode, folder = owner_mod.run_as(owner_mod.path_controller(home), read, contents={'path': data})
    assert (content, uid, mode) == (b'bytes only root may read', ALICE, 0o600)
    assert not os.path.exists(folder), 'the private copy is removed afterwards'


# -- Firefox's user.js -----------------------------------------------------------------------------------------------
@pytest.fixture
def profile(home):
    folder = os.path.join(home, 'profile')
    os.mkdir(folder, 0o700)
    os.chown(folder, ALICE, ALICE)
    return folder


def prefs(profile_path, **extra):
    return owner_mod.run_as(owner_mod.acting_owner(profile_path), firefox.ensure_user_prefs, profile=profile_path,
                            prefs={'security.default_personal_cert': 'Select Automatically'}, **extra)


def test_user_js_is_written_by_the_owner_and_kept_idempotent(profile):
    path = os.path.join(profile, 'user.js')
    with open(path, 'w') as handle:
        handle.write('user_pref("browser.startup.page", 3);\n')
    os.chown(path, ALICE, ALICE)
    os.chmod(path, 0o640)
    assert prefs(profile, check_mode=True)['changed'] is True
    assert 'certfleet' not in open(path).read(), 'check mode writes nothing'
    assert prefs(profile)['changed'] is True
    text = open(path).read()
    assert text.startswith('user_pref("browser.startup.page", 3);\n')
    assert 'user_pref("security.default_personal_cert", "Select Automatically");' in text
    info = os.stat(path)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (ALICE, 0o640)
    assert prefs(profile)['changed'] is False
    removed = owner_mod.run_as(owner_mod.acting_owner(profile), firefox.ensure_user_prefs, profile=profile,
                               prefs={}, state='absent')
    assert removed['changed'] is True
    assert open(path).read() == 'user_pref("browser.startup.page", 3);\n'


def test_user_js_linked_to_a_root_file_is_refused_and_the_file_unchanged(profile, root_secret):
    _folder, secret = root_secret
    before = snapshot(secret)
    link = os.path.join(profile, 'user.js')
    os.symlink(secret, link)
    as_alice(link)
    with pytest.raises(owner_mod.UnsafePathError, match='user.js is a symbolic link') as caught:
        prefs(profile)
    assert caught.value.field == 'profile'
    assert snapshot(secret) == before
    assert os.readlink(link) == secret


def test_profile_folder_linked_to_a_root_folder_is_refused(home, root_secret):
    folder, _secret = root_secret
    before = snapshot(folder)
    link = os.path.join(home, 'profile')
    os.symlink(folder, link)
    as_alice(link)
    with pytest.raises(InputError, match='symbolic link'):
        prefs(link)
    assert snapshot(folder) == before


# -- NSS databases ---------------------------------------------------------------------------------------------------
needs_nss = pytest.mark.skipif(shutil.which('certutil') is None or shutil.which('pk12util') is None,
                               reason='certutil/pk12util (libnss3-tools) are not installed')


@pytest.fixture
def transfer(ca, base):
    """The PKCS#12 and CA in a root-only transfer folder, as the deploy role leaves them."""
    folder = os.path.join(base, 'transfer')
    os.mkdir(folder, 0o700)
    ca.ensure('alice')
    p12 = os.path.join(folder, 'client.p12')
    ca.export(identity='alice', dest=p12, password=P12_PASSWORD, iterations=1000)
    ca_pem = os.path.join(folder, 'ca.pem')
    shutil.copy(ca.file('ca.pem'), ca_pem)
    return p12, ca_pem


def nss_import(db, transfer, **extra):
    p12, ca_pem = transfer
    return nss.as_database_owner(nss.ensure_nss_certificate, db=db, create_db=True, pkcs12_path=p12,
                                 pkcs12_password=P12_PASSWORD, ca_certificate=ca_pem, **extra)


@needs_nss
def test_nss_database_is_created_and_filled_as_the_homes_owner(home, transfer):
    db = os.path.join(home, '.local', 'share', 'pki', 'nssdb')
    result = nss_import(db, transfer)
    assert result['created'] is True and result['imported']
    for name in ('cert9.db', 'key4.db'):
        info = os.stat(os.path.join(db, name))
        assert info.st_uid == ALICE, name
    for folder in (db, os.path.dirname(db)):
        info = os.stat(folder)
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (ALICE, 0o700)
    assert nss_import(db, transfer)['changed'] is False
    listed = nss.as_database_owner(nss.nss_certificate_info, db=db, issuer=transfer[1])
    assert listed['count'] == 1 and listed['certificates'][0]['has_key'] is True


@needs_nss
def test_nssdb_folder_linked_to_a_root_folder_is_refused(home, transfer, root_secret):
    folder, _secret = root_secret
    before = snapshot(folder)
    pki = os.path.join(home, '.pki')
    os.mkdir(pki)
    link = os.path.join(pki, 'nssdb')
    os.symlink(folder, link)
    as_alice(pki, link)
    with pytest.raises(owner_mod.UnsafePathError,
                       match='user %d may not write %s .which leads to %s' % (ALICE, link, folder)) as caught:
        nss_import(link, transfer)
    assert caught.value.field == 'db'
    assert snapshot(folder) == before


@needs_nss
def test_nss_file_linked_elsewhere_is_refused_even_for_reading(home, transfer, root_secret):
    _folder, secret = root_secret
    before = snapshot(secret)
    db = os.path.join(home, 'profile')
    nss_import(db, transfer)
    os.unlink(os.path.join(db, 'key4.db'))
    os.symlink(secret, os.path.join(db, 'key4.db'))
    as_alice(os.path.join(db, 'key4.db'))
    for operation in (nss.ensure_nss_certificate, nss.nss_certificate_info):
        with pytest.raises(owner_mod.UnsafePathError, match='key4.db is a symbolic link'):
            nss.as_database_owner(operation, db=db)
    assert snapshot(secret) == before


@needs_nss
def test_profile_path_planted_in_profiles_ini_is_opened_with_the_users_rights(home, transfer, root_secret):
    """profiles.ini is the user's file: a profile it names outside the home is still worked on as the user."""
    folder, _secret = root_secret
    before = snapshot(folder)
    root = os.path.join(home, '.mozilla', 'firefox')
    os.makedirs(root)
    with open(os.path.join(root, 'profiles.ini'), 'w') as handle:
        handle.write('[Profile0]\nName=default\nIsRelative=0\nPath=%s\nDefault=1\n' % folder)
    subprocess.run(['chown', '-R', '%d:%d' % (ALICE, ALICE), os.path.join(home, '.mozilla')], check=True)
    found = firefox.firefox_profile_info(home=home)['profiles']
    assert [(p['path'], p['owner']) for p in found] == [(folder, str(ALICE))]
    with pytest.raises(owner_mod.UnsafePathError, match='user %d may not write %s' % (ALICE, folder)):
        nss_import(found[0]['path'], transfer, owner=found[0]['owner'])
    assert snapshot(folder) == before


# -- Apple configuration profiles written into a home ----------------------------------------------------------------
def apple_profile(dest, transfer):
    p12, ca_pem = transfer
    return owner_mod.as_owner_of(os.path.dirname(dest), ap.ensure_apple_profile,
                                 files=('pkcs12_path', 'ca_certificate'), dest=dest, identity='alice',
                                 pkcs12_path=p12, pkcs12_password=P12_PASSWORD,
                                 ca_certificate=ca_pem)


def test_apple_profile_in_a_home_is_the_owners_file(home, transfer):
    downloads = os.path.join(home, 'Downloads')
    os.mkdir(downloads, 0o700)
    os.chown(downloads, ALICE, ALICE)
    dest = os.path.join(downloads, 'alice.mobileconfig')
    assert apple_profile(dest, transfer)['changed'] is True
    info = os.stat(dest)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (ALICE, 0o600)
    assert apple_profile(dest, transfer)['changed'] is False


def test_apple_profile_through_a_planted_folder_or_file_link_is_refused(home, transfer, root_secret):
    folder, secret = root_secret
    before = (snapshot(folder), snapshot(secret))
    downloads = os.path.join(home, 'Downloads')
    os.symlink(folder, downloads)
    as_alice(downloads)
    with pytest.raises(owner_mod.UnsafePathError, match='user %d may not write %s' % (ALICE, downloads)):
        apple_profile(os.path.join(downloads, 'alice.mobileconfig'), transfer)
    desktop = os.path.join(home, 'Desktop')
    os.mkdir(desktop)
    os.chown(desktop, ALICE, ALICE)
    link = os.path.join(desktop, 'alice.mobileconfig')
    os.symlink(secret, link)
    as_alice(link)
    with pytest.raises(owner_mod.UnsafePathError, match='alice.mobileconfig is a symbolic link'):
        apple_profile(link, transfer)
    assert (snapshot(folder), snapshot(secret)) == before
