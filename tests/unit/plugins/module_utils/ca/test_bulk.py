# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk request files: validation, delivery, hand-back, idempotency, and "nothing happens" on bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import zipfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import (
    BulkInputError, BulkRequest, canonical_reason, new_password,
)
from ansible_collections.certfleet.pki.plugins.module_utils.x509.pkcs12 import describe
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

HEADER = 'action\tidentity\tCN\temail\tO\tOU\tL\tST\tC\tprofile\tvalid_days\tkey_type\treason\tserial'
POLICY = {'allowed_domains': ['example.org'], 'required_subject': {'O': 'Example Org', 'L': 'Berlin', 'ST': 'Berlin'}}


def tsv(*lines, header=HEADER) -> str:
    return '\n'.join([header] + list(lines)) + '\n'


def line(action, identity, cn='', email='', o='', ou='', l_='', st='', c='', profile='', days='', key='ec-p256',
         reason='', serial='') -> str:
    return '\t'.join([action, identity, cn, email, o, ou, l_, st, c, profile, days, key, reason, serial])


def issue(identity, **kw) -> str:
    kw.setdefault('cn', identity.title())
    kw.setdefault('email', '%s@example.org' % identity)
    return line('issue', identity, **kw)


@pytest.fixture
def policy_ca(make_ca):
    return make_ca('policy-ca', policy=POLICY)


@pytest.fixture
def run(tmp_path):
    """Write a request file and run it against a CA harness; returns the result (or raises)."""
    counter = {'n': 0}

    def runner(harness, text, name='sales.tsv', check_mode=False, raw=None, **options):
        counter['n'] += 1
        folder = tmp_path / ('in%d' % counter['n'])
        folder.mkdir()
        src = folder / name
        src.write_bytes(raw if raw is not None else text.encode('utf-8'))
        options.setdefault('dest', str(tmp_path / 'out'))
        options.setdefault('workers', 1)
        with harness.open() as ca:
            return BulkRequest(ca, src=str(src), **options).execute(check_mode=check_mode)

    return runner


def read_rows(path) -> list:
    with open(path, encoding='utf-8') as handle:
        delimiter = '\t' if path.endswith('.tsv') else ','
        return list(csv.DictReader(handle, delimiter=delimiter))


def test_issue_individual_files_open_with_their_passwords(policy_ca, run, tmp_path):
    result = run(policy_ca, tsv(issue('alice'), issue('bob', ou='Sales')))
    assert result['changed'] and result['counts']['issued'] == 2
    out = result['output_dir']
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(str(tmp_path / 'out')).st_mode) == 0o700
    for name in os.listdir(out):
        assert stat.S_IMODE(os.stat(os.path.join(out, name)).st_mode) == 0o600, name
    passwords = {row['identity']: row for row in read_rows(result['passwords_file'])}
    assert set(passwords) == {'alice', 'bob'}
    for row in result['rows']:
        data = open(row['file'], 'rb').read()
        parsed = pkcs12.load_pkcs12(data, passwords[row['identity']]['password'].encode())
        assert '%X' % parsed.cert.certificate.serial_number == row['serial'] == passwords[row['identity']]['serial']
        subject = parsed.cert.certificate.subject.rfc4514_string()
        assert 'O=Example Org' in subject and 'L=Berlin' in subject  # filled from the registered values
        assert describe(data) == {'encryption': 'modern', 'iterations': 2048, 'mac': 'sha256'}
        assert len(parsed.additional_certs) == 1  # the CA
    assert 'OU=Sales' in policy_ca.record(passwords['bob']['serial']).subject_text
    results = read_rows(result['results_file'])
    assert [r['result'] for r in results] == ['issued', 'issued']
    assert results[0]['row'] == '2' and results[0]['serial'] == passwords['alice']['serial']


def test_result_and_audit_hold_no_secret(policy_ca, run):
    result = run(policy_ca, tsv(issue('alice')))
    password = read_rows(result['passwords_file'])[0]['password']
    text = json.dumps(result)
    assert password not in text and 'PRIVATE' not in text
    audit = json.dumps(policy_ca.audit())
    assert password not in audit and 'PRIVATE' not in audit
    for name in ('results.tsv',):
        content = open(os.path.join(result['output_dir'], name)).read()
        assert password not in content


def test_second_run_changes_nothing_and_writes_nothing(policy_ca, run, tmp_path):
    text = tsv(issue('alice'), issue('bob'))
    first = run(policy_ca, text)
    before = policy_ca.snapshot()
    second = run(policy_ca, text)
    assert second['changed'] is False and second['output_dir'] is None
    assert [r['result'] for r in second['rows']] == ['unchanged', 'unchanged']
    assert [r['serial'] for r in second['rows']] == [r['serial'] for r in first['rows']]
    assert policy_ca.snapshot() == before
    assert os.listdir(str(tmp_path / 'out')) == [os.path.basename(first['output_dir'])]


def test_bundle_archive_holds_every_file_and_the_passwords(policy_ca, run):
    result = run(policy_ca, tsv(issue('alice'), issue('bob'), issue('carol')), delivery='bundle', name='dept')
    assert result['passwords_file'] is None and result['bundle_file'].endswith('dept.zip')
    assert sorted(os.listdir(result['output_dir'])) == ['dept.zip', 'results.tsv']
    assert stat.S_IMODE(os.stat(result['bundle_file']).st_mode) == 0o600
    with zipfile.ZipFile(result['bundle_file']) as archive:
        names = sorted(archive.namelist())
        assert names == ['alice.p12', 'bob.p12', 'carol.p12', 'passwords.tsv']
        rows = list(csv.DictReader(io.StringIO(archive.read('passwords.tsv').decode()), delimiter='\t'))
        for row in rows:
            parsed = pkcs12.load_pkcs12(archive.read(row['file']), row['password'].encode())
            assert '%X' % parsed.cert.certificate.serial_number == row['serial']


def test_legacy_encryption(policy_ca, run):
    result = run(policy_ca, tsv(issue('alice')), encryption='legacy')
    described = describe(open(result['rows'][0]['file'], 'rb').read())
    assert described['encryption'] == 'legacy' and described['mac'] == 'sha1'


def test_renew_hands_back_old_serials_and_the_hand_back_revokes_them(policy_ca, run):
    first = run(policy_ca, tsv(issue('alice'), issue('bob')))
    old = {r['identity']: r['serial'] for r in first['rows']}
    renewal = run(policy_ca, tsv(line('renew', 'alice'), line('renew', 'bob', email='robert@example.org')))
    assert [r['result'] for r in renewal['rows']] == ['renewed', 'renewed']
    assert {r['identity']: r['previous_serial'] for r in renewal['rows']} == old
    bob_new = policy_ca.record(renewal['rows'][1]['serial'])
    assert bob_new.sans == ['email:robert@example.org'] and bob_new.renews == old['bob']
    alice_new = policy_ca.record(renewal['rows'][0]['serial'])
    assert alice_new.subject == policy_ca.record(old['alice']).subject  # empty columns kept the old values
    for serial in old.values():
        record = policy_ca.record(serial)
        assert record.status == 'valid' and record.pending_revocation  # both valid until the hand-back runs
    handback = renewal['handback_file']
    assert read_rows(handback) == [{'action': 'revoke', 'identity': 'alice', 'serial': old['alice'],
                                    'reason': 'superseded'},
                                   {'action': 'revoke', 'identity': 'bob', 'serial': old['bob'],
                                    'reason': 'superseded'}]
    with policy_ca.open() as ca:
        revoked = BulkRequest(ca, src=handback, dest=os.path.dirname(renewal['output_dir']), workers=1).execute()
    assert [r['result'] for r in revoked['rows']] == ['revoked', 'revoked']
    for serial in old.values():
        assert policy_ca.record(serial).revocation_reason == 'superseded'
    again = run(policy_ca, open(handback).read())
    assert again['changed'] is False and [r['result'] for r in again['rows']] == ['unchanged', 'unchanged']


def test_renew_line_run_again_does_not_renew_again_until_due(policy_ca, run, clock):
    run(policy_ca, tsv(issue('alice', days='100')))
    text = tsv(line('renew', 'alice', days='100'))
    first = run(policy_ca, text)
    assert first['rows'][0]['result'] == 'renewed'
    second = run(policy_ca, text)
    assert second['changed'] is False and second['rows'][0]['serial'] == first['rows'][0]['serial']
    clock.advance(days=75)  # inside the 30-day window of the renewed certificate
    third = run(policy_ca, text)
    assert third['rows'][0]['result'] == 'renewed' and third['rows'][0]['previous_serial'] == first['rows'][0]['serial']


def test_revoke_by_identity_revokes_every_valid_certificate(policy_ca, run):
    run(policy_ca, tsv(issue('alice')))
    run(policy_ca, tsv(line('renew', 'alice')))
    result = run(policy_ca, tsv(line('revoke', 'alice', key='', reason='keyCompromise')))
    assert result['rows'][0]['result'] == 'revoked'
    assert len(result['rows'][0]['previous_serial'].split()) == 2
    assert all(r.status == 'revoked' and r.revocation_reason == 'key_compromise' for r in policy_ca.records('alice'))


def test_skip_carries_out_valid_lines_and_reports_the_others(policy_ca, run):
    result = run(policy_ca, tsv(issue('alice'), issue('bob', email='bob@evil.test'), issue('carol')),
                 on_error='skip')
    assert [r['result'] for r in result['rows']] == ['issued', 'invalid', 'issued']
    assert result['rows'][1]['message'].startswith('email:') and 'evil.test' in result['rows'][1]['message']
    assert any('1 of 3 request lines are invalid' in w for w in result['warnings'])
    assert [r['result'] for r in read_rows(result['results_file'])] == ['issued', 'invalid', 'issued']
    assert policy_ca.records('bob') == []
    # The department fixes bob's line and sends the whole file again: alice and carol are not issued twice.
    fixed = run(policy_ca, tsv(issue('alice'), issue('bob'), issue('carol')))
    assert [r['result'] for r in fixed['rows']] == ['unchanged', 'issued', 'unchanged']


def test_check_mode_predicts_and_writes_nothing(policy_ca, run, tmp_path):
    before = policy_ca.snapshot()
    result = run(policy_ca, tsv(issue('alice')), check_mode=True)
    assert result['changed'] is True and result['rows'][0]['result'] == 'would_be_issued'
    assert policy_ca.snapshot() == before and not os.path.exists(str(tmp_path / 'out'))


def test_parallel_workers_issue_every_line_once(policy_ca, run):
    identities = ['user%02d' % n for n in range(12)]
    result = run(policy_ca, tsv(*[issue(i, key='ec-p256' if n % 2 else 'rsa2048') for n, i in enumerate(identities)]),
                 workers=2)
    serials = [r['serial'] for r in result['rows']]
    assert len(set(serials)) == 12 and result['counts']['issued'] == 12
    assert [r['identity'] for r in result['rows']] == identities  # file order, whatever order workers finished
    passwords = read_rows(result['passwords_file'])
    assert len({p['password'] for p in passwords}) == 12
    for row, password in zip(result['rows'], passwords, strict=True):
        parsed = pkcs12.load_pkcs12(open(row['file'], 'rb').read(), password['password'].encode())
        assert parsed.cert.certificate.public_key().public_numbers() == parsed.key.public_key().public_numbers()
        assert policy_ca.record(row['serial']).key_status == 'held'


def test_csv_with_semicolons_and_header_aliases(policy_ca, run):
    text = 'Action;Identity;Common Name;E-Mail;Key Type\nissue;alice;Alice A;alice@example.org;ec-p256\n'
    result = run(policy_ca, text, name='requests.csv')
    assert result['format'] == 'csv' and result['rows'][0]['result'] == 'issued'
    assert result['results_file'].endswith('results.csv')


def test_comments_and_blank_lines_are_skipped_and_line_numbers_are_the_files(policy_ca, run):
    text = '# sales, November\n' + HEADER + '\n\n' + issue('alice') + '\n# bob left\n' + issue('carol') + '\n'
    result = run(policy_ca, text)
    assert [(r['row'], r['identity']) for r in result['rows']] == [(4, 'alice'), (6, 'carol')]


# -- bad input: a clear message per line, and with abort nothing happens ----------------------------------------

BAD_LINES = [
    ('unknown action', [line('isue', 'alice', cn='A')], 'action: unknown action'),
    ('duplicate identity', [issue('alice'), issue('alice', cn='Other')], 'appears more than once'),
    ('malformed e-mail', [issue('alice', email='alice@@example.org')], 'email:'),
    ('domain not allowed', [issue('alice', email='alice@gmail.com')], "domain 'gmail.com'"),
    ('O differs', [issue('alice', o='Other Org')], "O: 'Other Org' is not the registered value 'Example Org'"),
    ('L differs', [issue('alice', l_='Munich')], "L: 'Munich' is not the registered value 'Berlin'"),
    ('ST differs', [issue('alice', st='Bavaria')], "ST: 'Bavaria' is not the registered value 'Berlin'"),
    ('revoke unknown serial', [line('revoke', '', key='', serial='ABCDEF12')], 'no certificate with serial ABCDEF12'),
    ('renew without certificate', [line('renew', 'nobody')], "identity: 'nobody' has no certificate to renew"),
    ('issue without CN', [line('issue', 'alice', email='alice@example.org')], 'CN: is required'),
    ('field count', ['issue\talice\tAlice'], 'has 3 fields, the header has 14'),
    ('bad validity', [issue('alice', days='ten')], 'valid_days:'),
    ('unknown key type', [issue('alice', key='dsa')], "key_type: unknown key type 'dsa'"),
    ('unknown reason', [line('revoke', 'alice', key='', reason='bored')], "reason: unknown revocation reason"),
]


@pytest.mark.parametrize('case, lines, expected', BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_bad_line_aborts_everything_with_a_message(policy_ca, run, tmp_path, case, lines, expected):
    if case == 'unknown reason':
        run(policy_ca, tsv(issue('alice')))
    out = tmp_path / 'out'
    before = (policy_ca.snapshot(), sorted(os.listdir(str(out))) if out.exists() else None)
    with pytest.raises(BulkInputError) as raised:
        run(policy_ca, tsv(issue('zed'), *lines))
    message = raised.value.message
    assert expected in message, message
    assert 'nothing was done (on_error: abort)' in message and 'line 3' in message
    rows = {r['row']: r for r in raised.value.rows}
    assert rows[2]['result'] in ('not_carried_out', 'invalid') and rows[3]['result'] == 'invalid'
    assert (policy_ca.snapshot(), sorted(os.listdir(str(out))) if out.exists() else None) == before


def test_revoke_of_an_already_revoked_serial_is_refused(policy_ca, run):
    serial = run(policy_ca, tsv(issue('alice')))['rows'][0]['serial']
    policy_ca.revoke(serial=serial, reason='superseded')
    before = policy_ca.snapshot()
    with pytest.raises(BulkInputError) as raised:
        run(policy_ca, tsv(line('revoke', 'alice', key='', serial=serial)))
    assert 'certificate %s is already revoked' % serial in raised.value.message
    assert policy_ca.snapshot() == before


def test_revoke_serial_of_another_identity_is_refused(policy_ca, run):
    serial = run(policy_ca, tsv(issue('alice')))['rows'][0]['serial']
    with pytest.raises(BulkInputError) as raised:
        run(policy_ca, tsv(line('revoke', 'bob', key='', serial=serial)))
    assert "belongs to identity 'alice', not 'bob'" in raised.value.message


def test_issue_for_identity_with_a_different_certificate_points_to_renew(policy_ca, run):
    run(policy_ca, tsv(issue('alice')))
    with pytest.raises(BulkInputError) as raised:
        run(policy_ca, tsv(issue('alice', email='alice.a@example.org')))
    assert 'use action renew' in raised.value.message


FILE_ERRORS = [
    ('empty', b'', 'is empty'),
    ('only blank lines', b'\n\n  \n', 'is empty'),
    ('header only', (HEADER + '\n').encode(), 'has a header but no request lines'),
    ('utf-8 bom', b'\xef\xbb\xbf' + tsv(issue('alice')).encode(), 'UTF-8 with a byte-order mark'),
    ('utf-16', tsv(issue('alice')).encode('utf-16'), 'UTF-16'),
    ('latin-1', tsv(issue('jos\xe9')).encode('latin-1'), 'not UTF-8: byte 0xE9 on line 2'),
    ('missing columns', b'identity\tCN\nalice\tAlice\n', 'missing column action'),
    ('unknown column', b'action\tidentity\temial\nissue\talice\ta@example.org\n', "unknown column 'emial'"),
    ('duplicate column', b'action\tidentity\tmail\temail\nissue\ta\tb\tc\n', 'column email appears twice'),
]


@pytest.mark.parametrize('case, raw, expected', FILE_ERRORS, ids=[c[0] for c in FILE_ERRORS])
def test_bad_file_is_refused_before_anything(policy_ca, run, tmp_path, case, raw, expected):
    before = policy_ca.snapshot()
    with pytest.raises(InputError) as raised:
        run(policy_ca, None, raw=raw)
    assert expected in raised.value.message and raised.value.field == 'src'
    assert policy_ca.snapshot() == before and not os.path.exists(str(tmp_path / 'out'))


def test_a_failure_after_generation_leaves_no_folder_and_no_record(policy_ca, run, tmp_path, monkeypatch):
    from ansible_collections.certfleet.pki.plugins.module_utils.store import sqlite

    def broken(self, rows):
        raise OSError('disk full')

    monkeypatch.setattr(sqlite.SQLiteStore, 'record_request_rows', broken)
    before = policy_ca.snapshot()
    with pytest.raises(OSError):
        run(policy_ca, tsv(issue('alice'), issue('bob')))
    assert policy_ca.snapshot() == before
    assert os.listdir(str(tmp_path / 'out')) == []


def test_options_are_checked(policy_ca, run):
    with pytest.raises(InputError) as raised:
        run(policy_ca, tsv(issue('alice')), iterations=10)
    assert raised.value.field == 'iterations'
    with pytest.raises(InputError) as raised:
        run(policy_ca, tsv(issue('alice')), delivery='email')
    assert raised.value.field == 'delivery'


def test_passwords_are_random_and_long():
    passwords = {new_password() for attempt in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 35 and p.count('-') == 5 for p in passwords)


@pytest.mark.parametrize('text, expected', [('keyCompromise', 'key_compromise'), ('Key Compromise', 'key_compromise'),
                                            ('affiliation-changed', 'affiliation_changed'),
                                            ('superseded', 'superseded')])
def test_reason_spellings(text, expected):
    assert canonical_reason(text) == expected


def test_certificates_carry_the_requested_attributes(policy_ca, run):
    result = run(policy_ca, tsv(issue('alice', ou='Research', c='DE', days='90', profile='client_email',
                                      key='rsa2048')))
    record = policy_ca.record(result['rows'][0]['serial'])
    assert record.profile == 'client_email' and record.key_type == 'rsa2048'
    assert (record.not_after - record.not_before).days in (90, 91)
    certificate = x509.load_pem_x509_certificate(record.pem.encode())
    assert certificate.subject.rfc4514_string() == record.subject_text
    assert 'OU=Research' in record.subject_text and 'C=DE' in record.subject_text


# -- inventory download --------------------------------------------------------------------------------------------

def test_inventory_lists_the_whole_history_and_is_idempotent(policy_ca, run, tmp_path):
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import write_inventory
    first = run(policy_ca, tsv(issue('alice'), issue('bob')))
    renewed = run(policy_ca, tsv(line('renew', 'alice')))
    run(policy_ca, tsv(line('revoke', 'bob', key='', reason='affiliation_changed')))
    dest = str(tmp_path / 'inventory.tsv')
    before = policy_ca.snapshot()
    with policy_ca.open(unlock=False) as ca:
        result = write_inventory(ca, dest=dest)
        assert result['changed'] and result['count'] == 3
        assert write_inventory(ca, dest=dest)['changed'] is False
    assert policy_ca.snapshot() == before  # reading the history writes nothing to the CA
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    rows = {r['serial']: r for r in read_rows(dest)}
    old_alice = first['rows'][0]['serial']
    new_alice = renewed['rows'][0]['serial']
    assert rows[old_alice]['renewed_by'] == new_alice and rows[new_alice]['renews'] == old_alice
    assert rows[old_alice]['pending_revocation'] == 'yes' and rows[new_alice]['current'] == 'yes'
    bob = rows[first['rows'][1]['serial']]
    assert (bob['status'], bob['revocation_reason']) == ('revoked', 'affiliation_changed')
    assert bob['email'] == 'bob@example.org'
    assert bob['CN'] == 'Bob'


def test_inventory_filters_and_csv(policy_ca, run, tmp_path):
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import write_inventory
    run(policy_ca, tsv(issue('alice'), issue('bob')))
    run(policy_ca, tsv(line('renew', 'alice')))
    dest = str(tmp_path / 'pending.csv')
    with policy_ca.open(unlock=False) as ca:
        result = write_inventory(ca, dest=dest, statuses=['pending_revocation'])
        assert result['format'] == 'csv' and result['count'] == 1
        assert write_inventory(ca, dest=str(tmp_path / 'bob.tsv'), identities=['bob'])['count'] == 1
        with pytest.raises(InputError) as raised:
            write_inventory(ca, dest=dest, statuses=['lost'])
        assert raised.value.field == 'status'
    assert [r['identity'] for r in read_rows(dest)] == ['alice']


def test_the_readme_example_is_a_valid_request_file(tmp_path):
    from ansible_collections.certfleet.pki.plugins.module_utils.common.tabular import read_table
    readme = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', '..', 'README.md')
    with open(readme, encoding='utf-8') as handle:
        text = handle.read()
    start = text.index('# sales.tsv')
    example = text[start:text.index('```', start)]
    path = tmp_path / 'sales.tsv'
    path.write_text(example, encoding='utf-8')
    table = read_table(str(path))
    assert table.format == 'tsv' and len(table.header) == 8
    assert [len(values) for _line, values in table.rows] == [8, 8, 8, 8]
