# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One "Ansible fork" of the concurrency tests, run as its own process.

Protocol on stdin/stdout (no secret on the command line): the parent writes one JSON line
``{"ca_path", "passphrase", "ops"}``; the worker imports everything, prints ``ready`` and waits for a ``go`` line so
that all workers start at the same instant; then it runs its operations, each through a freshly opened ManagedCA as
a module run would, and prints one JSON line with the outcome of every operation.
"""

from __future__ import annotations

import json
import sys
import time
import traceback


def run(ca_path: str, passphrase: str, op: dict) -> dict:
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA

    with ManagedCA(ca_path, passphrase) as ca:
        if op['kind'] in ('ensure', 'renew'):
            wanted = ca.build_wanted(identity=op['identity'], subject={'CN': op['identity']}, key_type='ec-p256',
                                     force=op['kind'] == 'renew')
            result = ca.ensure_certificate(wanted)
            return {'action': result['action'], 'serial': result['serial'],
                    'previous_serial': result['previous_serial']}
        result = ca.revoke(identity=op['identity'], which=op['which'], reason=op.get('reason', 'superseded'))
        return {'action': 'revoke', 'revoked': result['revoked']}


def main() -> int:
    job = json.loads(sys.stdin.readline())
    from ansible_collections.certfleet.pki.plugins.module_utils.ca import service  # noqa: F401  (import before go)
    print('ready', flush=True)
    if sys.stdin.readline().strip() != 'go':
        return 3
    outcomes = []
    for op in job['ops']:
        started = time.monotonic()
        try:
            outcome = run(job['ca_path'], job['passphrase'], op)
        except Exception as exc:  # reported to the parent, which fails the test
            outcome = {'error': '%s: %s' % (type(exc).__name__, exc), 'traceback': traceback.format_exc()}
        outcome.update(op=op, seconds=time.monotonic() - started)
        outcomes.append(outcome)
    print(json.dumps(outcomes), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
