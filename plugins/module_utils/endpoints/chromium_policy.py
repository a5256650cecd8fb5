# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chromium's AutoSelectCertificateForUrls managed policy, shared by every identity of a host (private module_utils).

Facts this code is built on (checked with headless Chromium 156):

* Chromium reads every file of its managed policy folder (``/etc/chromium/policies/managed``,
  ``/etc/opt/chrome/policies/managed``), but a policy set in two files is not merged: the file last in
  lexicographic order wins. So every identity's entries live in one value, in one file (ours).
* Each entry is a JSON string ``{"pattern": URL, "filter": {"ISSUER": {...}, "SUBJECT": {...}}}``; the filter
  matches CN, L, O and OU. Chromium ignores other keys of an entry, so an entry carries its owner:

  - ``certfleet_identity``: written for that identity; replaced or removed only by a run for that identity;
  - ``certfleet_carried_from``: a copy of an entry that another file of the folder sets (that file sorts before
    ours, so ours would hide it). Copies are rebuilt from the other files on every run, so a later run refreshes
    them exactly (an entry dropped there, or a file deleted, drops the copy);
  - no tag: written by someone else into our file (by hand); always kept, in its place.

* A file of the folder that sorts after ours and sets the policy would hide ours: that is an error (code
  ``shadowed``) naming the file, and nothing is written.

Errors carry a code (``ChromiumPolicyError.code``); the modules, roles and tests branch on it, never on the text.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass

from ansible_collections.certfleet.pki.plugins.module_utils.x509.names import normalize_subject
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import CertfleetError, InputError
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import atomic_write

POLICY = 'AutoSelectCertificateForUrls'
OWNER_KEY = 'certfleet_identity'
CARRIED_KEY = 'certfleet_carried_from'
TAG_KEYS = (OWNER_KEY, CARRIED_KEY)
# The attributes Chromium's ISSUER/SUBJECT filter compares (others would be ignored by Chromium).
FILTER_ATTRIBUTES = ('CN', 'L', 'O', 'OU')
FILE_MODE = 0o644
FOLDER_MODE = 0o755
STATES = ('present', 'absent')


class ChromiumPolicyError(CertfleetError):
    """A policy file or folder cannot be used. ``code`` says why; ``path`` names the file or folder."""

    def __init__(self, message: str, code: str, path: str | None = None, field: str | None = None):
        super().__init__(message, field=field)
        self.code = code
        self.path = path


def filter_names(names, field: str) -> dict:
    """The ISSUER or SUBJECT filter for ``names`` (a subject dict): CN, L, O, OU, first value of each.

    Other attributes (C, ST, emailAddress...) are left out: Chromium does not compare them.
    """
    if not names:
        return {}
    normalized = normalize_subject(names, field)
    return {short: normalized[short][0] for short in FILTER_ATTRIBUTES if normalized.get(short)}


def make_entry(pattern: str, issuer: dict | None = None, subject: dict | None = None,
               identity: str | None = None) -> str:
    """One AutoSelectCertificateForUrls entry as the JSON string Chromium expects (keys sorted: stable bytes)."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise InputError('a URL pattern must be a non-empty string, got %r' % (pattern,), field='urls')
    certificate_filter = {}
    if issuer:
        certificate_filter['ISSUER'] = dict(issuer)
    if subject:
        certificate_filter['SUBJECT'] = dict(subject)
    entry = {'pattern': pattern.strip(), 'filter': certificate_filter}
    if identity is not None:
        entry[OWNER_KEY] = identity
    return json.dumps(entry, sort_keys=True)


def _parse_entry(text):
    """The entry as a dict, or None when Chromium would ignore it (not a string holding a JSON object)."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _content_key(parsed: dict) -> str:
    """What Chromium sees of an entry: the entry without our ownership tags."""
    return json.dumps({k: v for k, v in parsed.items() if k not in TAG_KEYS}, sort_keys=True)


def _temp_name_pattern(name: str):
    return re.compile(r'^\.%s\..*\.tmp$' % re.escape(name))


def _check_owner(path: str, st, what: str, require_root_owner: bool) -> None:
    if require_root_owner and st.st_uid != 0:
        raise ChromiumPolicyError('%s %s is owned by uid %d, not root: refusing to use it (anyone owning it could '
                                  'change the browser policy)' % (what, path, st.st_uid), 'not_root_owned', path)


def check_folder(folder: str, require_root_owner: bool) -> bool:
    """Refuse a policy folder that is a symlink, not a folder, not root's or writable by others. True if it exists."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise ChromiumPolicyError('policy folder %s is a symlink: refusing to write through it' % folder,
                                  'symlink', folder)
    if not stat.S_ISDIR(st.st_mode):
        raise ChromiumPolicyError('policy folder %s exists and is not a folder' % folder, 'not_a_folder', folder)
    _check_owner(folder, st, 'policy folder', require_root_owner)
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != 0):
        raise ChromiumPolicyError('policy folder %s is writable by others (mode %04o): refusing to use it'
                                  % (folder, stat.S_IMODE(st.st_mode)), 'unsafe_folder', folder)
    return True


def read_policy(path: str, require_root_owner: bool) -> tuple:
    """(document, text, mode) of our policy file, or (None, None, None) when it does not exist."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None, None
    if stat.S_ISLNK(st.st_mode):
        raise ChromiumPolicyError('policy file %s is a symlink: refusing to write through it' % path, 'symlink', path)
    if not stat.S_ISREG(st.st_mode):
        raise ChromiumPolicyError('policy file %s is not a regular file' % path, 'not_a_file', path)
    _check_owner(path, st, 'policy file', require_root_owner)
    with open(path, 'rb') as handle:
        raw = handle.read()
    try:
        text = raw.decode('utf-8')
        document = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ChromiumPolicyError('policy file %s is not valid JSON (%s); fix or remove it, nothing was written'
                                  % (path, exc), 'malformed_json', path)
    if not isinstance(document, dict):
        raise ChromiumPolicyError('policy file %s does not hold a JSON object; nothing was written' % path,
                                  'malformed_json', path)
    value = document.get(POLICY)
    if value is not None and not isinstance(value, list):
        raise ChromiumPolicyError('policy file %s: %s is not a list; nothing was written' % (path, POLICY),
                                  'malformed_policy', path)
    return document, text, stat.S_IMODE(st.st_mode)


def scan_folder(folder: str, own_name: str) -> dict:
    """What the other files of the folder set for the policy.

    ``before``: [(file name, [entry strings])] of files that sort before ours (ours wins over them);
    ``after``: names of files that sort after ours and set the policy (they win over ours);
    ``warnings``: files Chromium cannot read either (not JSON), which set nothing.
    """
    result = {'before': [], 'after': [], 'warnings': []}
    if not os.path.isdir(folder):
        return result
    temp = _temp_name_pattern(own_name)
    for name in sorted(os.listdir(folder)):
        full = os.path.join(folder, name)
        if name == own_name or temp.match(name) or not os.path.isfile(full):
            continue
        try:
            with open(full, 'rb') as handle:
                document = json.loads(handle.read().decode('utf-8'))
        except (OSError, ValueError) as exc:
            result['warnings'].append('policy file %s is not readable JSON (%s); Chromium ignores it too'
                                      % (full, exc))
            continue
        if not isinstance(document, dict) or POLICY not in document:
            continue
        if name > own_name:
            result['after'].append(name)
        else:
            value = document[POLICY]
            result['before'].append((name, value if isinstance(value, list) else []))
    return result


def merge(document: dict | None, identity: str, entries: list, carried: list) -> dict:
    """The new document: ``identity``'s entries replaced by ``entries`` (none: removed), carried copies rebuilt.

    Order: untagged entries where they were, then each identity's entries (identities sorted by name), then the
    copies carried from other files (in their files' order). Other keys of the document are kept.
    """
    document = dict(document or {})
    untagged, owned = [], {}
    for text in document.get(POLICY) or []:
        parsed = _parse_entry(text)
        if parsed is not None and isinstance(parsed.get(CARRIED_KEY), str):
            continue  # rebuilt below from the other files as they are now
        if parsed is not None and isinstance(parsed.get(OWNER_KEY), str):
            owned.setdefault(parsed[OWNER_KEY], []).append(text)
        else:
            untagged.append(text)
    owned.pop(identity, None)
    if entries:
        owned[identity] = list(entries)
    value = list(untagged)
    for name in sorted(owned):
        value.extend(owned[name])
    if not value:
        # Nothing of ours or of a hand: with the key gone, the other files' values apply again on their own.
        document.pop(POLICY, None)
        return document
    seen = {_content_key(p) for p in (_parse_entry(t) for t in value) if p is not None}
    for name, texts in carried:
        for text in texts:
            parsed = _parse_entry(text)
            if parsed is None or parsed.get('pattern') is None:
                continue  # Chromium ignores it in that file too
            key = _content_key(parsed)
            if key in seen:
                continue
            seen.add(key)
            copy = {k: v for k, v in parsed.items() if k not in TAG_KEYS}
            copy[CARRIED_KEY] = name
            value.append(json.dumps(copy, sort_keys=True))
    document[POLICY] = value
    return document


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + '\n'


def _describe(before: list, after: list) -> tuple:
    """Reason codes and texts for the change of the value."""
    codes, texts = [], []
    added = [t for t in after if t not in before]
    removed = [t for t in before if t not in after]
    if added:
        codes.append('entries_added')
        texts.append('%d entr%s added' % (len(added), 'y' if len(added) == 1 else 'ies'))
    if removed:
        codes.append('entries_removed')
        texts.append('%d entr%s removed' % (len(removed), 'y' if len(removed) == 1 else 'ies'))
    if not added and not removed and before != after:
        codes.append('entries_reordered')
        texts.append('entries reordered')
    return codes, texts


def ensure_chromium_policy(*, path: str, identity: str, state: str = 'present', urls=None, issuer=None,
                           issuer_cn: str | None = None, subject=None, check_mode: bool = False,
                           require_root_owner: bool | None = None) -> dict:
    """Make ``identity``'s AutoSelectCertificateForUrls entries in ``path`` what is asked, and nothing else."""
    if require_root_owner is None:
        require_root_owner = os.geteuid() == 0
    _check_request(state=state, identity=identity, issuer=issuer, issuer_cn=issuer_cn)
    path = os.path.abspath(path)
    folder, own_name = os.path.split(path)
    entries = _wanted_entries(identity=identity, urls=list(urls or []) if state == 'present' else [],
                              issuer=issuer, issuer_cn=issuer_cn, subject=subject)

    folder_exists = check_folder(folder, require_root_owner)
    document, text, mode = read_policy(path, require_root_owner)
    scan = scan_folder(folder, own_name)
    warnings = _folder_warnings(scan, folder=folder, path=path, writing=state == 'present' and bool(entries))
    change = _plan_change(document, mode, identity=identity, entries=entries, carried=scan['before'])
    after_text = render(change.new_document) if change.new_document else ''
    if change.changed and not check_mode:
        _apply_change(change, path=path, after_text=after_text, folder_exists=folder_exists,
                      require_root_owner=require_root_owner)
    return _result(change, path=path, identity=identity, state=state, warnings=warnings, before_text=text,
                   after_text=after_text)


def _check_request(*, state: str, identity, issuer, issuer_cn) -> None:
    if state not in STATES:
        raise InputError('must be one of %s, got %r' % (', '.join(STATES), state), field='state')
    if not isinstance(identity, str) or not identity.strip():
        raise InputError('must be a non-empty string', field='identity')
    if issuer and issuer_cn:
        raise InputError('give issuer or issuer_cn, not both', field='issuer_cn')


def _wanted_entries(*, identity: str, urls: list, issuer, issuer_cn, subject) -> list:
    """``identity``'s entries, one per URL (duplicates dropped), each with the issuer and subject filter."""
    issuer_filter = filter_names({'CN': issuer_cn} if issuer_cn else issuer, 'issuer')
    subject_filter = filter_names(subject, 'subject')
    if urls and not (issuer_filter or subject_filter):
        raise InputError('an entry needs issuer (or issuer_cn) or subject: without a filter Chromium would send any '
                         'client certificate to these URLs', field='subject')
    entries = []
    for url in urls:
        entry = make_entry(url, issuer_filter, subject_filter, identity)
        if entry not in entries:
            entries.append(entry)
    return entries


def _folder_warnings(scan: dict, *, folder: str, path: str, writing: bool) -> list:
    """Warnings about the other files of the folder; an error when one would hide the entries we are to write."""
    warnings = list(scan['warnings'])
    if scan['after']:
        shadowing = ', '.join(os.path.join(folder, n) for n in scan['after'])
        if writing:
            raise ChromiumPolicyError(
                '%s also sets %s and sorts after %s, so Chromium would use its value and ignore ours; move those '
                'entries into %s (they are kept there) or rename that file to sort first. Nothing was written.'
                % (shadowing, POLICY, path, path), 'shadowed', shadowing)
        # Nothing of ours to write (absent, or no URLs): the run goes on, but says that our file is hidden.
        warnings.append('%s sets %s and sorts after %s: Chromium uses its value, not ours' % (shadowing, POLICY, path))
    return warnings


@dataclass(frozen=True)
class _PolicyChange:
    """What a run does to our policy file, decided before anything is written (check mode reports the same)."""
    document: dict | None  # the file as it is; None when it does not exist
    new_document: dict
    after_value: list  # the policy value the new document holds
    reason_codes: list
    reasons: list
    remove_file: bool
    write: bool

    @property
    def changed(self) -> bool:
        return bool(self.remove_file or self.write or self.reason_codes)


def _plan_change(document: dict | None, mode: int | None, *, identity: str, entries: list,
                 carried: list) -> _PolicyChange:
    new_document = merge(document, identity, entries, carried)
    after_value = list(new_document.get(POLICY) or [])
    reason_codes, reasons = _describe(list((document or {}).get(POLICY) or []), after_value)
    # A file left with nothing in it is removed (an empty file that was already there is left alone).
    remove_file = bool(document) and not new_document
    write = bool(new_document) and not remove_file and new_document != document
    if remove_file:
        reason_codes.append('file_removed')
        reasons.append('the file sets nothing any more and is removed')
    elif document is None and write:
        reason_codes.append('file_created')
        reasons.append('the policy file is created')
    elif not write and document is not None and mode != FILE_MODE:
        reason_codes.append('mode_fixed')
        reasons.append('mode %04o corrected to %04o (every user\'s browser must read it)' % (mode, FILE_MODE))
    return _PolicyChange(document=document, new_document=new_document, after_value=after_value,
                         reason_codes=reason_codes, reasons=reasons, remove_file=remove_file, write=write)


def _apply_change(change: _PolicyChange, *, path: str, after_text: str, folder_exists: bool,
                  require_root_owner: bool) -> None:
    """Remove, write or chmod the file, as planned; an OSError becomes the ``write_failed`` error."""
    folder = os.path.dirname(path)
    try:
        if change.remove_file:
            os.unlink(path)
        elif change.write:
            if not folder_exists:
                os.makedirs(folder, FOLDER_MODE)
                os.chmod(folder, FOLDER_MODE)  # makedirs' mode is filtered by the umask
                check_folder(folder, require_root_owner)
            atomic_write(path, after_text.encode('utf-8'), FILE_MODE)
        else:
            os.chmod(path, FILE_MODE)
    except OSError as exc:
        raise ChromiumPolicyError('cannot write the policy file %s: %s (writing it needs root)'
                                  % (path, exc.strerror or exc), 'write_failed', path)


def _result(change: _PolicyChange, *, path: str, identity: str, state: str, warnings: list, before_text: str | None,
            after_text: str) -> dict:
    after_value = change.after_value
    own_after = [t for t in after_value if (_parse_entry(t) or {}).get(OWNER_KEY) == identity
                 and CARRIED_KEY not in (_parse_entry(t) or {})]
    carried_from = sorted({(_parse_entry(t) or {}).get(CARRIED_KEY) for t in after_value} - {None})
    return {
        'changed': change.changed,
        'path': path,
        'identity': identity,
        'state': state,
        'entries': own_after,
        'carried_from': carried_from,
        'reason_codes': change.reason_codes,
        'reasons': change.reasons,
        'warnings': warnings,
        'diff': {'before': before_text if before_text is not None else '', 'after': after_text,
                 'before_header': path, 'after_header': path},
    }
