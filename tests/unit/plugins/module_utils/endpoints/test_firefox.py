# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""endpoints.firefox: profiles.ini / installs.ini parsing and profile discovery in real folders."""

from __future__ import annotations

import os
import pwd

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import firefox

# profiles.ini as Firefox 67+ writes it: an [Install<hash>] section names the default of that installation.
MODERN = '''[Install4F96D1932A9F858E]
Default=Profiles/k2x9w1a7.default-release
Locked=1

[Profile1]
Name=default
IsRelative=1
Path=Profiles/abcd1234.default
Default=1

[Profile0]
Name=default-release
IsRelative=1
Path=Profiles/k2x9w1a7.default-release

[General]
StartWithLastProfile=1
Version=2
'''

INSTALLS = '''[4F96D1932A9F858E]
Default=Profiles/k2x9w1a7.default-release
Locked=1
'''

# Before Firefox 67, and ESR builds run with -P: no install sections, Default=1 marks the default.
LEGACY = '''[General]
StartWithLastProfile=1

[Profile0]
Name=default
IsRelative=1
Path=x1y2z3.default
Default=1

[Profile1]
Name=work
IsRelative=0
Path=/srv/profiles/work
'''

WINDOWS = '''[Install308046B0AF4A39CB]
Default=Profiles/w1n.default-release
Locked=1

[Profile0]
Name=default-release
IsRelative=1
Path=Profiles/w1n.default-release

[Profile1]
Name=elsewhere
IsRelative=0
Path=D:\\Firefox\\elsewhere
'''


def test_modern_without_install_section_still_marks_the_legacy_default():
    assert not MODERN.split('\n\n', 1)[1].startswith('[Install')
    profiles = firefox.parse_profiles('/r', MODERN.split('\n\n', 1)[1])
    assert [p['name'] for p in profiles if p['default']] == ['default']


@pytest.mark.parametrize('system, root, text, installs, expected', [
    ('Linux', '/home/a/.mozilla/firefox', MODERN, None, [
        ('default', '/home/a/.mozilla/firefox/Profiles/abcd1234.default', True, False),
        ('default-release', '/home/a/.mozilla/firefox/Profiles/k2x9w1a7.default-release', True, True),
    ]),
    # installs.ini alone names the default (profiles.ini without [Install...] sections)
    ('Linux', '/home/a/.mozilla/firefox', MODERN.split('\n\n', 1)[1], INSTALLS, [
        ('default', '/home/a/.mozilla/firefox/Profiles/abcd1234.default', True, False),
        ('default-release', '/home/a/.mozilla/firefox/Profiles/k2x9w1a7.default-release', True, True),
    ]),
    ('Linux', '/home/a/.mozilla/firefox', LEGACY, None, [
        ('default', '/home/a/.mozilla/firefox/x1y2z3.default', True, True),
        ('work', '/srv/profiles/work', False, False),
    ]),
    ('Darwin', '/Users/a/Library/Application Support/Firefox', LEGACY, None, [
        ('default', '/Users/a/Library/Application Support/Firefox/x1y2z3.default', True, True),
        ('work', '/srv/profiles/work', False, False),
    ]),
    ('Windows', 'C:\\Users\\a\\AppData\\Roaming\\Mozilla\\Firefox', WINDOWS, None, [
        ('default-release', 'C:\\Users\\a\\AppData\\Roaming\\Mozilla\\Firefox\\Profiles\\w1n.default-release',
         True, True),
        ('elsewhere', 'D:\\Firefox\\elsewhere', False, False),
    ]),
])
def test_parse_profiles(system, root, text, installs, expected):
    profiles = firefox.parse_profiles(root, text, installs, system)
    got = sorted((p['name'], p['path'], p['is_relative'], p['default']) for p in profiles)
    assert got == sorted(expected)


def test_parse_profiles_ignores_sections_without_a_path_and_keeps_case():
    text = '[Profile0]\nName=NoPath\n\n[Profile1]\nName=CaseName\nPath=Mixed.Case\n\n[BackgroundTasksProfiles]\nx=y\n'
    profiles = firefox.parse_profiles('/r', text)
    assert [(p['name'], p['path'], p['default']) for p in profiles] == [('CaseName', '/r/Mixed.Case', False)]


def test_parse_profiles_without_name_uses_the_section():
    profiles = firefox.parse_profiles('/r', '[Profile3]\nPath=p\n')
    assert profiles[0]['name'] == 'Profile3' and profiles[0]['is_relative'] is True


def test_unreadable_profiles_ini_names_home():
    with pytest.raises(InputError) as failure:
        firefox.parse_profiles('/r', 'Path=p\nnot an ini file\n')
    assert failure.value.field == 'home'


@pytest.mark.parametrize('system, home, expected', [
    ('Linux', '/home/a', [('native', '/home/a/.mozilla/firefox'), ('xdg', '/home/a/.config/mozilla/firefox'),
                          ('snap', '/home/a/snap/firefox/common/.mozilla/firefox'),
                          ('flatpak', '/home/a/.var/app/org.mozilla.firefox/.mozilla/firefox'),
                          ('flatpak-esr', '/home/a/.var/app/org.mozilla.firefox_esr/.mozilla/firefox')]),
    ('Darwin', '/Users/a', [('native', '/Users/a/Library/Application Support/Firefox')]),
    ('Windows', 'C:\\Users\\a', [('native', 'C:\\Users\\a\\AppData\\Roaming\\Mozilla\\Firefox')]),
])
def test_firefox_roots(system, home, expected):
    assert firefox.firefox_roots(home, system) == expected


def test_unknown_system():
    with pytest.raises(InputError) as failure:
        firefox.firefox_roots('/home/a', 'Plan9')
    assert failure.value.field == 'system'


# -- discovery in a real folder tree -------------------------------------------------------------------------------
def _profile(root, relative, *, nss=True, running=False, legacy=False):
    path = os.path.join(root, relative)
    os.makedirs(path, exist_ok=True)
    if nss:
        for name in ('cert9.db', 'key4.db'):
            open(os.path.join(path, name), 'wb').close()
    if legacy:
        open(os.path.join(path, 'cert8.db'), 'wb').close()
    if running:
        os.symlink('127.0.1.1:+4242', os.path.join(path, 'lock'))
    return path


@pytest.fixture
def home(tmp_path):
    """A Linux home with a native Firefox (modern ini, a running profile), a snap and a flatpak one."""
    home = tmp_path / 'home'
    native = home / '.mozilla' / 'firefox'
    native.mkdir(parents=True)
    (native / 'profiles.ini').write_text(MODERN)
    (native / 'installs.ini').write_text(INSTALLS)
    _profile(str(native), 'Profiles/k2x9w1a7.default-release', running=True)
    _profile(str(native), 'Profiles/abcd1234.default', nss=False)
    snap = home / 'snap' / 'firefox' / 'common' / '.mozilla' / 'firefox'
    snap.mkdir(parents=True)
    (snap / 'profiles.ini').write_text('[Profile0]\nName=snappy\nIsRelative=1\nPath=s1.default\nDefault=1\n')
    _profile(str(snap), 's1.default')
    flatpak = home / '.var' / 'app' / 'org.mozilla.firefox' / '.mozilla' / 'firefox'
    flatpak.mkdir(parents=True)
    (flatpak / 'profiles.ini').write_text('[Profile0]\nName=flat\nIsRelative=1\nPath=f1.default\nDefault=1\n'
                                          '[Profile1]\nName=gone\nIsRelative=1\nPath=never-created\n')
    _profile(str(flatpak), 'f1.default', nss=False, legacy=True)
    return home


def test_find_profiles_native_snap_flatpak(home):
    found = firefox.find_profiles(str(home), 'Linux')
    table = sorted((p['installation'], p['name'], p['default'], p['exists'], p['has_nss_db'], p['running'])
                   for p in found)
    assert table == sorted([
        ('native', 'default-release', True, True, True, True),
        ('native', 'default', False, True, False, False),
        ('snap', 'snappy', True, True, True, False),
        ('flatpak', 'flat', True, True, False, False),
        ('flatpak', 'gone', False, False, False, False),
    ])
    flat = [p for p in found if p['name'] == 'flat'][0]
    assert flat['has_legacy_nss_db'] is True
    assert flat['path'] == str(home / '.var/app/org.mozilla.firefox/.mozilla/firefox/f1.default')
    assert flat['root'] == str(home / '.var/app/org.mozilla.firefox/.mozilla/firefox')


def test_find_profiles_in_an_empty_home(tmp_path):
    assert firefox.find_profiles(str(tmp_path), 'Linux') == []


def test_find_profiles_darwin_layout(tmp_path):
    root = tmp_path / 'Library' / 'Application Support' / 'Firefox'
    root.mkdir(parents=True)
    (root / 'profiles.ini').write_text(MODERN)
    _profile(str(root), 'Profiles/k2x9w1a7.default-release')
    found = firefox.find_profiles(str(tmp_path), 'Darwin')
    default = [p for p in found if p['default']]
    assert len(found) == 2 and len(default) == 1 and default[0]['has_nss_db'] is True
    assert default[0]['path'] == str(root / 'Profiles' / 'k2x9w1a7.default-release')


def test_find_profiles_of_a_windows_home_mounted_here(tmp_path):
    root = tmp_path / 'AppData' / 'Roaming' / 'Mozilla' / 'Firefox'
    root.mkdir(parents=True)
    (root / 'profiles.ini').write_text(WINDOWS)
    _profile(str(root), 'Profiles/w1n.default-release')
    found = {p['name']: p for p in firefox.find_profiles(str(tmp_path), 'Windows')}
    assert found['default-release']['path'] == str(root / 'Profiles' / 'w1n.default-release')
    assert found['default-release']['exists'] is True and found['default-release']['has_nss_db'] is True
    assert found['elsewhere']['path'] == 'D:\\Firefox\\elsewhere' and found['elsewhere']['exists'] is False


# -- firefox_profile_info: who ---------------------------------------------------------------------------------------
def test_info_for_a_given_home(home):
    result = firefox.firefox_profile_info(home=str(home), system='Linux')
    assert result['changed'] is False and result['system'] == 'Linux'
    assert len(result['profiles']) == 5
    assert {p['user'] for p in result['profiles']} == {None} and {p['home'] for p in result['profiles']} == {str(home)}
    assert result['users'] == [{'user': None, 'home': str(home), 'installations': ['flatpak', 'native', 'snap'],
                                'profiles': 5}]
    named = firefox.firefox_profile_info(users=['tester'], home=str(home), system='Linux')
    assert {p['user'] for p in named['profiles']} == {'tester'}


def test_info_defaults_to_the_current_user():
    name, home = firefox.current_user()
    assert name == pwd.getpwuid(os.getuid()).pw_name
    result = firefox.firefox_profile_info(system='Linux')
    assert result['users'][0]['user'] == name and result['users'][0]['home'] == home


def test_info_for_existing_users():
    name = pwd.getpwuid(os.getuid()).pw_name
    result = firefox.firefox_profile_info(users=[name, 'root'] if name != 'root' else ['root'], system='Linux')
    assert [u['user'] for u in result['users']][0] == name


def test_info_for_all_users():
    result = firefox.firefox_profile_info(all_users=True, system='Linux')
    users = {u['user'] for u in result['users']}
    assert all(os.path.isdir(u['home']) for u in result['users'])
    assert 'nobody' not in users
    if os.path.isdir(pwd.getpwnam('root').pw_dir):
        assert 'root' in users


@pytest.mark.parametrize('params, field, message', [
    ({'users': ['certfleet-no-such-user']}, 'users', "'certfleet-no-such-user' does not exist"),
    ({'users': ['root', 'certfleet-no-such-user']}, 'users', 'does not exist'),
    ({'users': ['']}, 'users', 'empty'),
    ({'home': 'MISSING'}, 'home', 'does not exist'),
    ({'home': 'HOME', 'users': ['a', 'b']}, 'home', 'at most one'),
    ({'all_users': True, 'users': ['root']}, 'all_users', 'cannot be combined'),
    ({'all_users': True, 'home': 'HOME'}, 'all_users', 'cannot be combined'),
    ({'system': 'BeOS'}, 'system', 'unsupported'),
])
def test_info_bad_input(tmp_path, params, field, message):
    replace = {'MISSING': str(tmp_path / 'nowhere'), 'HOME': str(tmp_path)}
    params = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
    with pytest.raises(InputError) as failure:
        firefox.firefox_profile_info(**params)
    assert failure.value.field == field and message in failure.value.message


def test_user_home_of_unknown_user():
    with pytest.raises(InputError) as failure:
        firefox.user_home('certfleet-no-such-user')
    assert failure.value.field == 'users'
    assert firefox.user_home('root') == pwd.getpwnam('root').pw_dir
