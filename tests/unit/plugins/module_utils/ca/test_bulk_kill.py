# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk delivery survives SIGKILL: the files are made durable and put in place before the store commit.

A child process runs one request file; it is killed at a random moment of its work. Afterwards the store either
holds nothing of that batch, or every PKCS#12 file its rows point to (the batch folder the audit names, the file
the passwords list gives for the serial) is in place and opens with its password. ~15 s.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time

from cryptography.hazmat.primitives.serialization import pkcs12

from ansible_collections.certfleet.pki.plugins.module_utils.x509.identity import format_serial

IDENTITIES = 16
KILLS = 10

# The child widens the moments around the store commit (a pause before and after it), so that random kills land
# there often: a library that committed before the files were in place would be caught.
CHILD = r'''
import sys
import time
from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BulkRequest
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
ca_path, src, dest = sys.argv[1:4]
commit = BulkRequest._commit


def paused_commit(*args, **kwargs):
    time.sleep(0.15)
    commit(*args, **kwargs)
    time.sleep(0.15)


BulkRequest._commit = paused_commit
with ManagedCA(ca_path, sys.stdin.readline().rstrip('\n')) as ca:
    request = BulkRequest(ca, src=src, dest=dest, workers=1)
    print('ready', flush=True)
    request.execute()
print('done', flush=True)
'''


def _request_file(folder, prefix: str) -> str:
    path = os.path.join(str(folder), '%s.tsv' % prefix)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('action\tidentity\tCN\temail\tkey_type\n')
        for n in range(IDENTITIES):
            handle.write('issue\t%s-%d\tUser %d\tu%d@example.org\tec-p256\n' % (prefix, n, n, n))
    return path


def _run(ca, src: str, dest: str, delay: float | None) -> tuple:
    """(finished, seconds of work): the child is killed ``delay`` seconds after it is ready, unless None."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, '-c', CHILD, ca.path, src, dest], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    child.stdin.write(ca.passphrase + '\n')
    child.stdin.close()
    assert child.stdout.readline().strip() == 'ready'
    started = time.monotonic()
    if delay is not None:
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
    output = child.stdout.read()
    child.wait(timeout=60)
    return 'done' in output, time.monotonic() - started


def _check_batch(ca, dest: str, prefix: str) -> int:
    """How many certificates of the batch the store holds (0 or all), each checked against its delivered file."""
    wanted = ['%s-%d' % (prefix, n) for n in range(IDENTITIES)]
    with ca.open() as opened, opened.store.read():
        records = opened.store.find(identities=wanted)
        audit = [entry for entry in opened.store.audit_entries() if entry['identity'] in set(wanted)]
    if not records:
        return 0
    assert len(records) == IDENTITIES, 'the batch was committed in part'
    batches = {entry['detail']['request'] for entry in audit}
    assert len(batches) == 1
    folder = os.path.join(dest, batches.pop())
    with open(os.path.join(folder, 'passwords.tsv'), encoding='utf-8') as handle:
        delivered = {row['serial']: row for row in csv.DictReader(handle, delimiter='\t')}
    for record in records:
        row = delivered[record.serial]
        with open(os.path.join(folder, row['file']), 'rb') as handle:
            _key, certificate, _chain = pkcs12.load_key_and_certificates(handle.read(), row['password'].encode())
        assert format_serial(certificate.serial_number) == record.serial
    return len(records)


def test_bulk_killed_at_random_moments_leaves_nothing_or_everything(ca, tmp_path):
    dest = str(tmp_path / 'out')
    durations = []
    for prefix in ('full1', 'full2'):
        finished, seconds = _run(ca, _request_file(tmp_path, prefix), dest, None)
        assert finished and _check_batch(ca, dest, prefix) == IDENTITIES
        durations.append(seconds)
    duration = min(durations)
    rng = random.Random()
    committed = kills = 0
    # At least KILLS kills, and more (up to 3x) while none has interrupted a run: on a machine whose load drops,
    # a run can get faster than the timing measured above. A run that finished before its kill teaches the test
    # how long a run takes now.
    while kills < KILLS or (committed == kills and kills < 3 * KILLS):
        prefix = 'k%d' % kills
        # Spread over the whole run; every third kill in its last stretch (sync, rename, commit) or just past it.
        delay = rng.uniform(duration * 0.7, duration * 1.1) if kills % 3 == 2 else rng.uniform(0, duration * 0.9)
        finished, seconds = _run(ca, _request_file(tmp_path, prefix), dest, delay)
        done = bool(_check_batch(ca, dest, prefix))
        committed += done
        kills += 1
        if finished:
            duration = min(duration, seconds)
    assert committed < kills, 'no kill interrupted a run: the test tested nothing'
