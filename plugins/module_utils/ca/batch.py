# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many identities' certificates in one call: ``client_certificate`` with ``certificates`` (private module_utils).

Every entry is validated first (a bad entry anywhere fails the call, naming ``certificates[i].field`` and the
identity, and nothing is written); every entry is then decided from one read of the store with the same rule as
one identity (``lifecycle.decide``); keys are generated only for the entries that need a certificate; and every
new certificate is committed in ONE write transaction that re-reads each identity's current certificate and
decides again where another process changed it meanwhile. Check mode stops after the decision.
"""

from __future__ import annotations

from ansible_collections.certfleet.pki.plugins.module_utils.ca.keys import generate_private_key
from ansible_collections.certfleet.pki.plugins.module_utils.ca.lifecycle import (
    Issued, KEY_RETENTION_DAYS, KEY_TYPE, RENEW_BEFORE, VALID_DAYS, commit_issued, decide,
)
from ansible_collections.certfleet.pki.plugins.module_utils.ca.profiles import DEFAULT_PROFILE
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

# What an entry may set; the options it does not set come from ``defaults`` (the module's top-level options).
ENTRY_KEYS = ('identity', 'subject', 'email', 'sans', 'profile', 'key_type', 'valid_days', 'renew_before', 'force',
              'renew')
DEFAULTS = {'profile': DEFAULT_PROFILE, 'key_type': KEY_TYPE, 'valid_days': VALID_DAYS, 'renew_before': RENEW_BEFORE,
            'key_retention': KEY_RETENTION_DAYS, 'renew': True, 'force': False}
FIELD = 'certificates'


def ensure_certificates(ca, entries, check_mode: bool = False, defaults: dict | None = None) -> dict:
    """Issue or renew each entry of ``entries`` that ``decide`` says needs it, all in one transaction.

    ``entries`` are dicts of ``ENTRY_KEYS`` (a missing or None value takes ``defaults``, then ``DEFAULTS``). The
    result has one entry per input entry, in input order, with the keys of the single-identity result but no
    ``diff`` (the diffs of the changed entries are the top-level ``diff`` list), and ``counts``."""
    wanted = validate_entries(ca, entries, defaults)
    now = ca.clock()
    ca.authority.require_valid(now)
    states = _read_states(ca.store, wanted)
    items = []
    for entry in wanted:
        current, had_history = states[entry.identity]
        items.append({'wanted': entry, 'current': current, 'decision': decide(current, entry, now, had_history)})
    due = [item for item in items if item['decision'].action != 'none']
    if check_mode:
        for item in due:
            item['result'] = ca._predicted(item['current'], item['wanted'], item['decision'], now)
    elif due:
        for item in due:
            item['key'] = generate_private_key(item['wanted'].key_type)
        _commit(ca, due, now)
    for item in items:
        if 'result' not in item:
            item['result'] = ca._ensure_result(item['current'], item['decision'], None, changed=False)
    return _batch_result(items)


def validate_entries(ca, entries, defaults: dict | None = None) -> list:
    """One ``Wanted`` per entry, validated with ``ca.build_wanted``; nothing is read from or written to the store.
    An error names the entry (``certificates[3].subject``) and its identity; an identity given twice fails."""
    if isinstance(entries, (str, bytes, dict)) or not isinstance(entries, (list, tuple)):
        raise InputError('must be a list of dictionaries', FIELD)
    base = dict(DEFAULTS, **{k: v for k, v in (defaults or {}).items() if v is not None})
    wanted, seen = [], {}
    for index, entry in enumerate(entries):
        field = '%s[%d]' % (FIELD, index)
        item = _wanted(ca, field, entry, base)
        if item.identity in seen:
            raise InputError('identity %r is also %s[%d]; give each identity once'
                             % (item.identity, FIELD, seen[item.identity]), field + '.identity')
        seen[item.identity] = index
        wanted.append(item)
    return wanted


def _wanted(ca, field: str, entry, base: dict):
    if not isinstance(entry, dict):
        raise InputError('must be a dictionary with identity and subject', field)
    unknown = sorted(k for k in set(entry) - set(ENTRY_KEYS) if entry[k] is not None)
    if unknown:
        plural = 's' if len(unknown) > 1 else ''
        raise InputError('unknown key%s %s (use %s)' % (plural, ', '.join(unknown), ', '.join(ENTRY_KEYS)), field)
    params = dict(base, **{k: entry[k] for k in ENTRY_KEYS if entry.get(k) is not None})
    try:
        return ca.build_wanted(identity=entry.get('identity'), subject=params.get('subject'),
                               email=params.get('email'), sans=params.get('sans'), profile=params['profile'],
                               key_type=params['key_type'], valid_days=params['valid_days'],
                               renew_before=params['renew_before'], force=params['force'],
                               key_retention=params['key_retention'], renew=params['renew'])
    except InputError as exc:
        raise _entry_error(exc, field, entry.get('identity')) from exc


def _entry_error(exc: InputError, field: str, identity) -> InputError:
    """The same kind of error (InputError, PolicyError), its field under the entry's, naming the identity."""
    text = str(exc.args[0]) if exc.args else ''
    if exc.field and text.startswith(exc.field):
        text = text[len(exc.field):].lstrip(': ')
    if identity is not None and str(identity).strip():
        text = '%s (identity %r)' % (text, str(identity).strip())
    return type(exc)(text, '%s.%s' % (field, exc.field) if exc.field else field, exc.code)


def _read_states(store, wanted: list) -> dict:
    """identity -> (current record or None, whether it ever had a certificate), from one read of the store."""
    identities = sorted({w.identity for w in wanted})
    states = {identity: (None, False) for identity in identities}
    for record in store.find(identities=identities) if identities else []:
        current = states[record.identity][0]
        states[record.identity] = (record if record.is_current else current, True)
    return states


def _commit(ca, due: list, now) -> None:
    """Sign and commit every due item in one write transaction. Under the lock, an identity whose current serial
    changed since the decision is decided again on what is there; when nothing is due any more it is reported
    unchanged."""
    store = ca.store
    with store.write():
        store.purge_keys(now)
        latest = _read_states(store, [item['wanted'] for item in due])
        issued = []
        for item in due:
            wanted, current = item['wanted'], item['current']
            now_current, had_history = latest[wanted.identity]
            if (now_current and now_current.serial) != (current and current.serial):
                item['current'] = current = now_current
                item['decision'] = decide(now_current, wanted, now, had_history)
                if item['decision'].action == 'none':
                    continue
            record = ca._sign(wanted, item['key'].public_key(), True, now, current)
            wrapped = ca.key_wrapper().wrap(item['key'], record.serial)
            issued.append(Issued(record, wrapped, current, item['decision'].action,
                                 {'reason': '; '.join(item['decision'].texts)}))
            item['result'] = ca._ensure_result(record, item['decision'], current, changed=True)
        commit_issued(store, issued, now)


def _batch_result(items: list) -> dict:
    results, diffs = [], []
    counts = {'issued': 0, 'renewed': 0, 'unchanged': 0}
    for item in items:
        result = item['result']
        diff = result.pop('diff', None)
        if diff is not None:
            diffs.append(dict(diff, before_header=result['identity'], after_header=result['identity']))
        counts[result['action'] if result['changed'] else 'unchanged'] += 1
        results.append(result)
    output = {'changed': any(r['changed'] for r in results), 'certificates': results, 'counts': counts}
    if diffs:
        output['diff'] = diffs
    return output
