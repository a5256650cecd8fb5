# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Before/after: the bulk and nightly benchmarks on a base revision and on HEAD, side by side in one session.

    .venv/bin/python bench/compare.py [--base 45dcb30] [--head HEAD | --head-dir .] [--rounds 3]
    make bench-compare BASE=45dcb30 ROUNDS=3

Both revisions are checked out as detached git worktrees in a temporary directory (removed at the end, --keep to
keep them), so the comparison measures committed code and is not disturbed by uncommitted edits in this checkout
(--head-dir measures a directory as it is instead, e.g. --head-dir . for the working tree). Each checkout runs its
own bench scripts on its own collection: bench/nightly/run.py links the checkout it lives in under
<checkout>/bench/results/nightly/collections and points ANSIBLE_COLLECTIONS_PATH there (bench/bulk/run.py uses the
same link); compare.py checks after every run that the link points at that checkout.

Small sizes, so that 3 rounds take about 15 minutes on an idle 2-core machine (on a loaded one, load average 5
to 19, one round took 8 to 12 minutes):

  bulk     bench/bulk/run.py --identities 100 --reps 1 --no-loop       (EC P-256 and RSA 2048)
  nightly  bench/nightly/run.py --quick --hosts 5 --per-host 10        (50 identities, 5 due)

For each round and benchmark the two checkouts run one after the other, the order alternating between rounds
(base first, then head first, ...). The figures are the ones the scripts write to their own
bench/results/{bulk,nightly}.json (the same fields in every revision that has these scripts), plus the wall time of
each script as a whole. Medians pool every run of every round; the floors of the bulk benchmark are cryptography
alone, independent of the collection, so their ratio shows how much the machine's noise moves a ratio.
Writes bench/results/compare.json and bench/results/compare.txt in this checkout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(REPO, 'bench', 'results')
DEFAULT_BASE = '45dcb30'  # the commit before the issue-10 refactor

BENCHES = {
    'bulk': {'script': os.path.join('bench', 'bulk', 'run.py'),
             'args': ['--identities', '100', '--reps', '1', '--no-loop'],
             'result': os.path.join('bench', 'results', 'bulk.json')},
    'nightly': {'script': os.path.join('bench', 'nightly', 'run.py'),
                'args': ['--quick', '--hosts', '5', '--per-host', '10'],
                'result': os.path.join('bench', 'results', 'nightly.json')},
}


def git(*args: str, cwd: str = REPO) -> str:
    return subprocess.run(['git', *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def add_worktree(rev: str, path: str) -> None:
    # Detached: no branch is created or moved; only .git/worktrees changes in this repository.
    git('worktree', 'add', '--detach', '--quiet', path, rev)


def remove_worktree(path: str) -> None:
    # --force: the checkout holds bench/results (git-ignored), which a plain remove refuses.
    result = subprocess.run(['git', 'worktree', 'remove', '--force', path], cwd=REPO, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        print('could not remove worktree %s: %s' % (path, result.stderr.strip()), file=sys.stderr)


def figures(bench: str, result: dict) -> dict:
    """case name -> list of seconds, from the JSON a benchmark wrote."""
    out: dict = {}
    if bench == 'bulk':
        for key_type, cases in result['summary'].items():
            for name, label in (('floor-1', 'floor, 1 process (control)'),
                                ('floor-all', 'floor, all cores (control)'), ('module', 'module task')):
                if name in cases:
                    out['bulk %s %s' % (key_type, label)] = list(cases[name]['times_s'])
            if 'module' in cases:
                out['bulk %s module playbook' % key_type] = [cases['module']['playbook_median_s']]
                out['bulk %s same file again' % key_type] = [cases['module']['again_median_s']]
    else:
        for row in result['summary'].values():
            out['nightly %s' % row['label']] = list(row['times_s'])
    return out


def problems_of(bench: str, result: dict) -> list:
    if bench == 'bulk':
        return [p for cases in result['summary'].values() for case in cases.values() for p in case['problems']]
    return [p for row in result['summary'].values() for p in row['problems']]


def check_link(checkout: str) -> str | None:
    link = os.path.join(checkout, 'bench', 'results', 'nightly', 'collections', 'ansible_collections', 'certfleet',
                        'pki')
    target = os.path.realpath(link) if os.path.lexists(link) else None
    if target != os.path.realpath(checkout):
        return 'collection link %s points at %s, not at the checkout' % (link, target)
    return None


def run_one(bench: str, side: str, checkout: str, python: str, log_dir: str, rnd: int, timeout: int) -> dict:
    spec = BENCHES[bench]
    result_file = os.path.join(checkout, spec['result'])
    if os.path.exists(result_file):
        os.unlink(result_file)  # a stale result must not pass for this run's
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_') and k != 'PYTHONPATH'}
    log = os.path.join(log_dir, '%s-%s-%d.log' % (bench, side, rnd))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(log, 'w', encoding='utf-8') as handle:
        # A session of its own, so that a timeout or Ctrl-C ends the benchmark with its pool workers and playbooks.
        proc = subprocess.Popen([python, os.path.join(checkout, spec['script']), *spec['args']], cwd=checkout,
                                env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except BaseException as exc:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait()
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            rc = 'timeout'
    seconds = time.perf_counter() - started
    entry = {'bench': bench, 'side': side, 'round': rnd, 'rc': rc, 'seconds': round(seconds, 2),
             'load_before': round(load_before, 2), 'load_after': round(os.getloadavg()[0], 2), 'log': log,
             'figures': {}, 'problems': []}
    if os.path.exists(result_file):
        with open(result_file, encoding='utf-8') as handle:
            result = json.load(handle)
        entry['figures'] = figures(bench, result)
        entry['problems'] = problems_of(bench, result)
    else:
        entry['problems'].append('no %s written (exit %s, see %s)' % (spec['result'], rc, log))
    if rc != 0 and not entry['problems']:
        entry['problems'].append('exit %s (see %s)' % (rc, log))
    link_problem = check_link(checkout)
    if link_problem:
        entry['problems'].append(link_problem)
    entry['figures']['%s whole script' % bench] = [entry['seconds']]
    return entry


def table(runs: list, meta: dict) -> str:
    cases: list = []
    for entry in runs:
        for name in entry['figures']:
            if name not in cases:
                cases.append(name)
    pooled = {side: {name: [t for e in runs if e['side'] == side for t in e['figures'].get(name, [])]
                     for name in cases} for side in ('base', 'head')}
    bad = {(e['bench'], e['side']) for e in runs if e['problems']}
    width = max(len(c) for c in cases) if cases else 10
    lines = ['%-*s  %5s  %10s  %10s  %10s' % (width, 'case', 'runs', 'base med s', 'head med s', 'head/base'),
             '-' * (width + 45)]
    for name in cases:
        base, head = pooled['base'][name], pooled['head'][name]
        if not base or not head:
            runs_text = '%d/%d' % (len(base), len(head))
            lines.append('%-*s  %5s  %10s  %10s  %10s' % (width, name, runs_text, '-', '-', '-'))
            continue
        b, h = statistics.median(base), statistics.median(head)
        flag = ''.join(' PROBLEMS(%s)' % side for side in ('base', 'head') if (name.split()[0], side) in bad)
        lines.append('%-*s  %5s  %10.2f  %10.2f  %9.2fx%s' % (width, name, '%d/%d' % (len(base), len(head)), b, h,
                                                              h / b if b else float('nan'), flag))
    loads = [e['load_before'] for e in runs] + [e['load_after'] for e in runs]
    wanted = {(b, side) for b in meta['benches'] for side in ('base', 'head')}
    done = sum(1 for r in {e['round'] for e in runs} if {(e['bench'], e['side']) for e in runs if e['round'] == r}
               >= wanted)
    rounds = '%d rounds' % meta['rounds'] if done >= meta['rounds'] else '%d of %d rounds (stopped early)' % (
        done, meta['rounds'])
    lines += ['',
              'base %s (%s), head %s (%s); %s, checkouts alternating, medians of all runs (runs = base/head).'
              % (meta['base'][:10], meta['base_label'], meta['head'][:10], meta['head_label'], rounds),
              'Sizes: bulk %s; nightly %s.' % (' '.join(BENCHES['bulk']['args']),
                                               ' '.join(BENCHES['nightly']['args'])),
              '%s; nproc=%s; 1-min load average %.1f to %.1f; %s; total %.0f s.'
              % (meta['python'], os.cpu_count(), min(loads, default=0), max(loads, default=0),
                 meta['date'][:16], meta['total_seconds'])]
    problems = [(e['bench'], e['side'], e['round'], p) for e in runs for p in e['problems']]
    if problems:
        lines.append('PROBLEMS (the runs concerned may have done less work; their figures are not comparable):')
        lines += ['  %s %s round %d: %s' % p for p in problems[:20]]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--base', default=DEFAULT_BASE, help='base revision (default %s)' % DEFAULT_BASE)
    parser.add_argument('--head', default='HEAD', help='revision measured against the base (default HEAD, '
                        'checked out as a worktree: uncommitted changes are not measured)')
    parser.add_argument('--head-dir', help='measure this directory as it is instead of a worktree of --head')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--benches', default='bulk,nightly', help='comma-separated subset of bulk,nightly')
    parser.add_argument('--python', default=sys.executable, help='interpreter for both sides (default: this one, '
                        'normally .venv/bin/python; ansible-playbook is taken from its directory)')
    parser.add_argument('--timeout', type=int, default=1800, help='seconds per benchmark run (default 1800)')
    parser.add_argument('--keep', action='store_true', help='keep the worktrees and logs')
    args = parser.parse_args(argv)
    benches = args.benches.split(',')
    unknown = set(benches) - set(BENCHES)
    if unknown:
        parser.error('unknown bench(es): %s' % ', '.join(sorted(unknown)))

    base = git('rev-parse', '--verify', args.base + '^{commit}')
    head = git('rev-parse', '--verify', args.head + '^{commit}') if not args.head_dir else git(
        'rev-parse', 'HEAD', cwd=args.head_dir)
    meta = {'base': base, 'base_label': args.base, 'head': head,
            'head_label': ('dir %s' % os.path.abspath(args.head_dir)) if args.head_dir else args.head,
            'rounds': args.rounds, 'python': args.python, 'benches': benches,
            'sizes': {b: BENCHES[b]['args'] for b in benches},
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}
    tmp = tempfile.mkdtemp(prefix='certfleet-bench-compare-')
    checkouts = {'base': os.path.join(tmp, 'base'),
                 'head': os.path.abspath(args.head_dir) if args.head_dir else os.path.join(tmp, 'head')}
    log_dir = os.path.join(tmp, 'logs')
    os.makedirs(log_dir)
    added = []
    runs: list = []
    started = time.perf_counter()
    try:
        for side, rev in (('base', base), ('head', head)):
            if side == 'head' and args.head_dir:
                continue
            add_worktree(rev, checkouts[side])
            added.append(checkouts[side])
        print('base %s at %s\nhead %s at %s\nlogs in %s' % (base[:10], checkouts['base'], head[:10],
                                                            checkouts['head'], log_dir), flush=True)
        for rnd in range(1, args.rounds + 1):
            order = ('base', 'head') if rnd % 2 else ('head', 'base')
            for bench in benches:
                for side in order:
                    entry = run_one(bench, side, checkouts[side], args.python, log_dir, rnd, args.timeout)
                    runs.append(entry)
                    print('round %d %-7s %-4s %7.1fs  load %.1f->%.1f%s' % (
                        rnd, bench, side, entry['seconds'], entry['load_before'], entry['load_after'],
                        ('  ' + '; '.join(entry['problems'][:3])) if entry['problems'] else ''), flush=True)
    finally:
        meta['total_seconds'] = round(time.perf_counter() - started, 1)
        if runs:
            text = table(runs, meta)
            os.makedirs(RESULTS, exist_ok=True)
            with open(os.path.join(RESULTS, 'compare.json'), 'w', encoding='utf-8') as handle:
                json.dump({'meta': meta, 'runs': runs}, handle, indent=1)
            with open(os.path.join(RESULTS, 'compare.txt'), 'w', encoding='utf-8') as handle:
                handle.write(text)
            print('\n' + text + '\nwritten: bench/results/compare.json, bench/results/compare.txt', flush=True)
        if args.keep:
            print('kept: %s' % tmp)
        else:
            for path in added:
                remove_worktree(path)
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any(e['problems'] for e in runs) else 0


if __name__ == '__main__':
    sys.exit(main())
