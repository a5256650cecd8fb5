# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cost of the nightly run: certfleet.pki.renew against a per-identity task loop, side by side.

    .venv/bin/python bench/nightly/run.py [--quick] [--forks 5] [--with-loop-due]

A fleet of 1,000 identities over 100 local hosts (10 each, stores: []) and one CA, every identity issued and
recorded as deployed. Cases, run alternately (round robin) so that they share the machine's state:

  a  fleet-none   ansible-playbook certfleet.pki.renew, nothing due (the batch roll-out, the default)
  b  fleet-due    the same with 10% of the identities inside renew_before (one on every host)
  a2 role-none    case a with -e certfleet_rollout=role (the deploy role for every identity, the former path)
  b2 role-due     case b with -e certfleet_rollout=role
  e  audit        certfleet.pki.audit on the same fleet where every host's Chromium NSS database (a home per host)
                  holds its 10 identities: one endpoint_reconcile call per host, no drift
  f  audit-drift  the same where 10% of the hosts lost an identity (certificate and key): put back
  c  loop-none    bench/nightly/loop.yml: client_certificate per identity on each host, delegated, nothing due
  d  loop-due     the loop with 10% due (renew, deploy role, revoke superseded); only with --with-loop-due

The CA directory (and the homes, in e and f) is restored from its pristine copy before every run, so every
repetition does the same work. After every run the CA store is checked (nothing issued in the -none and audit
cases; in the -due cases every due identity renewed, deployed on its host and its old certificate revoked; in the
audit cases every host audited, the drifted ones counted, and every NSS database holding its identities), so a
fast run that did nothing is not a result.
Writes bench/results/nightly.json and bench/results/nightly.md; logs under bench/results/nightly/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(REPO, 'bench', 'results')
WORK = os.path.join(RESULTS, 'nightly')
LINK_ROOT = os.path.join(WORK, 'collections')

ROLE = ['-e', 'certfleet_rollout=role']
CASES = {
    'fleet-none': {'label': '(a) certfleet.pki.renew, nothing due', 'fleet': 'none', 'playbook': 'certfleet.pki.renew'},
    'fleet-due': {'label': '(b) certfleet.pki.renew, {due}% due', 'fleet': 'due', 'playbook': 'certfleet.pki.renew'},
    'role-none': {'label': '(a2) renew -e certfleet_rollout=role, nothing due', 'fleet': 'none',
                  'playbook': 'certfleet.pki.renew', 'args': ROLE},
    'role-due': {'label': '(b2) renew -e certfleet_rollout=role, {due}% due', 'fleet': 'due',
                 'playbook': 'certfleet.pki.renew', 'args': ROLE},
    'audit': {'label': '(e) certfleet.pki.audit, 1 NSS db per host, no drift', 'fleet': 'audit',
              'playbook': 'certfleet.pki.audit', 'homes': 'pristine'},
    'audit-drift': {'label': '(f) certfleet.pki.audit, {drift}% of hosts lost an identity', 'fleet': 'audit',
                    'playbook': 'certfleet.pki.audit', 'homes': 'drift'},
    'loop-none': {'label': '(c) per-identity task loop, nothing due', 'fleet': 'none',
                  'playbook': os.path.join(HERE, 'loop.yml')},
    'loop-due': {'label': '(d) per-identity task loop, {due}% due', 'fleet': 'due',
                 'playbook': os.path.join(HERE, 'loop.yml')},
}
RECAP = re.compile(r'^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)',
                   re.M)


def link_collection() -> None:
    """The working tree, as certfleet.pki, under a collections path of our own (nothing else on it)."""
    target = os.path.join(LINK_ROOT, 'ansible_collections', 'certfleet')
    os.makedirs(target, exist_ok=True)
    link = os.path.join(target, 'pki')
    if os.path.islink(link) and os.readlink(link) == REPO:
        return
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(REPO, link)


def ansible_env(forks: int) -> dict:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith('ANSIBLE_'):
            del env[name]  # the user's settings (callbacks, pipelining, ...) would skew one side or the other
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': LINK_ROOT,
        'ANSIBLE_FORKS': str(forks),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_LOCAL_TEMP': os.path.join(WORK, 'tmp', 'local'),
        'ANSIBLE_REMOTE_TMP': os.path.join(WORK, 'tmp', 'remote'),
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_HOST_KEY_CHECKING': '0',
    })
    return env


def ansible_playbook() -> str:
    candidate = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
    return candidate if os.path.exists(candidate) else 'ansible-playbook'


def run_case(name: str, work: str, env: dict, log_dir: str, rep: int) -> dict:
    import fleet  # noqa: E402 (bench/nightly is on sys.path)

    fleet.restore(work, CASES[name].get('homes', 'pristine'))
    log = os.path.join(log_dir, '%s-%d.log' % (name, rep))
    command = [ansible_playbook(), CASES[name]['playbook'], '-i', os.path.join(work, 'inventory.json')]
    command += CASES[name].get('args', [])
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(log, 'w', encoding='utf-8') as handle:
        rc = subprocess.call(command, env=env, cwd=WORK, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    with open(log, encoding='utf-8') as handle:
        recap = RECAP.findall(handle.read())
    failed = sum(int(r[3]) + int(r[4]) for r in recap)
    changed_hosts = sum(1 for r in recap if int(r[2]) > 0)
    # Tasks in the play recap (ok, which counts changed, plus skipped): per fleet host, and on the controller
    # (localhost: the fleet's CA steps, each delegated to the CA host once).
    host_tasks = [int(r[1]) + int(r[5]) for r in recap if r[0] != 'localhost']
    controller_tasks = sum(int(r[1]) + int(r[5]) for r in recap if r[0] == 'localhost')
    problems = []
    if rc != 0 or failed:
        problems.append('ansible-playbook exited %d with %d failed/unreachable (see %s)' % (rc, failed, log))
    problems += check_store(work, due=CASES[name]['fleet'] == 'due')
    if CASES[name]['fleet'] == 'audit':
        problems += check_audit(work, drift=CASES[name]['homes'] == 'drift')
    # Other work on the machine inflates every figure: the 1-minute load average is kept with each run.
    return {'seconds': round(seconds, 2), 'load_before': round(load_before, 2),
            'load_after': round(os.getloadavg()[0], 2), 'rc': rc, 'changed_hosts': changed_hosts, 'problems': problems,
            'max_tasks_per_host': max(host_tasks, default=0), 'controller_tasks': controller_tasks,
            'log': os.path.relpath(log, REPO)}


def check_store(work: str, due: bool) -> list:
    """What the CA store says after the run, independent of the playbook's own output."""
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA

    with open(os.path.join(work, 'fleet.json'), encoding='utf-8') as handle:
        meta = json.load(handle)
    problems = []
    with ManagedCA(os.path.join(work, 'ca'), unlock=False) as ca:
        totals = ca.query()['totals']
        expected_total = meta['identities'] + (meta['due'] if due else 0)
        if totals['total'] != expected_total:
            problems.append('store holds %d certificates, expected %d' % (totals['total'], expected_total))
        if totals['revoked'] != (meta['due'] if due else 0):
            problems.append('store has %d revoked, expected %d' % (totals['revoked'], meta['due'] if due else 0))
        if totals['pending_revocation']:
            problems.append('%d certificates still wait for revocation' % totals['pending_revocation'])
        with ca.store.read():
            deployed = ca.store.deployments()
        current = {c['identity']: c['serial'] for c in ca.query(current_only=True)['certificates']}
    if len(deployed) != meta['identities']:
        problems.append('%d deployment records, expected %d' % (len(deployed), meta['identities']))
    stale = [d for d in deployed if current.get(d['identity']) != d['serial']]
    if stale:
        problems.append('%d deployment records do not show the current serial (e.g. %s on %s)'
                        % (len(stale), stale[0]['identity'], stale[0]['host']))
    return problems


def check_audit(work: str, drift: bool) -> list:
    """Every host audited and recorded, the drifted hosts counted, every NSS database holding its identities."""
    import fleet  # noqa: E402
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA

    with open(os.path.join(work, 'fleet.json'), encoding='utf-8') as handle:
        meta = json.load(handle)
    problems = []
    with ManagedCA(os.path.join(work, 'ca'), unlock=False) as ca, ca.store.read():
        audits = ca.store.host_audits()
    if len(audits) != meta['hosts']:
        problems.append('%d hosts audited, expected %d' % (len(audits), meta['hosts']))
    drifted = sum(1 for a in audits if a['summary'].get('drift'))
    restored = sum(a['summary'].get('restored', 0) for a in audits)
    expected = meta['drifted_hosts'] if drift else 0
    if drifted != expected or restored != expected:
        problems.append('%d hosts with drift and %d restored, expected %d' % (drifted, restored, expected))
    for h in range(meta['hosts']):
        listing = subprocess.run(['certutil', '-L', '-d', 'sql:' + fleet.nssdb(fleet.home_of(work, h))],
                                 capture_output=True, text=True, check=False).stdout
        wanted = {fleet.identity_name(h * meta['per_host'] + i) for i in range(meta['per_host'])}
        held = {line.split()[0] for line in listing.splitlines() if line.startswith('u')}
        if held != wanted:
            problems.append('%s holds %s, expected %s' % (fleet.host_name(h), sorted(held), sorted(wanted)))
            break
    return problems


def machine() -> dict:
    model = ''
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            model = next((line.split(':', 1)[1].strip() for line in handle if line.startswith('model name')), '')
    except OSError:
        pass
    version = subprocess.run([ansible_playbook(), '--version'], capture_output=True, text=True,
                             check=False).stdout.splitlines()
    return {'nproc': os.cpu_count(), 'cpu': model, 'platform': platform.platform(),
            'python': platform.python_version(), 'ansible': version[0] if version else 'unknown'}


def summarise(runs: dict, due_percent: int, drift_percent: int = 10) -> dict:
    out = {}
    for name, entries in runs.items():
        times = [e['seconds'] for e in entries]
        out[name] = {'label': CASES[name]['label'].format(due=due_percent, drift=drift_percent), 'runs': len(times),
                     'median_s': round(statistics.median(times), 2),
                     'min_s': min(times), 'max_s': max(times), 'times_s': times,
                     'max_tasks_per_host': max(e.get('max_tasks_per_host', 0) for e in entries),
                     'controller_tasks': max(e.get('controller_tasks', 0) for e in entries),
                     'problems': sorted({p for e in entries for p in e['problems']})}
    return out


def markdown(result: dict) -> str:
    s = result['summary']
    lines = ['| case | runs | median (s) | min–max (s) | share of (c) | vs (a) | tasks per host (max) '
             '| controller tasks |',
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    loop = s.get('loop-none', {}).get('median_s')
    none = s.get('fleet-none', {}).get('median_s')
    for name in CASES:
        if name not in s:
            continue
        row = s[name]
        share = '%.1f%%' % (100 * row['median_s'] / loop) if loop else '–'
        ratio = '%.2fx' % (row['median_s'] / none) if none else '–'
        cells = (row['label'], row['runs'], row['median_s'], row['min_s'], row['max_s'], share, ratio,
                 row.get('max_tasks_per_host', 0), row.get('controller_tasks', 0))
        lines.append('| %s | %d | %.1f | %.1f–%.1f | %s | %s | %d | %d |' % cells)
    m, f = result['machine'], result['fleet']
    target = result.get('target')
    lines += ['', '%d identities over %d local hosts (%d per host, stores: [], ec-p256 keys), one CA; %d%% due '
                  '(one identity on every host) in the -due cases; in (e) and (f) the same identities live in one '
                  'Chromium NSS database per host (%d%% of the hosts lost one in (f)). forks=%d, %s, nproc=%s (%s), '
                  'median of the runs listed, cases run round robin in one session on %s.'
              % (f['identities'], f['hosts'], f['per_host'], f['due_percent'], f.get('drift_percent', 0),
                 result['forks'], m['ansible'], m['nproc'], m['cpu'] or 'unknown CPU', result['date'][:10])]
    if target:
        lines.append('Target (a) < 10%% of (c): %s (%.1f%%).' % ('met' if target['met'] else 'NOT met',
                                                                 target['a_over_c_percent']))
    lines.append('Reproduce: `.venv/bin/python bench/nightly/run.py%s`.' % (' --quick' if result['quick'] else ''))
    return '\n'.join(lines) + '\n'


def print_table(result: dict) -> None:
    s = result['summary']
    print('\n%-45s %5s %10s %17s' % ('case', 'runs', 'median s', 'min-max s'))
    for name in CASES:
        if name in s:
            row = s[name]
            print('%-45s %5d %10.1f %8.1f-%-8.1f%s' % (row['label'], row['runs'], row['median_s'], row['min_s'],
                                                       row['max_s'], '  PROBLEMS' if row['problems'] else ''))
    if result.get('target'):
        t = result['target']
        print('\n(a) / (c) = %.1f%%  (target < 10%%: %s)' % (t['a_over_c_percent'], 'met' if t['met'] else 'NOT met'))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='fewer repetitions: 3 of (a), 1 of (b), 1 of (c)')
    parser.add_argument('--reps', type=int, help='repetitions of (a) and (b) (default 5 and 3; quick 3 and 1)')
    parser.add_argument('--loop-reps', type=int, help='repetitions of the loop cases (default 3; quick 1)')
    parser.add_argument('--forks', type=int, default=5, help='forks for every case (default: 5, ansible default)')
    parser.add_argument('--with-loop-due', action='store_true', help='also run (d), the loop with 10%% due')
    parser.add_argument('--cases', help='comma-separated subset of %s' % ','.join(CASES))
    parser.add_argument('--hosts', type=int, default=100)
    parser.add_argument('--per-host', type=int, default=10)
    parser.add_argument('--due-percent', type=int, default=10)
    parser.add_argument('--drift-percent', type=int, default=10, help='hosts that lost an identity in (f)')
    args = parser.parse_args(argv)

    link_collection()
    sys.path[:0] = [HERE, LINK_ROOT]
    import fleet  # noqa: E402

    fleet_reps = args.reps or (3 if args.quick else 5)
    due_reps = args.reps or (1 if args.quick else 3)
    loop_reps = args.loop_reps or (1 if args.quick else 3)
    reps = {'fleet-none': fleet_reps, 'fleet-due': due_reps, 'role-none': fleet_reps, 'role-due': due_reps,
            'audit': due_reps, 'audit-drift': due_reps, 'loop-none': loop_reps, 'loop-due': loop_reps}
    default_cases = ['fleet-none', 'fleet-due', 'role-none', 'audit', 'audit-drift', 'loop-none']
    cases = args.cases.split(',') if args.cases else default_cases + (['loop-due'] if args.with_loop_due else [])
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error('unknown case(s): %s' % ', '.join(sorted(unknown)))

    for sub in ('tmp/local', 'tmp/remote', 'logs'):
        os.makedirs(os.path.join(WORK, sub), exist_ok=True)
    log_dir = os.path.join(WORK, 'logs')
    shutil.rmtree(log_dir)
    os.makedirs(log_dir)
    env = ansible_env(args.forks)
    env['PYTHONPATH'] = LINK_ROOT
    works = {}
    for kind, percent in (('none', 0), ('due', args.due_percent), ('audit', 0)):
        if not any(CASES[c]['fleet'] == kind for c in cases):
            continue
        work = os.path.join(WORK, 'fleet-' + kind)
        started = time.perf_counter()
        meta = fleet.build(work, args.hosts, args.per_host, percent, sys.executable, stores=kind == 'audit',
                           drift_percent=args.drift_percent if kind == 'audit' else 0)
        meta.update({'per_host': args.per_host, 'due_percent': percent})
        with open(os.path.join(work, 'fleet.json'), 'w', encoding='utf-8') as handle:
            json.dump(meta, handle)
        works[kind] = work
        print('fleet %-4s %d identities on %d hosts, %d due: set up in %.1fs'
              % (kind, meta['identities'], meta['hosts'], meta['due'], time.perf_counter() - started), flush=True)

    runs: dict = {name: [] for name in cases}
    for rep in range(max(reps[c] for c in cases)):
        for name in cases:
            if rep >= reps[name]:
                continue
            entry = run_case(name, works[CASES[name]['fleet']], env, log_dir, rep)
            runs[name].append(entry)
            print('%-10s run %d: %7.1fs%s' % (name, rep + 1, entry['seconds'],
                                              ('  ' + '; '.join(entry['problems'])) if entry['problems'] else ''),
                  flush=True)

    result = {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine(), 'forks': args.forks, 'quick': args.quick,
        'fleet': {'hosts': args.hosts, 'per_host': args.per_host, 'identities': args.hosts * args.per_host,
                  'due_percent': args.due_percent, 'drift_percent': args.drift_percent, 'stores': [],
                  'audit_stores': ['chromium'], 'key_type': fleet.KEY_TYPE,
                  'connection': 'local', 'ca_host': 'localhost'},
        'repetitions': {name: reps[name] for name in cases},
        'summary': summarise(runs, args.due_percent, args.drift_percent), 'runs': runs,
    }
    s = result['summary']
    if 'fleet-none' in s and 'loop-none' in s:
        share = 100 * s['fleet-none']['median_s'] / s['loop-none']['median_s']
        result['target'] = {'a_over_c_percent': round(share, 1), 'met': share < 10}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'nightly.json'), 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=1)
    with open(os.path.join(RESULTS, 'nightly.md'), 'w', encoding='utf-8') as handle:
        handle.write(markdown(result))
    print_table(result)
    print('\nwritten: bench/results/nightly.json, bench/results/nightly.md')
    bad = any(row['problems'] for row in s.values())
    if bad:
        print('some runs did not end in the expected state; see "problems" in nightly.json', file=sys.stderr)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
