# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk request files with delivery: pickup: a pickup per issued certificate, its URL and its PIN in two files."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from test_bulk import issue, line, read_rows, tsv  # noqa: F401 (the bulk tests' helpers)

from ansible_collections.certfleet.pki.plugins.module_utils.ca import pickup as pickup_lib
from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BulkRequest
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError

PORTAL = 'https://pki.example.org/pickup'


@pytest.fixture
def run(tmp_path):
    counter = {'n': 0}

    def runner(harness, text, **options):
        counter['n'] += 1
        src = tmp_path / ('in%d.tsv' % counter['n'])
        src.write_text(text)
        options.setdefault('dest', str(tmp_path / 'out'))
        options.setdefault('workers', 1)
        with harness.open() as ca:
            return BulkRequest(ca, src=str(src), name='sales', **options).execute()

    return runner


def _token(url: str) -> str:
    assert url.startswith(PORTAL + '/p/')
    return url.rsplit('/', 1)[1]


def test_pickups_replace_the_files_and_each_url_with_its_pin_downloads_once(ca, run):
    result = run(ca, tsv(issue('alice'), issue('bob')), delivery='pickup',
                 pickup={'base_url': PORTAL, 'max_downloads': 1, 'lock_after_first_days': None})
    assert result['counts']['issued'] == 2
    out = result['output_dir']
    assert sorted(os.listdir(out)) == ['pickup-pins.tsv', 'pickups.tsv', 'results.tsv']  # no .p12, no passwords
    assert result['passwords_file'] is None and result['bundle_file'] is None
    for path in (result['pickups_file'], result['pins_file']):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    urls = {row['identity']: row for row in read_rows(result['pickups_file'])}
    pins = {row['identity']: row for row in read_rows(result['pins_file'])}
    assert set(urls) == set(pins) == {'alice', 'bob'}
    assert urls['alice']['email'] == 'alice@example.org' and urls['alice']['serial'] == pins['alice']['serial']
    pins_text = open(result['pins_file'], encoding='utf-8').read()
    urls_text = open(result['pickups_file'], encoding='utf-8').read()
    assert PORTAL not in pins_text and all(p['pin'] not in urls_text for p in pins.values())  # never side by side
    with ca.open() as managed:
        got = pickup_lib.download(managed, _token(urls['alice']['url']), pins['alice']['pin'], client='127.0.0.1')
        with pytest.raises(pickup_lib.PickupError):  # max_downloads 1
            pickup_lib.download(managed, _token(urls['alice']['url']), pins['alice']['pin'])
    bundle = pkcs12.load_pkcs12(got.content, pins['alice']['pin'].encode())
    assert bundle.key is not None and format(bundle.cert.certificate.serial_number, 'X') == urls['alice']['serial']
    assert bundle.cert.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == 'Alice'
    rows = {row['identity']: row for row in result['rows']}
    assert rows['alice']['file'] is None and rows['alice']['message'].endswith('pickup %s' % got.pickup_id)


def test_the_same_file_again_makes_no_new_pickup(ca, run):
    first = run(ca, tsv(issue('alice')), delivery='pickup', pickup={'base_url': PORTAL})
    again = run(ca, tsv(issue('alice')), delivery='pickup', pickup={'base_url': PORTAL})
    assert first['counts']['issued'] == 1 and again['changed'] is False and again['pickups_file'] is None
    with ca.open() as managed:
        assert len(pickup_lib.list_pickups(managed, identity='alice')['pickups']) == 1


@pytest.mark.parametrize('options, field', [
    (None, 'pickup.base_url'),
    ({'base_url': 'http://pki.example.org'}, 'pickup.base_url'),
    ({'base_url': PORTAL, 'max_downloads': 0}, 'pickup.max_downloads'),
    ({'base_url': PORTAL, 'format': 'zip'}, 'pickup.format'),
    ({'base_url': PORTAL, 'pin': '1234'}, 'pickup'),
])
def test_bad_pickup_settings_are_refused_before_anything_is_issued(ca, run, tmp_path, options, field):
    with pytest.raises(InputError) as failure:
        run(ca, tsv(issue('alice')), delivery='pickup', pickup=options)
    assert failure.value.field == field
    assert ca.records() == [] and not (tmp_path / 'out').exists()


def test_other_deliveries_ignore_the_pickup_settings(ca, run):
    result = run(ca, tsv(issue('alice'), line('issue', 'carol', cn='Carol')), delivery='individual',
                 pickup={'base_url': 'not a url'})
    assert result['counts']['issued'] == 2 and result['pickups_file'] is None and result['passwords_file']
