# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding Firefox profiles from profiles.ini and installs.ini (private module_utils)."""

from __future__ import annotations

import configparser
import json
import ntpath
import os
import platform
import posixpath
import stat
import tempfile

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.owner import (
    check_writable_as_self, owner_by_name, path_controller, refuse_symlink, run_as,
)

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
        # The home's files are read with its owner's rights, and the profiles they name are theirs to fill.
        owner = path_controller(user_home_dir) if home or not user else owner_by_name(user, 'users')
        found = run_as(owner, find_profiles, home=user_home_dir, system=system)
        for profile in found:
            profile['user'] = user
            profile['home'] = user_home_dir
            profile['owner'] = None if owner is None or owner.uid == 0 else owner.name
        summary.append({'user': user, 'home': user_home_dir,
                        'installations': sorted({p['installation'] for p in found}), 'profiles': len(found)})
        profiles.extend(found)
    return {'changed': False, 'system': system, 'profiles': profiles, 'users': summary}


USER_JS_MARKER = '// {mark} certfleet.pki client certificate selection'


def _pref_line(name: str, value) -> str:
    if isinstance(value, bool):
        literal = 'true' if value else 'false'
    elif isinstance(value, int):
        literal = str(value)
    else:
        literal = json.dumps(str(value))
    return 'user_pref(%s, %s);' % (json.dumps(str(name)), literal)


def render_user_js(text: str, prefs: dict, state: str = 'present') -> str:
    """``text`` (a user.js) with certfleet's marked block set to ``prefs``, or without it for state=absent."""
    begin, end = USER_JS_MARKER.format(mark='BEGIN'), USER_JS_MARKER.format(mark='END')
    lines = text.splitlines()
    try:
        start = lines.index(begin)
        stop = lines.index(end, start)
    except ValueError:
        start = stop = None
    block = [] if state == 'absent' else [begin] + [_pref_line(k, prefs[k]) for k in sorted(prefs)] + [end]
    if start is None:
        lines = lines + block
    else:
        lines = lines[:start] + block + lines[stop + 1:]
    return '\n'.join(lines) + '\n' if lines else ''


def ensure_user_prefs(*, profile: str, prefs: dict, state: str = 'present', check_mode: bool = False) -> dict:
    """Keep certfleet's block of preferences in a profile's user.js; never follows a symlink.

    Meant to run as the profile's owner (common/owner.py): the new file is made by that user in the profile
    folder and renamed over user.js, so a user.js that is a link is replaced, never written through (and refused
    before that, so the run says so).
    """
    if state not in ('present', 'absent'):
        raise InputError('must be present or absent', 'state')
    if state == 'present' and not prefs:
        raise InputError('must name at least one preference with state=present', 'prefs')
    folder = os.path.abspath(profile)
    if os.path.islink(folder) or not os.path.isdir(folder):
        raise InputError('%s is not a profile folder (missing, a file, or a symbolic link)' % folder, 'profile')
    path = os.path.join(folder, 'user.js')
    refuse_symlink(path, 'the Firefox preferences file', 'profile')
    before = ''
    mode = 0o600
    if os.path.lexists(path):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, 'rb') as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError('%s is not a regular file' % path, 'profile')
            mode = stat.S_IMODE(info.st_mode)
            before = handle.read().decode('utf-8', 'replace')
    after = render_user_js(before, prefs or {}, state)
    if state == 'absent' and not os.path.lexists(path):
        after = ''
    changed = after != before
    if changed and not check_mode:
        check_writable_as_self(path, 'user.js', 'profile')
        fd, tmp = tempfile.mkstemp(prefix='.user.js.', suffix='.tmp', dir=folder)
        try:
            with os.fdopen(fd, 'wb') as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(after.encode('utf-8'))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
    return {'changed': changed, 'path': path, 'diff': {'before': before, 'after': after,
                                                       'before_header': path, 'after_header': path}}
