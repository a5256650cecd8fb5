# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk requests: a TSV/CSV file of issue, renew and revoke lines, carried out in one batch (private module_utils).

The order of work keeps "nothing happens" true for every failure before the commit:
1. read and validate every line against the policy and one snapshot of the store;
2. generate keys, sign and pack PKCS#12 files on all cores, into a private staging folder;
3. write every certificate, revocation and audit entry in one store transaction, after checking that nothing the
   decisions rest on changed meanwhile;
4. publish the staging folder under its final name with one rename.
A line already carried out (same content) is recognised and reported as unchanged, so a file can be run again.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import zipfile
from dataclasses import dataclass, field

from ansible_collections.certfleet.pki.plugins.module_utils.ca.inputs import validate_identity, validate_reason
from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import generate_private_key
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import DEFAULT_PROFILE
from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import (
    Issued, KEY_RETENTION_DAYS, KEY_TYPE, RENEW_BEFORE, VALID_DAYS, commit_issued, commit_revoked, decide,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import (
    CertfleetError, InputError, StoreError,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.files import (
    atomic_write, check_dest_folder, ensure_private_dir, file_mode, fsync_folder, read_bytes, sync_folder_files,
    writing,
)
from ansible_collections.certfleet.pki.plugins.module_utils.common.tabular import format_for, read_table, render_table
from ansible_collections.certfleet.pki.plugins.module_utils.common.timeutil import parse_renew_window, to_iso
from ansible_collections.certfleet.pki.plugins.module_utils.store.base import CertificateRecord
from ansible_collections.certfleet.pki.plugins.module_utils.x509 import pkcs12 as pkcs12_lib
from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import normalize_serial

ACTIONS = ('issue', 'renew', 'revoke')
DELIVERIES = ('individual', 'bundle', 'pickup')
ON_ERROR = ('abort', 'skip')
# Canonical column names, in the order the documentation, the hand-back file and the results use.
COLUMNS = ('action', 'identity', 'CN', 'email', 'O', 'OU', 'L', 'ST', 'C', 'profile', 'valid_days', 'key_type',
           'reason', 'serial')
SUBJECT_COLUMNS = ('CN', 'O', 'OU', 'L', 'ST', 'C')
RESULT_COLUMNS = ('row', 'identity', 'action', 'result', 'serial', 'previous_serial', 'message', 'file')
HANDBACK_COLUMNS = ('action', 'identity', 'serial', 'reason')
_ALIASES = {
    'action': 'action', 'identity': 'identity', 'id': 'identity', 'cn': 'CN', 'common_name': 'CN',
    'commonname': 'CN', 'email': 'email', 'e_mail': 'email', 'mail': 'email', 'emailaddress': 'email',
    'o': 'O', 'organization': 'O', 'organisation': 'O', 'ou': 'OU', 'organizational_unit': 'OU',
    'organisational_unit': 'OU', 'l': 'L', 'locality': 'L', 'city': 'L', 'st': 'ST', 'state': 'ST',
    'province': 'ST', 'c': 'C', 'country': 'C', 'profile': 'profile', 'valid_days': 'valid_days',
    'validity': 'valid_days', 'days': 'valid_days', 'key_type': 'key_type', 'key': 'key_type',
    'reason': 'reason', 'revocation_reason': 'reason', 'serial': 'serial', 'serial_to_revoke': 'serial',
    'serial_number': 'serial',
}
# Library field names -> the column a message names.
_FIELD_COLUMNS = {'subject.%s' % c: c for c in SUBJECT_COLUMNS}
_FIELD_COLUMNS.update({'subject.emailAddress': 'email', 'sans': 'email', 'email': 'email', 'identity': 'identity',
                       'profile': 'profile', 'valid_days': 'valid_days', 'key_type': 'key_type', 'reason': 'reason',
                       'serial': 'serial'})
_PASSWORD_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'  # 31 symbols, none that look alike
_UNSAFE_FILE_CHARS = re.compile(r'[^A-Za-z0-9._@+-]')
INLINE_JOBS = 4  # below this, forking workers costs more than it saves


def new_password() -> str:
    """Six groups of five: 30 symbols of a 31-letter alphabet, 148 bits, typeable in an import dialog."""
    symbols = []
    while len(symbols) < 30:  # rejection sampling keeps every symbol equally likely
        symbols += [_PASSWORD_ALPHABET[b % 31] for b in secrets.token_bytes(40) if b < 248]
    text = ''.join(symbols[:30])
    return '-'.join(text[i:i + 5] for i in range(0, 30, 5))


def canonical_column(name: str) -> str | None:
    return _ALIASES.get(re.sub(r'[\s-]+', '_', name.strip().lower()))


def canonical_reason(text: str) -> str:
    """'keyCompromise', 'key compromise', 'Key-Compromise' -> 'key_compromise'."""
    spaced = re.sub(r'(?<=[a-z])(?=[A-Z])', '_', text.strip())
    return re.sub(r'[\s-]+', '_', spaced).lower()


@dataclass
class Line:
    """One request line of the file, and what will be (or was) done with it."""
    number: int
    values: dict
    action: str = ''
    identity: str = ''
    errors: list = field(default_factory=list)  # [(column, message)]
    outcome: str = 'invalid'  # issue, renew, revoke, unchanged, invalid
    message: str = ''
    digest: str = ''
    wanted: object = None
    current: CertificateRecord | None = None  # the valid current certificate (possibly expired), or None
    targets: list = field(default_factory=list)  # revoke: the records to revoke
    reason: str = ''
    serial: str = ''  # requested serial (renew, revoke)
    new_serial: str | None = None
    previous_serial: str | None = None
    file_name: str | None = None

    def fail(self, column: str, message: str) -> None:
        self.errors.append((column, message))

    def error_text(self) -> str:
        return '; '.join('%s: %s' % (column, message) if column else message for column, message in self.errors)

    def label(self) -> str:
        return 'line %d%s' % (self.number, ' (%s)' % self.identity if self.identity else '')

    def result(self, mode: str = 'done') -> dict:
        """mode: done (carried out), predicted (check mode) or aborted (other lines were invalid)."""
        result = {'invalid': 'invalid', 'unchanged': 'unchanged', 'issue': 'issued', 'renew': 'renewed',
                  'revoke': 'revoked'}[self.outcome]
        message = self.error_text() if self.errors else self.message
        if self.outcome in ACTIONS and mode == 'predicted':
            result = 'would_be_' + result
        elif self.outcome in ACTIONS and mode == 'aborted':
            result = 'not_carried_out'
            message = 'valid, not carried out because other lines are invalid (on_error: abort)'
        return {'row': self.number, 'identity': self.identity or None, 'action': self.action or None,
                'result': result, 'serial': self.new_serial, 'previous_serial': self.previous_serial,
                'message': message, 'file': self.file_name if mode == 'done' else None}


class BulkInputError(CertfleetError):
    """Invalid lines with on_error: abort. Carries every line's outcome for the module result."""

    def __init__(self, message: str, rows: list):
        super().__init__(message, 'src')
        self.rows = rows


def _digest(line: Line) -> str:
    """The content of a line, independent of column order, spelling of names and case of the action."""
    canonical = {k: line.values.get(k, '').strip() for k in COLUMNS}
    canonical['action'] = canonical['action'].lower()
    if canonical['serial']:
        try:
            canonical['serial'] = normalize_serial(canonical['serial'])
        except InputError:
            pass
    if canonical['reason']:
        canonical['reason'] = canonical_reason(canonical['reason'])
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode('utf-8')).hexdigest()


def _reason(exc: CertfleetError) -> str:
    """The message without the library's field prefix: the line names its column itself."""
    return str(exc.args[0]) if exc.args else exc.message


def _column_of(exc: CertfleetError, default: str) -> str:
    return _FIELD_COLUMNS.get(exc.field or '', default)


class BulkRequest:
    """A request file against a ManagedCA: validate (plan), then carry out (execute)."""

    def __init__(self, ca, *, src: str, format: str = 'auto', on_error: str = 'abort', delivery: str = 'individual',
                 dest: str | None = None, encryption: str = 'modern', iterations: int | None = None,
                 defaults: dict | None = None, renew_before=RENEW_BEFORE, key_retention=KEY_RETENTION_DAYS,
                 workers: int | None = None, name: str | None = None, pickup: dict | None = None):
        if on_error not in ON_ERROR:
            raise InputError('unknown value %r (use abort or skip)' % on_error, 'on_error')
        if delivery not in DELIVERIES:
            raise InputError('unknown value %r (use individual, bundle or pickup)' % delivery, 'delivery')
        self.pickup = _pickup_options(pickup) if delivery == 'pickup' else None
        if encryption not in pkcs12_lib.ENCRYPTIONS:
            raise InputError('unknown encryption %r (use modern or legacy)' % encryption, 'encryption')
        if iterations is not None and iterations < 1000:
            raise InputError('at least 1000 PBKDF2 iterations are required, got %d' % iterations, 'iterations')
        if workers is not None and workers < 1:
            raise InputError('must be at least 1, got %d' % workers, 'workers')
        if not dest:
            raise InputError('is required: the folder that receives the results and PKCS#12 files', 'dest')
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise InputError('%s exists and is not a folder' % dest, 'dest')
        if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
            raise InputError('the folder %s does not exist' % os.path.dirname(os.path.abspath(dest)), 'dest')
        self.ca = ca
        self.src = src
        self.on_error = on_error
        self.delivery = delivery
        self.dest = dest
        self.encryption = encryption
        self.iterations = iterations or BULK_ITERATIONS[encryption]
        self.defaults = dict(defaults or {})
        parse_renew_window(renew_before)  # a bad value is refused before any line is read
        self.renew_before = renew_before
        self.key_retention = key_retention
        self.workers = workers
        self.table = read_table(src, format)
        self.name = name or os.path.splitext(os.path.basename(src))[0] or 'requests'
        if _UNSAFE_FILE_CHARS.search(self.name):
            self.name = _UNSAFE_FILE_CHARS.sub('_', self.name)
        with open(src, 'rb') as handle:
            self.src_sha256 = hashlib.sha256(handle.read()).hexdigest()
        self.columns = self._read_header()
        # A line with a missing or extra field is flagged by _check_syntax; zip() keeps what lines up.
        self.lines = [Line(number, dict(zip(self.columns, [v.strip() for v in values])))  # noqa: B905
                      for number, values in self.table.rows]
        self._field_counts = {number: len(values) for number, values in self.table.rows}
        self.now = ca.clock()

    # -- reading ---------------------------------------------------------------------------------------------
    def _read_header(self) -> list:
        columns, unknown = [], []
        for name in self.table.header:
            canonical = canonical_column(name)
            if canonical is None:
                unknown.append(name.strip())
            columns.append(canonical)
        if unknown:
            raise InputError('line %d: unknown column%s %s in the header (known: %s)'
                             % (self.table.header_line, 's' if len(unknown) > 1 else '',
                                ', '.join(repr(u) for u in unknown), ', '.join(COLUMNS)), 'src')
        seen = set()
        for name in columns:
            if name in seen:
                raise InputError('line %d: column %s appears twice in the header' % (self.table.header_line, name),
                                 'src')
            seen.add(name)
        missing = [c for c in ('action', 'identity') if c not in columns]
        if missing:
            raise InputError('line %d: missing column%s %s in the header (found: %s; every file needs action and '
                             'identity, and CN for issue lines)'
                             % (self.table.header_line, 's' if len(missing) > 1 else '', ', '.join(missing),
                                ', '.join(self.table.header)), 'src')
        return columns

    # -- planning --------------------------------------------------------------------------------------------
    def plan(self) -> None:
        """Decide every line from one snapshot of the store; nothing is written."""
        self.ca.authority.require_valid(self.now)
        for line in self.lines:
            self._check_syntax(line)
        self._check_duplicates()
        identities = sorted({line.identity for line in self.lines if line.identity})
        serials = sorted({line.serial for line in self.lines if line.serial})
        with self.ca.store.read():
            records = self.ca.store.find(identities=identities) if identities else []
            by_serial = {r.serial: r for r in (self.ca.store.find(serials=serials) if serials else [])}
            done = self.ca.store.request_rows(sorted({line.digest for line in self.lines}))
        history: dict = {}
        for record in records:
            history.setdefault(record.identity, []).append(record)
            by_serial.setdefault(record.serial, record)
        done_by_digest: dict = {}
        for row in done:
            done_by_digest.setdefault(row['digest'], []).append(row)
        for line in self.lines:
            if line.errors:
                continue
            try:
                if line.action == 'revoke':
                    self._plan_revoke(line, history.get(line.identity, []), by_serial, done_by_digest)
                else:
                    self._plan_certificate(line, history.get(line.identity, []), by_serial, done_by_digest)
            except CertfleetError as exc:
                line.fail(_column_of(exc, line.action), _reason(exc))
            if line.errors:
                line.outcome = 'invalid'
        self._name_files()

    def _check_syntax(self, line: Line) -> None:
        count = self._field_counts[line.number]
        if count != len(self.columns):
            line.fail('', 'has %d field%s, the header has %d (a missing or extra %s?)'
                      % (count, '' if count == 1 else 's', len(self.columns),
                         'tab' if self.table.delimiter == '\t' else 'separator'))
            line.identity = line.values.get('identity', '')
            return
        line.digest = _digest(line)
        action = line.values.get('action', '').lower()
        if action not in ACTIONS:
            line.fail('action', 'unknown action %r (use issue, renew or revoke)' % line.values.get('action', '')
                      if action else 'is empty (use issue, renew or revoke)')
        line.action = action
        raw_identity = line.values.get('identity', '')
        try:
            if raw_identity or action != 'revoke':
                line.identity = validate_identity(raw_identity)
        except InputError as exc:
            line.fail('identity', _reason(exc))
        if line.values.get('serial'):
            try:
                line.serial = normalize_serial(line.values['serial'])
            except InputError as exc:
                line.fail('serial', _reason(exc))
        reason = line.values.get('reason', '')
        if action == 'revoke':
            try:
                line.reason = validate_reason(canonical_reason(reason) if reason else 'unspecified')
            except InputError as exc:
                line.fail('reason', _reason(exc))
            if not line.identity and not line.serial and not line.errors:
                line.fail('serial', 'a revoke line needs the serial to revoke, or the identity whose valid '
                          'certificates are all revoked')
        elif action:
            if reason:
                line.fail('reason', 'applies to revoke lines only')
            if action == 'issue' and line.serial:
                line.fail('serial', 'applies to renew and revoke lines; an issue line gets a new serial')

    def _check_duplicates(self) -> None:
        by_identity: dict = {}
        by_serial: dict = {}
        for line in self.lines:
            if line.action in ('issue', 'renew') and line.identity:
                by_identity.setdefault(line.identity, []).append(line)
            if line.action == 'revoke' and line.serial:
                by_serial.setdefault(line.serial, []).append(line)
        for key, group, column in ([(k, g, 'identity') for k, g in by_identity.items()]
                                   + [(k, g, 'serial') for k, g in by_serial.items()]):
            if len(group) < 2:
                continue
            numbers = [g.number for g in group]
            for line in group:
                others = ', '.join(str(n) for n in numbers if n != line.number)
                line.fail(column, '%s %s appears more than once in the file (also on line%s %s)'
                          % (column, key, 's' if len(numbers) > 2 else '', others))

    def _subject_from(self, line: Line, base: dict | None) -> dict:
        subject = {k: list(v) for k, v in (base or {}).items()}
        for column in SUBJECT_COLUMNS:
            value = line.values.get(column)
            if value:
                subject[column] = [value]
        return subject

    def _plan_certificate(self, line: Line, history: list, by_serial: dict, done_by_digest: dict) -> None:
        """Decide an issue or renew line with the lifecycle engine, from the identity's history."""
        current = next((r for r in history if r.is_current and r.status == 'valid'), None)
        line.wanted = self._wanted_for(line, current, history)
        line.current = current
        decision = decide(current, line.wanted, self.now, bool(history))
        changes = '; '.join(r.text for r in decision.changes())
        if line.action == 'issue':
            self._plan_issue(line, current, decision, changes)
            return
        earlier = [row for row in done_by_digest.get(line.digest, []) if row['serial'] == current.serial]
        if line.serial and line.serial != current.serial and not earlier:
            named = by_serial.get(line.serial)
            if named is None or named.identity != line.identity:
                raise InputError('%s is not a certificate of identity %r' % (line.serial, line.identity), 'serial')
            raise InputError('%s is not the current certificate of %r (that is %s); renew names the current one'
                             % (line.serial, line.identity, current.serial), 'serial')
        if earlier and not decision.window_reached:
            line.outcome = 'unchanged'
            line.new_serial = current.serial
            line.previous_serial = earlier[-1]['previous_serial']
            line.message = 'renewed by this same request line at %s' % to_iso(earlier[-1]['processed_at'])
            return
        line.outcome = 'renew'
        line.previous_serial = current.serial
        line.message = 'renewed' + (' (%s)' % changes if changes else '')

    def _wanted_for(self, line: Line, current, history: list):
        """The request of a line: an issue line from its columns and the defaults, a renew line from the current
        certificate with the columns it sets."""
        values = line.values
        if line.action == 'renew':
            if current is None:
                last = history[-1] if history else None
                raise InputError('%r has no certificate to renew%s; use action issue'
                                 % (line.identity, '' if last is None else ' (its last one, %s, is %s)'
                                    % (last.serial, last.state(self.now))), 'identity')
            subject = self._subject_from(line, current.subject)
            if values.get('email'):
                subject.pop('emailAddress', None)
                sans = [s for s in current.sans if not s.startswith('email:')]
            else:
                sans = list(current.sans)
            profile = values.get('profile') or current.profile
            key_type = values.get('key_type') or current.key_type
        else:
            if not values.get('CN'):
                raise InputError('is required for issue lines', 'subject.CN')
            subject = self._subject_from(line, None)
            sans = None
            profile = values.get('profile') or self.defaults.get('profile') or DEFAULT_PROFILE
            key_type = values.get('key_type') or self.defaults.get('key_type') or KEY_TYPE
        return self.ca.build_wanted(
            identity=line.identity, subject=subject, email=values.get('email') or None, sans=sans,
            profile=profile, key_type=key_type,
            valid_days=values.get('valid_days') or self.defaults.get('valid_days') or VALID_DAYS,
            renew_before=self.renew_before, key_retention=self.key_retention)

    @staticmethod
    def _plan_issue(line: Line, current, decision, changes: str) -> None:
        """An issue line issues when there is no valid certificate; it never renews one that differs."""
        if current is None or 'expired' in decision.codes:
            line.outcome = 'issue'
            line.previous_serial = current.serial if current else None
            line.message = 'no valid certificate' if current is None else 'the current one expired'
            return
        if changes:
            raise InputError('%r already holds certificate %s (%s); use action renew'
                             % (line.identity, current.serial, changes), 'identity')
        line.outcome = 'unchanged'
        line.new_serial = current.serial
        line.message = 'already holds certificate %s, valid until %s' % (current.serial, to_iso(current.not_after))

    def _plan_revoke(self, line: Line, history: list, by_serial: dict, done_by_digest: dict) -> None:
        done = {row['serial'] for row in done_by_digest.get(line.digest, [])}
        if line.serial:
            record = by_serial.get(line.serial)
            if record is None:
                raise InputError('no certificate with serial %s was issued by this CA' % line.serial, 'serial')
            if line.identity and record.identity != line.identity:
                raise InputError('certificate %s belongs to identity %r, not %r'
                                 % (line.serial, record.identity, line.identity), 'serial')
            line.identity = record.identity
            if record.status == 'revoked':
                if record.serial in done:
                    line.outcome = 'unchanged'
                    line.previous_serial = record.serial
                    line.message = 'revoked by this same request line at %s' % to_iso(record.revoked_at)
                    return
                raise InputError('certificate %s is already revoked (at %s, reason %s)'
                                 % (line.serial, to_iso(record.revoked_at), record.revocation_reason), 'serial')
            line.targets = [record]
        else:
            if not history:
                raise InputError('no certificate was issued to identity %r' % line.identity, 'identity')
            line.targets = [r for r in history if r.status == 'valid' and self.now < r.not_after]
            if not line.targets:
                if done & {r.serial for r in history}:
                    line.outcome = 'unchanged'
                    line.message = 'revoked by this same request line'
                    return
                raise InputError('%r has no valid certificate left to revoke' % line.identity, 'identity')
        line.outcome = 'revoke'
        line.previous_serial = ' '.join(r.serial for r in line.targets)
        line.message = 'revoked (%s)' % line.reason

    def _name_files(self) -> None:
        used = set()
        for line in self.lines:
            if line.outcome not in ('issue', 'renew') or self.delivery == 'pickup':  # pickups write no file
                continue
            base = _UNSAFE_FILE_CHARS.sub('_', line.identity)[:120] or 'identity'
            candidate = base + '.p12'
            counter = 2
            while candidate.lower() in used:
                candidate = '%s-%d.p12' % (base, counter)
                counter += 1
            used.add(candidate.lower())
            line.file_name = candidate

    # -- summary ---------------------------------------------------------------------------------------------
    def invalid(self) -> list:
        return [line for line in self.lines if line.outcome == 'invalid']

    def rows(self, mode: str = 'done') -> list:
        return [line.result(mode) for line in self.lines]

    def counts(self) -> dict:
        counts = {'issued': 0, 'renewed': 0, 'revoked': 0, 'unchanged': 0, 'invalid': 0}
        for row in self.rows():
            counts[row['result']] += 1
        return counts

    def failure_message(self) -> str:
        bad = self.invalid()
        shown = '; '.join('%s: %s' % (line.label(), line.error_text()) for line in bad[:20])
        more = ' (and %d more)' % (len(bad) - 20) if len(bad) > 20 else ''
        return ('%d of %d request lines in %s are invalid; nothing was done (on_error: abort): %s%s'
                % (len(bad), len(self.lines), self.src, shown, more))

    # -- carrying out ----------------------------------------------------------------------------------------
    def execute(self, check_mode: bool = False) -> dict:
        self.plan()
        if self.invalid() and self.on_error == 'abort':
            raise BulkInputError(self.failure_message(), self.rows('aborted'))
        work = [line for line in self.lines if line.outcome in ('issue', 'renew', 'revoke')]
        result = {'changed': bool(work), 'src': self.src, 'src_sha256': self.src_sha256,
                  'format': self.table.format, 'delivery': self.delivery, 'encryption': self.encryption,
                  'iterations': self.iterations, 'output_dir': None, 'results_file': None,
                  'passwords_file': None, 'bundle_file': None, 'handback_file': None, 'pickups_file': None,
                  'pins_file': None, 'warnings': []}
        if self.invalid():
            result['warnings'].append('%d of %d request lines are invalid and were skipped (on_error: skip): %s'
                                      % (len(self.invalid()), len(self.lines), '; '.join(
                                          '%s: %s' % (line.label(), line.error_text())
                                          for line in self.invalid()[:10])))
        if not work or check_mode:
            result.update(rows=self.rows('predicted'), counts=self.counts())
            return result
        with writing(self.dest, 'dest', 'create a folder in'):
            ensure_private_dir(self.dest, 'dest')
            final_dir, staging = self._run_folder()
        issued = self._deliver(work, final_dir, staging)
        result.update(self._output_paths(final_dir, issued))
        if self.delivery == 'pickup' and issued:
            result.update(self._create_pickups(final_dir, issued))
        result.update(rows=self.rows(), counts=self.counts())
        return result

    def _deliver(self, work: list, final_dir: str, staging: str) -> dict:
        """Files first, durable and in their final place, then the store commit that points to them.

        The files are written without waiting for the disk each time; one sync for the whole folder follows, then
        the rename to the final name (made durable too), then the commit. Killed at any moment, the store either
        records nothing of the batch or every file its rows name is in place; a failed commit removes the folder.
        """
        folder = staging
        try:
            with writing(staging, 'dest'):  # a failed write of any output file leaves no partial folder
                issued = self._issue_all([line for line in work if line.outcome in ('issue', 'renew')], staging)
                self._write_outputs(staging, issued)
                sync_folder_files(staging)
            with writing(final_dir, 'dest', 'rename the finished output folder to'):
                os.rename(staging, final_dir)
                folder = final_dir
                fsync_folder(self.dest)
            self._commit(work, issued, os.path.basename(final_dir))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return issued

    def _run_folder(self) -> tuple:
        """(final folder, staging folder): a name no other run uses; the staging folder is created (0700)."""
        stamp = self.now.strftime('%Y%m%dT%H%M%SZ')
        for counter in range(1, 1000):
            name = '%s-%s' % (self.name, stamp) + ('-%d' % counter if counter > 1 else '')
            final = os.path.join(self.dest, name)
            staging = os.path.join(self.dest, '.%s.partial' % name)
            if os.path.exists(final):
                continue
            try:
                os.mkdir(staging, 0o700)  # atomic: two runs in the same second cannot both get this name
            except FileExistsError:
                continue
            return final, staging
        raise InputError('no free output folder name for %s in %s' % (self.name, self.dest), 'dest')

    def _issue_all(self, lines: list, staging: str) -> dict:
        """Keys, certificates and PKCS#12 files for ``lines``, on all cores. Returns {line number: issued}."""
        if not lines:
            return {}
        authority = self.ca.authority
        context = {
            'signer': self.ca.signer(), 'chain': [authority.certificate] + list(authority.chain), 'now': self.now,
            'wrapper': self.ca.key_wrapper(), 'encryption': self.encryption, 'iterations': self.iterations,
            'staging': staging, 'pkcs12': self.delivery != 'pickup',
        }
        jobs = [{'line': line.number, 'wanted': line.wanted, 'file_name': line.file_name,
                 'renews': line.current.serial if line.current is not None else None} for line in lines]
        return {item['line']: item for item in run_jobs(jobs, context, self.workers)}

    def _create_pickups(self, final_dir: str, issued: dict) -> dict:
        """After the commit: one pickup per issued certificate (its key stays held for it). The URLs and the PINs go
        to two separate 0600 files, so that each can travel by its own channel (the URL by e-mail, the PIN by
        another way). Running client_certificate_pickup for an identity gives a missing one later."""
        from ansible_collections.certfleet.pki.plugins.module_utils.ca.pickup import create_pickup

        urls, pins = [], []
        for line in self.lines:
            if line.number not in issued:
                continue
            made = create_pickup(self.ca, identity=line.identity, **self.pickup)
            serial = issued[line.number]['record'].serial
            email = (line.values.get('email') or '').strip()
            urls.append((line.identity, serial, email, made['url'] or ''))
            pins.append((line.identity, serial, made.get('pin') or ''))
            line.message = (line.message + '; ' if line.message else '') + 'pickup %s' % made['pickup_id']
        # Always tab-separated, whatever the request file: no field can hold a tab (identities refuse control
        # characters), so a playbook splits the lines without a CSV parser.
        paths = {'pickups_file': os.path.join(final_dir, 'pickups.tsv'),
                 'pins_file': os.path.join(final_dir, 'pickup-pins.tsv')}
        atomic_write(paths['pickups_file'], render_table(['identity', 'serial', 'email', 'url'], urls, '\t'))
        atomic_write(paths['pins_file'], render_table(['identity', 'serial', 'pin'], pins, '\t'))
        return paths

    def _write_outputs(self, staging: str, issued: dict) -> None:
        delimiter = self.table.delimiter
        extension = 'tsv' if delimiter == '\t' else 'csv'
        atomic_write(os.path.join(staging, 'results.%s' % extension),
                     render_table(list(RESULT_COLUMNS), [self._result_row(line, issued) for line in self.lines],
                                  delimiter))
        renewed = [line for line in self.lines if line.outcome == 'renew']
        if renewed:
            atomic_write(os.path.join(staging, 'revoke-old.%s' % extension),
                         render_table(list(HANDBACK_COLUMNS),
                                      [('revoke', line.identity, line.previous_serial, 'superseded')
                                       for line in renewed], delimiter))
        if not issued or self.delivery == 'pickup':
            return
        passwords = render_table(['identity', 'serial', 'file', 'password'],
                                 [(line.identity, issued[line.number]['record'].serial, line.file_name,
                                   issued[line.number]['password'])
                                  for line in self.lines if line.number in issued], delimiter)
        if self.delivery == 'individual':
            atomic_write(os.path.join(staging, 'passwords.%s' % extension), passwords)
            return
        bundle = os.path.join(staging, '%s.zip' % self.name)
        descriptor = os.open(bundle + '.tmp', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, 'wb') as handle:
            with zipfile.ZipFile(handle, 'w', compression=zipfile.ZIP_STORED) as archive:
                for line in self.lines:
                    if line.number in issued:
                        archive.write(os.path.join(staging, line.file_name), line.file_name)
                archive.writestr(zipfile.ZipInfo('passwords.%s' % extension, self.now.timetuple()[:6]), passwords,
                                 compress_type=zipfile.ZIP_DEFLATED)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(bundle + '.tmp', bundle)
        for line in self.lines:  # the archive is now the only copy
            if line.number in issued:
                os.unlink(os.path.join(staging, line.file_name))

    def _result_row(self, line: Line, issued: dict) -> list:
        row = line.result()
        if line.number in issued:
            row['serial'] = issued[line.number]['record'].serial
        return [row[c] for c in RESULT_COLUMNS]

    def _commit(self, work: list, issued: dict, batch: str) -> None:
        """Every certificate, revocation and audit entry in one transaction, or nothing."""
        store = self.ca.store
        for line in work:
            if line.number in issued:
                line.new_serial = issued[line.number]['record'].serial
        with store.write():
            store.purge_keys(self.now)
            self._check_unchanged(store, work, issued)
            for line in work:
                details = {'request': batch, 'line': line.number}
                if line.outcome in ('issue', 'renew'):
                    item = issued[line.number]
                    commit_issued(store, [Issued(item['record'], item['wrapped'], line.current, line.outcome,
                                                 dict(details, delivery=self.delivery))], self.now)
                else:
                    commit_revoked(store, line.targets, self.now, line.reason, details)
            store.record_request_rows(self._request_rows(work, batch))
            store.append_audit(self.now, 'bulk_request', None, [], 'done',
                               {'request': batch, 'src': os.path.abspath(self.src), 'src_sha256': self.src_sha256,
                                'lines': len(self.lines), 'counts': self.counts(), 'delivery': self.delivery,
                                'encryption': self.encryption, 'on_error': self.on_error})

    def _check_unchanged(self, store, work: list, issued: dict) -> None:
        """Under the write lock: nothing the decisions rest on changed since the plan."""
        identities = sorted({line.identity for line in work})
        latest = {r.serial: r for r in store.find(identities=identities)}
        current_now = {r.identity: r.serial for r in latest.values() if r.is_current and r.status == 'valid'}
        if store.find(serials=[item['record'].serial for item in issued.values()]):
            raise StoreError('a drawn serial number is already in use; nothing was written, run again')
        for line in work:
            planned = line.current.serial if line.current is not None else None
            if line.outcome in ('issue', 'renew') and current_now.get(line.identity) != planned:
                raise StoreError('%s: the certificates of %r changed while this batch was prepared (another run '
                                 'at the same time?); nothing was written, run the file again'
                                 % (line.label(), line.identity), 'src')
            for target in line.targets if line.outcome == 'revoke' else []:
                now_record = latest.get(target.serial) or store.get(target.serial)
                if now_record is None or now_record.status != 'valid':
                    raise StoreError('%s: certificate %s was revoked by someone else while this batch was '
                                     'prepared; nothing was written, run the file again'
                                     % (line.label(), target.serial), 'src')

    def _request_rows(self, work: list, batch: str) -> list:
        """What each carried-out line did, so that running the file again recognises it."""
        rows = []
        for line in work:
            base = {'digest': line.digest, 'batch': batch, 'line': line.number, 'processed_at': self.now}
            if line.outcome in ('issue', 'renew'):
                rows.append(dict(base, action=line.action, identity=line.identity, serial=line.new_serial,
                                 previous_serial=line.current.serial if line.current is not None else None))
            else:
                rows += [dict(base, action='revoke', identity=target.identity, serial=target.serial,
                              previous_serial=None) for target in line.targets]
        return rows

    def _output_paths(self, final_dir: str, issued: dict) -> dict:
        extension = 'tsv' if self.table.delimiter == '\t' else 'csv'
        paths = {'output_dir': final_dir, 'results_file': os.path.join(final_dir, 'results.%s' % extension)}
        if any(line.outcome == 'renew' for line in self.lines):
            paths['handback_file'] = os.path.join(final_dir, 'revoke-old.%s' % extension)
        if issued and self.delivery != 'pickup':
            if self.delivery == 'individual':
                paths['passwords_file'] = os.path.join(final_dir, 'passwords.%s' % extension)
                for line in self.lines:
                    if line.number in issued:
                        line.file_name = os.path.join(final_dir, line.file_name)
            else:
                paths['bundle_file'] = os.path.join(final_dir, '%s.zip' % self.name)
        return paths


PICKUP_OPTIONS = ('base_url', 'format', 'lock_after_first_days', 'expire_after_issue_days', 'max_downloads',
                  'max_attempts')


def _pickup_options(options) -> dict:
    """The pickup settings of delivery: pickup, checked before any line is read (create_pickup's own checks, on a
    dry value, so a bad one fails here and not after the certificates are committed)."""
    from ansible_collections.certfleet.pki.plugins.module_utils.ca import pickup as pickup_lib

    if not isinstance(options, dict) or not options.get('base_url'):
        raise InputError('delivery: pickup needs pickup.base_url, the portal address the URLs start with',
                         'pickup.base_url')
    unknown = sorted(set(options) - set(PICKUP_OPTIONS))
    if unknown:
        raise InputError('unknown option(s) %s (use %s)' % (', '.join(unknown), ', '.join(PICKUP_OPTIONS)), 'pickup')
    chosen = dict(pickup_lib.DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    try:
        return pickup_lib.check_pickup_options(chosen)
    except InputError as exc:
        raise InputError(str(exc.args[0]) if exc.args else exc.message, 'pickup.%s' % exc.field) from None


# PBKDF2 rounds for files protected by a generated password. The rounds slow down guessing of a password a person
# chose; a 148-bit random password cannot be guessed at any round count, so bulk files (and the batch exports of
# client_certificate_export with generate_passwords, which use new_password too) use OpenSSL's default instead of
# the 600,000 rounds client_certificate_export applies to chosen passwords.
BULK_ITERATIONS = {'modern': 2048, 'legacy': 2048}


# -- the crypto workers ------------------------------------------------------------------------------------------
_CONTEXT: dict = {}


def _set_context(context: dict) -> None:
    _CONTEXT.clear()
    _CONTEXT.update(context)


def issue_one(job: dict) -> dict:
    """Key, signed record, sealed key and PKCS#12 file for one line. Runs in a worker process (or inline)."""
    context = _CONTEXT
    wanted = job['wanted']
    key = generate_private_key(wanted.key_type)
    certificate, record = context['signer'].sign(wanted, key.public_key(), context['now'], renews=job['renews'])
    wrapped = context['wrapper'].wrap(key, record.serial)
    if not context.get('pkcs12', True):  # delivery by pickup: the held key is packed at download time
        return {'line': job['line'], 'record': record, 'password': None, 'wrapped': wrapped}
    password = new_password()
    data = pkcs12_lib.serialize(key=key, certificate=certificate, chain=context['chain'], password=password,
                                encryption=context['encryption'], friendly_name=wanted.identity,
                                iterations=context['iterations'])
    path = os.path.join(context['staging'], job['file_name'])
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, 'wb') as handle:  # made durable with the whole folder, before the store commit
        handle.write(data)
    return {'line': job['line'], 'record': record, 'password': password, 'wrapped': wrapped}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_jobs(jobs: list, context: dict, workers: int | None = None, function=issue_one) -> list:
    """Run ``function`` over ``jobs`` with ``context`` on ``workers`` forked processes (default: every core).

    Workers are forked so that the unlocked CA key reaches them through memory, never through a pipe or a file;
    only the jobs and their results travel. Small batches run inline.
    """
    count = min(workers or available_cores(), len(jobs))
    if count <= 1 or len(jobs) < INLINE_JOBS:
        _set_context(context)
        try:
            return [function(job) for job in jobs]
        finally:
            _CONTEXT.clear()
    chunk = max(1, min(16, len(jobs) // (count * 8)))
    with multiprocessing.get_context('fork').Pool(count, initializer=_set_context, initargs=(context,)) as pool:
        return list(pool.imap_unordered(function, jobs, chunksize=chunk))


# -- inventory download ------------------------------------------------------------------------------------------
INVENTORY_COLUMNS = ('serial', 'identity', 'status', 'current', 'pending_revocation', 'CN', 'email', 'subject',
                     'profile', 'key_type', 'not_before', 'not_after', 'issued_at', 'renews', 'renewed_by',
                     'revoked_at', 'revocation_reason', 'key_status', 'fingerprint_sha256')
INVENTORY_STATUSES = ('valid', 'revoked', 'expired', 'pending_revocation')


def write_inventory(ca, *, dest: str, format: str = 'auto', identities=None, statuses=None, expiring_within=None,
                    check_mode: bool = False) -> dict:
    """Every certificate the CA issued (or those the filters select) as a TSV/CSV file; rewritten only if its
    content changed. The file names people, so it is written 0600."""
    if not dest:
        raise InputError('is required', 'dest')
    check_dest_folder(dest)
    format, delimiter = format_for(dest, format, '')
    wanted_identities = None
    if identities:
        wanted_identities = {validate_identity(i, 'identity') for i in identities}
    for status in statuses or []:
        if status not in INVENTORY_STATUSES:
            raise InputError('unknown status %r (use %s)' % (status, ', '.join(INVENTORY_STATUSES)), 'status')
    result = ca.query(expiring_within=expiring_within)
    rows = []
    for certificate in result['certificates']:
        if wanted_identities is not None and certificate['identity'] not in wanted_identities:
            continue
        states = {certificate['status']}
        if certificate['pending_revocation'] and certificate['status'] == 'valid':
            states.add('pending_revocation')
        if statuses and not states & set(statuses):
            continue
        fields = certificate['subject_fields']
        emails = [s[len('email:'):] for s in certificate['sans'] if s.startswith('email:')]
        cn = fields.get('CN')
        values = dict(certificate, CN=', '.join(cn) if isinstance(cn, list) else cn, email=' '.join(emails))
        rows.append([values.get(column) for column in INVENTORY_COLUMNS])
    rows.sort(key=lambda row: (row[1], row[12] or '', row[0]))
    data = render_table(list(INVENTORY_COLUMNS), rows, delimiter)
    changed = read_bytes(dest) != data or file_mode(dest) != 0o600
    if changed and not check_mode:
        atomic_write(dest, data, 0o600, field='dest')
    return {'changed': changed, 'dest': dest, 'format': format, 'count': len(rows), 'columns': list(INVENTORY_COLUMNS),
            'totals': result['totals']}
