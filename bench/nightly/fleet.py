# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the benchmark fleet: one CA, N hosts carrying M identities each, every identity issued and recorded as
deployed, optionally a share of them inside the renewal window (issued with a short validity).

Uses the collection's library directly (no Ansible), so a 1,000-identity fleet is ready in seconds. Run with
PYTHONPATH pointing at the directory that holds ``ansible_collections/certfleet/pki``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

CA_PASSPHRASE = 'bench-nightly-passphrase'
KEY_TYPE = 'ec-p256'  # cheap keys: the benchmark is about the decision, not about key generation
VALID_DAYS = 365
DUE_VALID_DAYS = 20  # inside the default renew_before (30d) from the start: due tonight
RENEW_BEFORE = '30d'


def identity_name(index: int) -> str:
    return 'u%04d' % index


def host_name(index: int) -> str:
    return 'h%03d' % index


def is_due(index: int, due_percent: int) -> bool:
    """Spread the due identities evenly (every k-th one), so every host carries some: the worst case for
    'touch only the hosts that carry them' (with 10% due and 10 identities per host, every host has one)."""
    if due_percent <= 0:
        return False
    step = max(1, round(100 / due_percent))
    return index % step == 0


def identity_entry(index: int, home: str | None = None) -> dict:
    """One identity of the inventory; with ``home``, it lives in the Chromium NSS database of that folder."""
    name = identity_name(index)
    entry = {'identity': name, 'subject': {'CN': 'Bench User %04d' % index, 'O': 'Certfleet Bench'},
             'email': '%s@bench.example.org' % name, 'key_type': KEY_TYPE, 'stores': []}
    if home:
        entry.update(stores=['chromium'], homes=[home])
    return entry


def home_of(work: str, host: int) -> str:
    return os.path.join(work, 'homes', host_name(host))


def nssdb(home: str) -> str:
    return os.path.join(home, '.local', 'share', 'pki', 'nssdb')


def inventory(hosts: int, per_host: int, ca_path: str, python: str, crl_dest: str, work: str | None = None) -> dict:
    members = {}
    for h in range(hosts):
        home = home_of(work, h) if work else None
        members[host_name(h)] = {
            'certfleet_identities': [identity_entry(h * per_host + i, home) for i in range(per_host)],
        }
    return {'all': {
        'vars': {
            'ansible_connection': 'local',
            'ansible_python_interpreter': python,
            'certfleet_ca_host': 'localhost',
            'certfleet_ca_path': ca_path,
            'certfleet_ca_passphrase': CA_PASSPHRASE,
            'certfleet_crl_dest': crl_dest,
            'certfleet_renew_before': RENEW_BEFORE,
        },
        'hosts': members,
    }, 'ungrouped': {}}


def build(work: str, hosts: int, per_host: int, due_percent: int, python: str, stores: bool = False,
          drift_percent: int = 0) -> dict:
    """Create ``work``/ca.pristine (the CA in its starting state) and ``work``/inventory.json. With ``stores``,
    every host has a home whose Chromium NSS database holds its identities (``work``/homes.pristine), and with
    ``drift_percent``, that share of the hosts lost their first identity (``work``/homes.drift)."""
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca

    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    pristine = os.path.join(work, 'ca.pristine')
    ca_path = os.path.join(work, 'ca')
    crl_dest = os.path.join(work, 'crl.pem')
    ensure_ca(ca_path=pristine, ca_passphrase=CA_PASSPHRASE,
              subject={'CN': 'Certfleet Bench CA', 'O': 'Certfleet Bench'}, key_type='ec-p256', valid_days=3650)
    total = hosts * per_host
    due = 0
    deployments = []
    with ManagedCA(pristine, CA_PASSPHRASE) as ca:
        for index in range(total):
            entry = identity_entry(index)
            short = is_due(index, due_percent)
            due += short
            wanted = ca.build_wanted(identity=entry['identity'], subject=entry['subject'], email=entry['email'],
                                     key_type=KEY_TYPE, valid_days=DUE_VALID_DAYS if short else VALID_DAYS,
                                     renew_before=RENEW_BEFORE)
            result = ca.ensure_certificate(wanted)
            deployments.append({'identity': entry['identity'], 'host': host_name(index // per_host),
                                'serial': result['serial'], 'stores': ['chromium'] if stores else []})
        ca.record_deployments(deployments)
        # The CRL exists before the first measured run, as it would on any CA that has run before.
        ca.publish_crl(dest=crl_dest)
        if stores:
            fill_stores(ca, work, hosts, per_host)
    drifted = make_drift(work, hosts, per_host, drift_percent) if stores and drift_percent else 0
    with open(os.path.join(work, 'inventory.json'), 'w', encoding='utf-8') as handle:
        json.dump(inventory(hosts, per_host, ca_path, python, crl_dest, work if stores else None), handle, indent=1)
    return {'work': work, 'hosts': hosts, 'identities': total, 'due': due, 'stores': ['chromium'] if stores else [],
            'drifted_hosts': drifted}


def _run(args: list) -> None:
    subprocess.run(args, check=True, capture_output=True)


def fill_stores(ca, work: str, hosts: int, per_host: int) -> None:
    """Every host's Chromium NSS database with the CA trusted and its identities imported (pk12util), as a
    finished roll-out leaves it; kept as ``work``/homes.pristine."""
    pristine = os.path.join(work, 'homes.pristine')
    password = 'bench-export-password'
    with tempfile.TemporaryDirectory(prefix='bench-p12-') as folder:
        ca_pem = os.path.join(folder, 'ca.pem')
        with open(ca_pem, 'w', encoding='ascii') as handle:
            handle.write(ca.authority.certificate_pem())
        for h in range(hosts):
            names = [identity_name(h * per_host + i) for i in range(per_host)]
            exported = ca.export_many(batch=[{'identity': n, 'file': n + '.p12'} for n in names],
                                      dest_dir=os.path.join(folder, host_name(h)), password=password, iterations=2048)
            db = nssdb(os.path.join(pristine, host_name(h)))
            os.makedirs(db, mode=0o700)
            _run(['certutil', '-N', '-d', 'sql:' + db, '--empty-password'])
            _run(['certutil', '-A', '-d', 'sql:' + db, '-n', 'Certfleet Bench CA', '-t', 'T,,', '-i', ca_pem])
            for item in exported['exports']:
                _run(['pk12util', '-i', item['dest'], '-d', 'sql:' + db, '-W', password, '-K', ''])


def make_drift(work: str, hosts: int, per_host: int, drift_percent: int) -> int:
    """``work``/homes.drift: homes.pristine where every k-th host lost its first identity (certificate and key),
    as a refreshed profile or a new database would."""
    drift = os.path.join(work, 'homes.drift')
    shutil.copytree(os.path.join(work, 'homes.pristine'), drift, symlinks=True)
    step = max(1, round(100 / drift_percent))
    drifted = 0
    for h in range(0, hosts, step):
        _run(['certutil', '-F', '-d', 'sql:' + nssdb(os.path.join(drift, host_name(h))),
              '-n', identity_name(h * per_host)])
        drifted += 1
    return drifted


def restore(work: str, homes: str = 'pristine') -> None:
    """Put the CA (and the hosts' homes, when the fleet has stores) back in their starting state (before every
    measured run); ``homes``: pristine or drift."""
    ca_path = os.path.join(work, 'ca')
    if os.path.exists(ca_path):
        shutil.rmtree(ca_path)
    shutil.copytree(os.path.join(work, 'ca.pristine'), ca_path)
    if os.path.exists(os.path.join(work, 'homes.pristine')):
        shutil.rmtree(os.path.join(work, 'homes'), ignore_errors=True)
        shutil.copytree(os.path.join(work, 'homes.' + homes), os.path.join(work, 'homes'), symlinks=True)
    crl = os.path.join(work, 'crl.pem')
    pristine_crl = os.path.join(work, 'ca.pristine', 'crl.pem')
    if os.path.exists(pristine_crl):
        shutil.copyfile(pristine_crl, crl)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('work')
    parser.add_argument('--hosts', type=int, default=100)
    parser.add_argument('--per-host', type=int, default=10)
    parser.add_argument('--due-percent', type=int, default=0)
    parser.add_argument('--python', default=sys.executable)
    args = parser.parse_args(argv)
    print(json.dumps(build(args.work, args.hosts, args.per_host, args.due_percent, args.python)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
