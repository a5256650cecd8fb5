# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper: writes each task's wall time to the JSON file named by CERTFLEET_TASK_SECONDS."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: task_seconds
type: aggregate
short_description: Writes task durations to a JSON file (certfleet.pki benchmarks only)
description:
  - Records the time from a task's start to the end of its last result, per task name.
requirements:
  - enable in callbacks_enabled
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_seconds'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._started = {}
        self._seconds = {}
        self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._current = task.get_name()
        self._started[self._current] = time.perf_counter()

    def _done(self, result):
        name = result._task.get_name()
        if name in self._started:
            self._seconds[name] = round(time.perf_counter() - self._started[name], 3)

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = _done

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('CERTFLEET_TASK_SECONDS')
        if path:
            with open(path, 'w', encoding='utf-8') as handle:
                json.dump(self._seconds, handle)
