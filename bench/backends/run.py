# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL against SQLite, side by side in one run: a single issue (library and module process), and bulk.

    .venv/bin/python bench/backends/run.py [--issues 60] [--module-runs 30] [--bulk 300] [--reps 3]

Both CAs are made by certfleet.pki.ca's library with the same settings (RSA 3072 CA key, the module's default;
EC P-256 client keys); the PostgreSQL server is a throw-away cluster on a Unix socket, started like the tests' one
(tests/support/postgresql_server.py). A single issue opens the CA afresh (unlocking its key, as every module run
does) and issues one new identity; the two backends alternate, one operation each, and medians are compared. The
same issue is also timed as a task pays it on the CA host: a new Python process running the client_certificate
module (imports, argument checks, the issue, the JSON result; Ansible's own transport left out). A bulk
run carries out a request file of new identities (``ca/bulk.BulkRequest``, every core); backends alternate per
repetition. PostgreSQL is measured three times: connecting with ``trust`` on the socket (no authentication, the
cheapest session), as a role with a SCRAM-SHA-256 password and the server's default 4,096 rounds (what a store
reached over the network uses), and as a role whose verifier has 16 rounds for a 40-character random password (made
with the certfleet.pki.scram_sha_256 filter, as docs/awx.md advises); and, where PgBouncer is installed, through a
PgBouncer in session mode on a Unix socket (tests/support/pgbouncer_server.py), which keeps the server sessions warm
between runs. Results: bench/results/backends.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / '.build' / 'collections'))
sys.path.insert(0, str(ROOT / 'tests' / 'support'))

from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BulkRequest  # noqa: E402
from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA  # noqa: E402
from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca  # noqa: E402
from postgresql_server import (  # noqa: E402  pylint: disable=import-error
    FAST_SCRAM_PASSWORD, FAST_SCRAM_ROLE, PASSWORD, PASSWORD_ROLE, PostgreSQLServer, why_unavailable,
)
from pgbouncer_server import PgBouncer, pgbouncer_unavailable  # noqa: E402  pylint: disable=import-error

PASSPHRASE = 'bench-backends-passphrase'
RESULTS = ROOT / 'bench' / 'results'
MODULE = ROOT / 'plugins' / 'modules' / 'client_certificate.py'


def _issue(where: dict, identity: str) -> float:
    started = time.perf_counter()
    with ManagedCA(where.get('ca_path'), PASSPHRASE, store_url=where.get('store_url'), for_identity=identity) as ca:
        result = ca.ensure_certificate(ca.build_wanted(identity=identity, subject={'CN': identity},
                                                       key_type='ec-p256'))
    elapsed = time.perf_counter() - started
    assert result['action'] == 'issued', result
    return elapsed


def _module_run(where: dict, folder: pathlib.Path, identity: str) -> float:
    """One issue as a task runs it on the CA host: a new Python process running the client_certificate module
    (its imports, AnsibleModule, the issue, the JSON result), Ansible's transport left out."""
    args = {'identity': identity, 'subject': {'CN': identity}, 'key_type': 'ec-p256', 'ca_passphrase': PASSPHRASE}
    args.update({'ca_path': where['ca_path']} if where.get('ca_path') else {'ca_store': where['store_url']})
    args_file = folder / 'module-args.json'
    args_file.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / '.build' / 'collections'))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(MODULE), str(args_file)], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0 and json.loads(done.stdout)['action'] == 'issued', done.stdout[-500:]
    return elapsed


def _task_run(where: dict, folder: pathlib.Path, prefix: str, count: int) -> list:
    """``count`` single issues as Ansible tasks in one ansible-playbook run on localhost: each task's wall time
    (Ansible building and sending the module, the module process, the result), the first task left out (it builds
    the module's payload, which later tasks reuse)."""
    args = {'ca_passphrase': PASSPHRASE, 'key_type': 'ec-p256'}
    args.update({'ca_path': where['ca_path']} if where.get('ca_path') else {'ca_store': where['store_url']})
    tasks = [{'name': 'issue %d' % n, 'certfleet.pki.client_certificate': dict(
        args, identity='%s%d' % (prefix, n), subject={'CN': '%s%d' % (prefix, n)})} for n in range(count + 1)]
    playbook = folder / ('%s.yml' % prefix)
    playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]))
    os.chmod(playbook, 0o600)
    timings = folder / ('%s.tasks.json' % prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / '.build' / 'collections'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_CALLBACKS_ENABLED='task_seconds', CERTFLEET_TASK_SECONDS=str(timings),
               ANSIBLE_CALLBACK_PLUGINS=str(ROOT / 'bench' / 'bulk' / 'callback_plugins'),
               ANSIBLE_LOCAL_TEMP=str(folder / 'tmp-local'), ANSIBLE_REMOTE_TMP=str(folder / 'tmp-remote'))
    command = [str(pathlib.Path(sys.executable).with_name('ansible-playbook')), str(playbook), '-i', 'localhost,',
               '-c', 'local', '-e', 'ansible_python_interpreter=%s' % sys.executable]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=str(folder))
    assert done.returncode == 0 and 'changed=%d ' % (count + 1) in done.stdout, done.stdout[-1500:]
    seconds = json.loads(timings.read_text())
    return [seconds['issue %d' % n] for n in range(1, count + 1)]


def _bulk(where: dict, folder: pathlib.Path, prefix: str, count: int) -> float:
    src = folder / ('%s.tsv' % prefix)
    rows = ['issue\t%s%d\t%s %d\tec-p256' % (prefix, n, prefix, n) for n in range(count)]
    lines = ['action\tidentity\tCN\tkey_type'] + rows
    src.write_text('\n'.join(lines) + '\n')
    started = time.perf_counter()
    with ManagedCA(where.get('ca_path'), PASSPHRASE, store_url=where.get('store_url')) as ca:
        result = BulkRequest(ca, src=str(src), dest=str(folder / ('%s-out' % prefix))).execute()
    elapsed = time.perf_counter() - started
    assert result['counts'].get('issued') == count, result['counts']
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--issues', type=int, default=60)
    parser.add_argument('--bulk', type=int, default=300)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--module-runs', type=int, default=30)
    parser.add_argument('--tasks', type=int, default=10, help='single-issue tasks per ansible-playbook run')
    parser.add_argument('--task-runs', type=int, default=3, help='ansible-playbook runs per store')
    options = parser.parse_args()
    reason = why_unavailable()
    if reason:
        print('PostgreSQL cannot run here: %s' % reason)
        return 2
    server = PostgreSQLServer().start()
    bouncer = None if pgbouncer_unavailable() else PgBouncer(server).start()
    try:
        with tempfile.TemporaryDirectory(prefix='certfleet-bench-backends-') as tmp:
            folder = pathlib.Path(tmp)
            backends = {'sqlite': {'ca_path': str(folder / 'ca')},
                        'postgresql': {'store_url': server.url(server.create_database())},
                        'postgresql_scram': {'store_url': server.url(server.create_database(), PASSWORD_ROLE,
                                                                     PASSWORD)},
                        'postgresql_scram16': {'store_url': server.url(server.create_database(), FAST_SCRAM_ROLE,
                                                                       FAST_SCRAM_PASSWORD)}}
            if bouncer:
                backends['postgresql_pgbouncer'] = {'store_url': bouncer.url(server.create_database())}
            else:
                print('PgBouncer column left out: %s' % pgbouncer_unavailable())
            for where in backends.values():
                ensure_ca(ca_path=where.get('ca_path'), store_url=where.get('store_url'), ca_passphrase=PASSPHRASE,
                          subject={'CN': 'Bench Backends CA'})
            issue = {name: [] for name in backends}
            names = sorted(backends)
            for n in range(options.issues):
                for name in names[n % len(names):] + names[:n % len(names)]:  # each goes first in turn
                    issue[name].append(_issue(backends[name], 'single%d' % n))
            module = {name: [] for name in backends}
            for n in range(options.module_runs):
                for name in names[n % len(names):] + names[:n % len(names)]:
                    module[name].append(_module_run(backends[name], folder, 'module%d' % n))
            task = {name: [] for name in backends}
            for rep in range(options.task_runs):
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    task[name] += _task_run(backends[name], folder, 'task%d%s' % (rep, name), options.tasks)
            bulk = {name: [] for name in backends}
            for rep in range(options.reps):
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    bulk[name].append(_bulk(backends[name], folder, 'rep%d%s' % (rep, name), options.bulk))
    finally:
        if bouncer:
            bouncer.stop()
        server.stop()
    report = _report(issue, module, task, bulk, options)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / 'backends.json').write_text(json.dumps(report, indent=2) + '\n')
    (RESULTS / 'backends.md').write_text(_markdown(report))
    print(_markdown(report))
    return 0


def _report(issue: dict, module: dict, task: dict, bulk: dict, options) -> dict:
    medians = {'issue': {k: statistics.median(v) for k, v in issue.items()},
               'module': {k: statistics.median(v) for k, v in module.items()},
               'task': {k: statistics.median(v) for k, v in task.items()},
               'bulk': {k: statistics.median(v) for k, v in bulk.items()}}
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'machine': '%s, %d cores, Python %s' % (platform.platform(), os.cpu_count() or 0, platform.python_version()),
        'load_average_at_end': os.getloadavg(),
        'issues': options.issues, 'module_runs': options.module_runs, 'bulk_identities': options.bulk,
        'tasks': options.tasks * options.task_runs,
        'reps': options.reps,
        'median_seconds': medians,
        'ratio_to_sqlite': {op: {name: value / medians[op]['sqlite'] for name, value in medians[op].items()
                                 if name != 'sqlite'} for op in medians},
        'targets': {'issue': 1.5, 'module': 1.5, 'task': 1.5, 'bulk': 1.2},
    }


COLUMNS = (('postgresql', 'PostgreSQL, trust'), ('postgresql_scram', 'PostgreSQL, SCRAM 4,096 rounds'),
           ('postgresql_scram16', 'PostgreSQL, SCRAM 16 rounds'),
           ('postgresql_pgbouncer', 'PostgreSQL through PgBouncer (session mode)'))


def _markdown(report: dict) -> str:
    titles = dict(COLUMNS)
    shown = [name for name in titles if name in report['median_seconds']['issue']]
    rows = ['| operation | SQLite (median) | ' + ' | '.join('%s (median) | ratio' % titles[name] for name in shown)
            + ' | target |',
            '|---|---:|' + '---:|---:|' * len(shown) + '---:|']
    labels = {'issue': 'single issue, the library (open the CA, unlock, issue one)',
              'module': 'single issue, the module process (Python start, imports, the issue, its JSON)',
              'task': 'single issue, the Ansible task on localhost (the module sent and run, its result)',
              'bulk': 'bulk request file, %d new identities' % report['bulk_identities']}
    for op, label in labels.items():
        median = report['median_seconds'][op]
        cells = ['%.1f ms | %.2fx' % (median[name] * 1000, report['ratio_to_sqlite'][op][name]) for name in shown]
        rows.append('| %s | %.1f ms | %s | %.1fx |' % (label, median['sqlite'] * 1000, ' | '.join(cells),
                                                       report['targets'][op]))
    return ('PostgreSQL against SQLite, %s, %s, load average at the end %.1f (%d single issues, %d module '
            'processes and %d tasks per backend, each backend first in turn; %d bulk runs each)\n\n'
            % (report['date'], report['machine'], report['load_average_at_end'][0], report['issues'],
               report['module_runs'], report['tasks'], report['reps'])
            + '\n'.join(rows) + '\n')


if __name__ == '__main__':
    sys.exit(main())
