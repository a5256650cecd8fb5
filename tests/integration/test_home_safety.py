# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root runs firefox_nss and chromium_nss in homes whose owner planted links to root's files and folders.

Every path the roles touch in a home is tried: user.js, the profile's NSS files, the profile folder, a profile that
profiles.ini places outside the home, Chromium's nssdb folder and ~/.pki. The planted target (root's file or
folder) must come out unchanged in content, owner and mode, and the run must say why it refused, naming host,
user and path. A clean home next to them is filled, with every file its owner's.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import platform
import secrets
import shutil
import stat
import subprocess
import tempfile

import pytest
from integration_support import AnsibleRunner

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='root working in homes owned by another uid needs root')

OWNER = 54321
PLAYBOOK = pathlib.Path(__file__).resolve().parent / 'playbooks' / 'home_safety.yml'


def snapshot(path: pathlib.Path) -> tuple:
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode):
        return ('dir', info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode),
                tuple((child.name, snapshot(child)) for child in sorted(path.iterdir())))
    return ('file', info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode),
            hashlib.sha256(path.read_bytes()).hexdigest())


def chown_tree(path: pathlib.Path) -> None:
    subprocess.run(['chown', '-hR', '%d:%d' % (OWNER, OWNER), str(path)], check=True)


def firefox_home(home: pathlib.Path, profile_path: str = 'p.default', relative: bool = True) -> pathlib.Path:
    root = home / '.mozilla' / 'firefox'
    root.mkdir(parents=True)
    (root / 'profiles.ini').write_text('[Profile0]\nName=default\nIsRelative=%d\nPath=%s\nDefault=1\n'
                                       % (1 if relative else 0, profile_path))
    return root


@pytest.fixture(scope='module')
def attack(tmp_path_factory, collections_path):
    if shutil.which('certutil') is None:
        pytest.skip('certutil (libnss3-tools) is not installed')
    base = pathlib.Path(tempfile.mkdtemp(prefix='certfleet-home-safety-', dir='/tmp'))
    base.chmod(0o755)  # the homes' owner must be able to reach their homes
    try:
        # What root owns and a user would like to reach.
        root_file = base / 'root-only' / 'shadow'
        root_file.parent.mkdir(mode=0o755)
        root_file.write_text('root:$6$not-yours:19000:0:99999:7:::\n')
        root_file.chmod(0o644)
        root_folder = base / 'root-folder'
        root_folder.mkdir(mode=0o755)
        (root_folder / 'keep.txt').write_text('root data\n')
        root_pki = base / 'root-pki'
        (root_pki / 'nssdb').mkdir(parents=True, mode=0o755)
        subprocess.run(['certutil', '-N', '-d', 'sql:%s' % (root_pki / 'nssdb'), '--empty-password'], check=True)

        homes = {}

        def home(name: str) -> pathlib.Path:
            path = base / 'homes' / name
            path.mkdir(parents=True)
            homes[name] = path
            return path

        ok_firefox = home('ok_firefox')
        (firefox_home(ok_firefox) / 'p.default').mkdir()
        home('ok_chromium')
        userjs = firefox_home(home('userjs_link')) / 'p.default'
        userjs.mkdir()
        (userjs / 'user.js').symlink_to(root_file)
        certdb = firefox_home(home('certdb_link')) / 'p.default'
        certdb.mkdir()
        (certdb / 'cert9.db').symlink_to(root_file)
        firefox_home(home('profiles_ini_elsewhere'), str(root_folder), relative=False)
        (firefox_home(home('profile_folder_link')) / 'p.default').symlink_to(root_folder)
        nssdb = home('nssdb_link') / '.local' / 'share' / 'pki'
        nssdb.mkdir(parents=True)
        (nssdb / 'nssdb').symlink_to(root_folder)
        (home('pki_link') / '.pki').symlink_to(root_pki)
        for path in homes.values():
            chown_tree(path)
        (base / 'homes').chmod(0o755)

        targets = {'file': root_file, 'folder': root_folder, 'pki': root_pki}
        before = {name: snapshot(path) for name, path in targets.items()}
        work = base / 'work'
        work.mkdir(mode=0o700)
        (work / 'transfer').mkdir(mode=0o700)
        ansible = AnsibleRunner(base / 'ansible')
        roles = {'chromium_nss': ('ok_chromium', 'nssdb_link', 'pki_link')}
        scenarios = [{'name': name, 'home': str(path),
                      'role': 'chromium_nss' if name in roles['chromium_nss'] else 'firefox_nss'}
                     for name, path in homes.items()]
        run = ansible.run(PLAYBOOK, extra_vars={
            'certfleet_test_dir': str(work), 'certfleet_scenarios': scenarios,
            'certfleet_ca_passphrase': secrets.token_urlsafe(24), 'certfleet_p12_password': secrets.token_urlsafe(16)})
        assert run.returncode == 0, run.explain()
        outcomes = json.loads((work / 'outcomes.json').read_text())
        yield {'outcomes': outcomes, 'homes': homes, 'targets': targets, 'before': before, 'run': run,
               'root_folder': root_folder, 'root_pki': root_pki}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_root_files_and_folders_behind_planted_links_are_unchanged(attack):
    after = {name: snapshot(path) for name, path in attack['targets'].items()}
    assert after == attack['before']


def test_a_clean_home_is_filled_and_everything_written_is_its_owners(attack):
    assert attack['outcomes']['ok_firefox'] == 'ok', attack['outcomes']
    assert attack['outcomes']['ok_chromium'] == 'ok', attack['outcomes']
    profile = attack['homes']['ok_firefox'] / '.mozilla' / 'firefox' / 'p.default'
    nssdb = attack['homes']['ok_chromium'] / '.local' / 'share' / 'pki' / 'nssdb'
    for path in [profile / name for name in ('cert9.db', 'key4.db', 'user.js')] + [
            nssdb / 'cert9.db', nssdb / 'key4.db', nssdb, nssdb.parent]:
        info = os.lstat(path)
        assert (info.st_uid, info.st_gid) == (OWNER, OWNER), path
        assert not stat.S_ISLNK(info.st_mode), path
    assert stat.S_IMODE(os.stat(nssdb).st_mode) == 0o700
    assert 'security.default_personal_cert' in (profile / 'user.js').read_text()


@pytest.mark.parametrize('scenario, reason', [
    ('userjs_link', 'user.js is a symbolic link'),
    ('certdb_link', 'cert9.db is a symbolic link'),
    ('profiles_ini_elsewhere', 'may not write {root_folder}: refusing'),
    ('profile_folder_link', 'may not write {home}/.mozilla/firefox/p.default (which leads to {root_folder})'),
    ('nssdb_link', 'may not write {home}/.local/share/pki/nssdb (which leads to {root_folder})'),
    ('pki_link', 'may not write {home}/.pki/nssdb (which leads to {root_pki}/nssdb)'),
])
def test_each_planted_link_is_refused_naming_host_user_and_path(attack, scenario, reason):
    message = attack['outcomes'][scenario]
    expected = reason.format(home=attack['homes'][scenario], root_folder=attack['root_folder'],
                             root_pki=attack['root_pki'])
    assert expected in message, message
    assert 'on %s' % platform.node() in message, message
    if 'may not write' in expected:
        assert 'user %d may not write' % OWNER in message, message
