# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""endpoints.chromium_policy: one AutoSelectCertificateForUrls value shared by every identity of a host."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints import chromium_policy as cp

CA = 'Example Client CA'
NAME = 'certfleet-client-certificate.json'


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / 'managed'
    path.mkdir()
    os.chmod(path, 0o755)
    return path


def ensure(folder, identity, urls=(), state='present', subject=None, **params):
    params.setdefault('issuer_cn', CA)
    params.setdefault('require_root_owner', False)
    return cp.ensure_chromium_policy(path=str(folder / NAME), identity=identity, urls=list(urls), state=state,
                                     subject=subject if subject is not None else {'CN': identity.title()}, **params)


def value(folder, name=NAME) -> list:
    return json.loads((folder / name).read_text())[cp.POLICY]


def parsed(folder, name=NAME) -> list:
    return [json.loads(text) for text in value(folder, name)]


def patterns_of(folder, identity) -> list:
    return [e['pattern'] for e in parsed(folder) if e.get(cp.OWNER_KEY) == identity and cp.CARRIED_KEY not in e]


def test_first_run_writes_the_entries_rerun_is_unchanged_and_check_mode_predicts(folder):
    first = ensure(folder, 'alice', ['https://a.example.org', 'https://b.example.org'], check_mode=True)
    assert first['changed'] and 'file_created' in first['reason_codes']
    assert not (folder / NAME).exists()
    written = ensure(folder, 'alice', ['https://a.example.org', 'https://b.example.org'])
    assert written['changed'] and written['entries'] == first['entries']
    assert stat.S_IMODE(os.stat(folder / NAME).st_mode) == 0o644
    entry = parsed(folder)[0]
    assert entry == {'pattern': 'https://a.example.org', 'certfleet_identity': 'alice',
                     'filter': {'ISSUER': {'CN': CA}, 'SUBJECT': {'CN': 'Alice'}}}
    again = ensure(folder, 'alice', ['https://a.example.org', 'https://b.example.org'])
    assert not again['changed'] and again['reason_codes'] == []
    assert json.loads(again['diff']['before']) == json.loads(again['diff']['after'])


def test_identities_are_merged_and_renewing_one_changes_only_its_entries(folder):
    ensure(folder, 'alice', ['https://a.example.org'])
    ensure(folder, 'bob', ['https://b.example.org'])
    assert patterns_of(folder, 'alice') == ['https://a.example.org']
    assert patterns_of(folder, 'bob') == ['https://b.example.org']
    bob_before = [t for t in value(folder) if '"bob"' in t]
    # Alice's deployment again (a renewal) with another URL: Bob's entry is untouched, byte for byte.
    result = ensure(folder, 'alice', ['https://a2.example.org'])
    assert result['changed'] and set(result['reason_codes']) == {'entries_added', 'entries_removed'}
    assert patterns_of(folder, 'alice') == ['https://a2.example.org']
    assert [t for t in value(folder) if '"bob"' in t] == bob_before


def test_same_ca_identities_are_told_apart_by_subject(folder):
    alice = {'CN': 'Alice Example', 'O': 'Example Org', 'C': 'DE', 'emailAddress': 'alice@example.org'}
    ensure(folder, 'alice', ['https://a.example.org'], subject=alice)
    ensure(folder, 'bob', ['https://b.example.org'], subject={'commonName': ['Bob Example', 'B2'], 'OU': 'Ops'})
    filters = {e['certfleet_identity']: e['filter'] for e in parsed(folder)}
    # Chromium compares CN, L, O and OU only; the rest is left out, and of a multi-valued one the first value.
    assert filters['alice'] == {'ISSUER': {'CN': CA}, 'SUBJECT': {'CN': 'Alice Example', 'O': 'Example Org'}}
    assert filters['bob'] == {'ISSUER': {'CN': CA}, 'SUBJECT': {'CN': 'Bob Example', 'OU': 'Ops'}}


def test_absent_removes_only_that_identity_and_the_file_goes_when_empty(folder):
    ensure(folder, 'alice', ['https://a.example.org'])
    ensure(folder, 'bob', ['https://b.example.org'])
    removed = ensure(folder, 'alice', state='absent')
    assert removed['changed'] and removed['reason_codes'] == ['entries_removed'] and removed['entries'] == []
    assert patterns_of(folder, 'alice') == [] and patterns_of(folder, 'bob') == ['https://b.example.org']
    assert not ensure(folder, 'alice', state='absent')['changed']
    # Present with no URL is the same as absent for that identity.
    last = ensure(folder, 'bob', [])
    assert last['changed'] and 'file_removed' in last['reason_codes']
    assert not (folder / NAME).exists()
    assert not ensure(folder, 'bob', state='absent')['changed']


def test_entries_and_keys_added_by_hand_are_kept(folder):
    hand = json.dumps({'pattern': 'https://intranet.example.org', 'filter': {'ISSUER': {'CN': 'Other CA'}}})
    (folder / NAME).write_text(json.dumps({cp.POLICY: [hand], 'ShowHomeButton': True}))
    ensure(folder, 'alice', ['https://a.example.org'])
    document = json.loads((folder / NAME).read_text())
    assert document['ShowHomeButton'] is True
    assert document[cp.POLICY][0] == hand and patterns_of(folder, 'alice') == ['https://a.example.org']
    ensure(folder, 'alice', state='absent')
    document = json.loads((folder / NAME).read_text())
    assert document == {cp.POLICY: [hand], 'ShowHomeButton': True}


def test_entries_of_a_file_that_sorts_before_ours_are_carried_and_refreshed_exactly(folder):
    foreign = [json.dumps({'pattern': 'https://site.example.org', 'filter': {'ISSUER': {'CN': 'Site CA'}}}),
               json.dumps({'pattern': 'https://old.example.org', 'filter': {}})]
    (folder / '00-site.json').write_text(json.dumps({cp.POLICY: foreign, 'HomepageLocation': 'x'}))
    result = ensure(folder, 'alice', ['https://a.example.org'])
    assert result['carried_from'] == ['00-site.json']
    carried = [e for e in parsed(folder) if e.get(cp.CARRIED_KEY) == '00-site.json']
    assert [e['pattern'] for e in carried] == ['https://site.example.org', 'https://old.example.org']
    assert carried[0]['filter'] == {'ISSUER': {'CN': 'Site CA'}}
    assert not ensure(folder, 'alice', ['https://a.example.org'])['changed']
    # The other file drops an entry: so does our copy at the next run; and the file itself is never touched.
    (folder / '00-site.json').write_text(json.dumps({cp.POLICY: foreign[:1]}))
    assert ensure(folder, 'alice', ['https://a.example.org'])['reason_codes'] == ['entries_removed']
    assert [e['pattern'] for e in parsed(folder) if cp.CARRIED_KEY in e] == ['https://site.example.org']
    assert json.loads((folder / '00-site.json').read_text()) == {cp.POLICY: foreign[:1]}
    # The other file is gone: its copies too.
    (folder / '00-site.json').unlink()
    ensure(folder, 'alice', ['https://a.example.org'])
    assert [e for e in parsed(folder) if cp.CARRIED_KEY in e] == []


def test_a_carried_entry_that_is_already_ours_by_hand_is_not_doubled(folder):
    hand = json.dumps({'pattern': 'https://site.example.org', 'filter': {'ISSUER': {'CN': 'Site CA'}}})
    (folder / '10-site.json').write_text(json.dumps({cp.POLICY: [hand, hand, 'not json', 42]}))
    (folder / NAME).write_text(json.dumps({cp.POLICY: [hand]}))
    ensure(folder, 'alice', ['https://a.example.org'])
    assert value(folder)[0] == hand and len(value(folder)) == 2


def test_removing_the_last_identity_drops_the_copies_so_the_other_file_applies_again(folder):
    (folder / '00-site.json').write_text(json.dumps({cp.POLICY: [json.dumps({'pattern': 'x', 'filter': {}})]}))
    ensure(folder, 'alice', ['https://a.example.org'])
    assert ensure(folder, 'alice', state='absent')['changed']
    assert not (folder / NAME).exists()


def test_a_file_that_sorts_after_ours_and_sets_the_policy_is_an_error_naming_it(folder):
    ensure(folder, 'alice', ['https://a.example.org'])
    before = (folder / NAME).read_bytes()
    (folder / 'zz-other.json').write_text(json.dumps({cp.POLICY: []}))
    (folder / 'zz-unrelated.json').write_text(json.dumps({'ShowHomeButton': True}))
    for check_mode in (True, False):
        with pytest.raises(cp.ChromiumPolicyError) as failure:
            ensure(folder, 'bob', ['https://b.example.org'], check_mode=check_mode)
        assert failure.value.code == 'shadowed'
        assert str(folder / 'zz-other.json') in failure.value.message and 'zz-unrelated' not in failure.value.message
    assert (folder / NAME).read_bytes() == before
    # Removing is still allowed (with a warning): ours is hidden anyway.
    result = ensure(folder, 'alice', state='absent')
    assert result['changed'] and any('zz-other.json' in w for w in result['warnings'])


@pytest.mark.parametrize('content', ['{"AutoSelectCertificateForUrls": [', '["a list"]', '\xff\xfe'])
def test_a_malformed_policy_file_is_an_error_naming_it_and_nothing_is_written(folder, content):
    target = folder / NAME
    target.write_bytes(content.encode('latin-1'))
    with pytest.raises(cp.ChromiumPolicyError) as failure:
        ensure(folder, 'alice', ['https://a.example.org'])
    assert failure.value.code == 'malformed_json' and str(target) in failure.value.message
    assert target.read_bytes() == content.encode('latin-1')
    assert sorted(os.listdir(folder)) == [NAME]


def test_a_policy_value_that_is_not_a_list_is_an_error(folder):
    (folder / NAME).write_text(json.dumps({cp.POLICY: 'https://a.example.org'}))
    with pytest.raises(cp.ChromiumPolicyError) as failure:
        ensure(folder, 'alice', ['https://a.example.org'])
    assert failure.value.code == 'malformed_policy'


def test_a_malformed_other_file_is_a_warning(folder):
    (folder / '00-broken.json').write_text('{')
    result = ensure(folder, 'alice', ['https://a.example.org'])
    assert result['changed'] and any('00-broken.json' in w for w in result['warnings'])


def test_a_symlinked_policy_file_or_folder_is_refused(tmp_path, folder):
    elsewhere = tmp_path / 'elsewhere.json'
    elsewhere.write_text('{}')
    (folder / NAME).symlink_to(elsewhere)
    with pytest.raises(cp.ChromiumPolicyError) as failure:
        ensure(folder, 'alice', ['https://a.example.org'])
    assert failure.value.code == 'symlink' and failure.value.path == str(folder / NAME)
    assert elsewhere.read_text() == '{}'
    linked = tmp_path / 'linked'
    linked.symlink_to(folder)
    with pytest.raises(cp.ChromiumPolicyError) as failure:
        ensure(linked, 'alice', ['https://a.example.org'])
    assert failure.value.code == 'symlink' and failure.value.path == str(linked)


@pytest.mark.skipif(os.geteuid() != 0, reason='chown needs root')
def test_as_root_a_file_or_folder_not_owned_by_root_is_refused(folder):
    ensure(folder, 'alice', ['https://a.example.org'])
    os.chown(folder / NAME, 1000, 1000)
    with pytest.raises(cp.ChromiumPolicyError) as failure:
        ensure(folder, 'bob', ['https://b.example.org'], require_root_owner=None)
    assert failure.value.code == 'not_root_owned' and failure.value.path == str(folder / NAME)
    os.chown(folder / NAME, 0, 0)
    os.chown(folder, 1000, 1000)
    with pytest.raises(cp.ChromiumPolicyError) as failure:
        ensure(folder, 'bob', ['https://b.example.org'], require_root_owner=None)
    assert failure.value.code == 'not_root_owned' and failure.value.path == str(folder)


def test_a_folder_writable_by_others_is_refused(folder):
    os.chmod(folder, 0o777)
    with pytest.raises(cp.ChromiumPolicyError) as failure:
        ensure(folder, 'alice', ['https://a.example.org'])
    assert failure.value.code == 'unsafe_folder'


def test_a_missing_folder_is_created_and_a_wrong_mode_is_fixed(tmp_path):
    folder = tmp_path / 'policies' / 'managed'
    ensure(folder, 'alice', ['https://a.example.org'])
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755
    os.chmod(folder / NAME, 0o600)
    fixed = ensure(folder, 'alice', ['https://a.example.org'])
    assert fixed['changed'] and fixed['reason_codes'] == ['mode_fixed']
    assert stat.S_IMODE(os.stat(folder / NAME).st_mode) == 0o644


def test_leftover_temporary_files_of_ours_are_not_taken_for_other_files(folder):
    (folder / ('.%s.abc.tmp' % NAME)).write_text(json.dumps({cp.POLICY: []}))
    assert ensure(folder, 'alice', ['https://a.example.org'])['carried_from'] == []


@pytest.mark.parametrize('params, field', [
    ({'identity': ''}, 'identity'),
    ({'issuer_cn': None, 'subject': {}}, 'subject'),
    ({'issuer': {'CN': 'x'}, 'issuer_cn': 'y'}, 'issuer_cn'),
    ({'subject': {'nonsense': 'x'}}, 'subject.nonsense'),
    ({'urls': ['']}, 'urls'),
])
def test_bad_input_names_the_field(folder, params, field):
    args = dict({'identity': 'alice', 'urls': ['https://a.example.org'], 'subject': {'CN': 'Alice'},
                 'issuer_cn': CA}, **params)
    with pytest.raises(InputError) as failure:
        cp.ensure_chromium_policy(path=str(folder / NAME), require_root_owner=False, **args)
    assert failure.value.field == field
    assert not (folder / NAME).exists()


def test_the_filter_plugin_builds_the_same_entry_and_keeps_its_old_output():
    from ansible_collections.certfleet.pki.plugins.filter.chromium import chromium_auto_select
    assert chromium_auto_select('https://a', CA) == json.dumps(
        {'pattern': 'https://a', 'filter': {'ISSUER': {'CN': CA}}}, sort_keys=True)
    assert json.loads(chromium_auto_select('https://a', CA, subject={'CN': 'Alice', 'C': 'DE'})) == {
        'pattern': 'https://a', 'filter': {'ISSUER': {'CN': CA}, 'SUBJECT': {'CN': 'Alice'}}}


def test_a_write_that_fails_is_an_error_with_a_code(folder, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise PermissionError(13, 'Permission denied')

    monkeypatch.setattr(cp, 'atomic_write', refuse)
    with pytest.raises(cp.ChromiumPolicyError) as failure:
        ensure(folder, 'alice', ['https://a.example.org'])
    assert failure.value.code == 'write_failed' and 'Permission denied' in failure.value.message
