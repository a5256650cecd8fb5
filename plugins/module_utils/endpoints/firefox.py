# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding Firefox profiles from profiles.ini and installs.ini (private module_utils)."""

from __future__ import annotations

import configparser
import ntpath
import os
import platform
import posixpath

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

# Where a Firefox keeps profiles.ini, relative to the user's home, per OS, with the kind of installation.
FIREFOX_ROOTS = {
    'Linux': (
        ('native', '.mozilla/firefox'),
        ('xdg', '.config/mozilla/firefox'),
        ('snap', 'snap/firefox/common/.mozilla/firefox'),
        ('flatpak', '.var/app/org.mozilla.firefox/.mozilla/firefox'),
        ('flatpak-esr', '.var/app/org.mozilla.firefox_esr/.mozilla/firefox'),
    ),
    'Darwin': (
        ('native', 'Library/Application Support/Firefox'),
    ),
    'Windows': (
        ('native', 'AppData\\Roaming\\Mozilla\\Firefox'),
    ),
}


def firefox_roots(home: str, system: str = 'Linux') -> list:
    """[(kind, folder that may hold profiles.ini)] for a user's home on ``system``."""
    if system not in FIREFOX_ROOTS:
        raise InputError('unsupported system %r (Linux, Darwin or Windows)' % system, 'system')
    join = ntpath.join if system == 'Windows' else posixpath.join
    return [(kind, join(home, relative)) for kind, relative in FIREFOX_ROOTS[system]]


def _read_ini(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in Firefox's files
    parser.read_string(text)
    return parser


def parse_profiles(root: str, profiles_ini: str, installs_ini: str | None = None, system: str = 'Linux') -> list:
    """Profiles listed in profiles.ini, with the install default from installs.ini or [Install*] sections."""
    join = ntpath.join if system == 'Windows' else posixpath.join
    try:
        profiles = _read_ini(profiles_ini)
    except configparser.Error as exc:
        raise InputError('profiles.ini in %s cannot be read (%s)' % (root, exc), 'home')
    install_defaults = set()
    for parser_text in (profiles_ini, installs_ini):
        if not parser_text:
            continue
        try:
            parser = _read_ini(parser_text)
        except configparser.Error:
            continue
        for section in parser.sections():
            if parser.has_option(section, 'Default') and not section.startswith('Profile'):
                install_defaults.add(parser.get(section, 'Default'))
    result = []
    for section in profiles.sections():
        if not section.startswith('Profile') or not profiles.has_option(section, 'Path'):
            continue
        relative_path = profiles.get(section, 'Path')
        is_relative = profiles.get(section, 'IsRelative', fallback='1') == '1'
        native_path = relative_path.replace('/', '\\') if system == 'Windows' else relative_path
        path = join(root, native_path) if is_relative else native_path
        result.append({
            'name': profiles.get(section, 'Name', fallback=section),
            'path': path,
            'is_relative': is_relative,
            'default': relative_path in install_defaults or (
                not install_defaults and profiles.get(section, 'Default', fallback='0') == '1'),
        })
    return result


def _local_roots(home: str, system: str) -> list:
    """firefox_roots() as paths this (POSIX) host can open: a Windows home mounted here uses '/' separators."""
    if system == 'Windows' and os.sep != '\\':
        return [(kind, posixpath.join(home, relative.replace('\\', '/'))) for kind, relative in FIREFOX_ROOTS[system]]
    return firefox_roots(home, system)


def find_profiles(home: str, system: str = 'Linux') -> list:
    """Every profile of every Firefox installation under ``home`` on this machine."""
    found = []
    if system not in FIREFOX_ROOTS:
        raise InputError('unsupported system %r (Linux, Darwin or Windows)' % system, 'system')
    path_style = 'Linux' if system == 'Windows' and os.sep != '\\' else system
    for kind, root in _local_roots(home, system):
        ini = os.path.join(root, 'profiles.ini')
        if not os.path.isfile(ini):
            continue
        with open(ini, encoding='utf-8', errors='replace') as handle:
            profiles_text = handle.read()
        installs_text = None
        installs = os.path.join(root, 'installs.ini')
        if os.path.isfile(installs):
            with open(installs, encoding='utf-8', errors='replace') as handle:
                installs_text = handle.read()
        for profile in parse_profiles(root, profiles_text, installs_text, path_style):
            path = profile['path']
            profile.update({
                'installation': kind,
                'root': root,
                'exists': os.path.isdir(path),
                'has_nss_db': os.path.isfile(os.path.join(path, 'cert9.db')),
                'has_legacy_nss_db': os.path.isfile(os.path.join(path, 'cert8.db')),
                # Firefox keeps a 'lock' symlink while it runs (Linux, macOS); .parentlock stays behind.
                'running': os.path.islink(os.path.join(path, 'lock')),
            })
            found.append(profile)
    return found


def user_home(user: str) -> str:
    import pwd
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        raise InputError('user %r does not exist on this host' % user, 'users')


def regular_users(min_uid: int = 1000) -> list:
    """Login users with a home folder (uid >= min_uid, plus root), as (name, home)."""
    import pwd
    users = []
    for entry in pwd.getpwall():
        if (entry.pw_uid >= min_uid and entry.pw_uid != 65534) or entry.pw_uid == 0:
            if os.path.isdir(entry.pw_dir):
                users.append((entry.pw_name, entry.pw_dir))
    return sorted(users)


def current_user() -> tuple:
    import pwd
    entry = pwd.getpwuid(os.getuid())
    return entry.pw_name, entry.pw_dir


def firefox_profile_info(*, users=None, all_users: bool = False, home: str | None = None,
                         system: str | None = None) -> dict:
    """The Firefox profiles of the given users (default: the user running this), of all users, or under ``home``."""
    system = system or platform.system()
    if system not in FIREFOX_ROOTS:
        raise InputError('unsupported system %r (Linux, Darwin or Windows)' % system, 'system')
    users = [str(u) for u in (users or [])]
    if any(not u.strip() for u in users):
        raise InputError('holds an empty user name', 'users')
    if all_users and (users or home):
        raise InputError('all_users cannot be combined with users or home', 'all_users')
    if home:
        if len(users) > 1:
            raise InputError('overrides the home of one user; give at most one name in users with it', 'home')
        if not os.path.isdir(home):
            raise InputError('%s does not exist or is not a folder' % home, 'home')
        targets = [(users[0] if users else None, os.path.abspath(os.path.expanduser(home)))]
    elif all_users:
        targets = regular_users(min_uid=500 if system == 'Darwin' else 1000)
    elif users:
        targets = [(user, user_home(user)) for user in users]  # every name is checked before anything is read
    else:
        targets = [current_user()]
    profiles = []
    summary = []
    for user, user_home_dir in targets:
        found = find_profiles(user_home_dir, system)
        for profile in found:
            profile['user'] = user
            profile['home'] = user_home_dir
        summary.append({'user': user, 'home': user_home_dir,
                        'installations': sorted({p['installation'] for p in found}), 'profiles': len(found)})
        profiles.extend(found)
    return {'changed': False, 'system': system, 'profiles': profiles, 'users': summary}
