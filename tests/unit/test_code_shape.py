# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The library stays readable in one sitting: short functions, few positional parameters (issue 10)."""

from __future__ import annotations

import ast
import pathlib

LIBRARY = pathlib.Path(__file__).resolve().parents[2] / 'plugins' / 'module_utils'
MAX_LINES = 60
MAX_POSITIONAL = 6  # beyond this, parameters are keyword-only or grouped in a dataclass


def _functions():
    for path in sorted(LIBRARY.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(LIBRARY.parent.parent), node


def test_the_library_is_where_the_test_looks():
    assert (LIBRARY / 'ca' / 'lifecycle.py').is_file()
    assert len(list(_functions())) > 300


def test_no_function_is_longer_than_the_limit():
    long = ['%s:%d %s (%d lines)' % (path, node.lineno, node.name, node.end_lineno - node.lineno + 1)
            for path, node in _functions() if node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert long == []


def test_no_function_takes_many_positional_parameters():
    many = []
    for path, node in _functions():
        names = [a.arg for a in node.args.posonlyargs + node.args.args]
        positional = [n for n in names if n not in ('self', 'cls')]
        if len(positional) > MAX_POSITIONAL:
            many.append('%s:%d %s(%s)' % (path, node.lineno, node.name, ', '.join(positional)))
    assert many == []
