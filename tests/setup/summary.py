# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-stage summary of `make test`: where the time goes, what failed, what was skipped and why.

``summary.py run REPORTS STAGE -- COMMAND...`` runs one stage's command (output passed through), and writes
``REPORTS/STAGE.json`` with its exit code and wall time; the command's exit code is returned unchanged. A pytest
stage also writes ``REPORTS/STAGE.xml`` (``--junitxml``), from which the counts, the skip reasons and the test
durations are read.

``summary.py print REPORTS`` prints a table of the stages (passed, failed, skipped, seconds), the skips with their
reasons and the ten slowest tests. It reports and never fails: the exit code of `make test` is the stages' own.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

SLOWEST = 10


def run_stage(reports: pathlib.Path, stage: str, command: list[str]) -> int:
    reports.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        returncode = subprocess.call(command)
    except OSError as error:
        print('%s: cannot run %s: %s' % (stage, command[0], error), file=sys.stderr)
        returncode = 127
    record = {'stage': stage, 'returncode': returncode, 'seconds': round(time.monotonic() - started, 1),
              'finished': time.time()}
    reports.mkdir(parents=True, exist_ok=True)  # again: the folder may have been cleaned while the stage ran
    (reports / ('%s.json' % stage)).write_text(json.dumps(record) + '\n')
    return returncode


def read_junit(path: pathlib.Path) -> dict:
    """Counts, skip reasons and per-test durations of one pytest junit file."""
    result: dict = {'passed': 0, 'failed': 0, 'skipped': 0, 'skips': [], 'tests': []}
    for case in ET.parse(path).getroot().iter('testcase'):
        name = '%s::%s' % (case.get('classname', ''), case.get('name', ''))
        result['tests'].append((float(case.get('time') or 0), name))
        if case.find('failure') is not None or case.find('error') is not None:
            result['failed'] += 1
        elif case.find('skipped') is not None:
            result['skipped'] += 1
            skipped = case.find('skipped')
            reason = skipped.get('message') or (skipped.text or '').strip() or 'no reason given'
            result['skips'].append((name, reason))
        else:
            result['passed'] += 1
    return result


def print_summary(reports: pathlib.Path) -> None:
    records = []
    for path in reports.glob('*.json') if reports.is_dir() else []:
        try:
            records.append(json.loads(path.read_text()))
        except ValueError:
            continue
    records.sort(key=lambda record: record.get('finished', 0))
    print()
    print('== make test: summary (%s) ==' % reports)
    if not records:
        print('no stage ran')
        return
    rows = []
    skips = []
    tests = []
    for record in records:
        stage = record['stage']
        junit = reports / ('%s.xml' % stage)
        status = 'ok' if record['returncode'] == 0 else 'FAILED (exit %d)' % record['returncode']
        counts = ['-', '-', '-']
        if junit.exists():
            try:
                found = read_junit(junit)
            except ET.ParseError:
                found = None
            if found:
                counts = [str(found['passed']), str(found['failed']), str(found['skipped'])]
                skips += [(stage, name, reason) for name, reason in found['skips']]
                tests += [(seconds, stage, name) for seconds, name in found['tests']]
        rows.append([stage] + counts + ['%.1f' % record['seconds'], status])
    header = ['stage', 'passed', 'failed', 'skipped', 'seconds', 'result']
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print('  '.join(cell.ljust(width) if i in (0, 5) else cell.rjust(width)
                        for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip())
    print('total: %.1f s' % sum(record['seconds'] for record in records))
    if skips:
        print()
        print('skipped:')
        for stage, name, reason in skips:
            print('  [%s] %s: %s' % (stage, name, reason))
    if tests:
        print()
        print('slowest tests (setup, call and teardown):')
        for seconds, stage, name in sorted(tests, reverse=True)[:SLOWEST]:
            print('  %8.1f s  [%s] %s' % (seconds, stage, name))


def main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[0] == 'run' and argv[3] == '--':
        return run_stage(pathlib.Path(argv[1]), argv[2], argv[4:])
    if len(argv) == 2 and argv[0] == 'print':
        print_summary(pathlib.Path(argv[1]))
        return 0
    print('usage: summary.py run REPORTS STAGE -- COMMAND... | summary.py print REPORTS', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
