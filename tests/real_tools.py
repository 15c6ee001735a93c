"""The benchmarks' own code, loaded from their installed packages for the tests to read our files with.

FastChat's ``llm_judge/common.py`` imports its model adapters (torch, transformers) at the top; only
the loaders and match builders are needed, so those functions and classes are compiled from the
installed file itself, with the standard-library names they use. alpaca_eval imports whole.
"""

from __future__ import annotations

import ast
import dataclasses
import glob
import json
import os
import warnings
from importlib.metadata import distribution
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional


def _installed(package: str, relative: str) -> Path:
    return Path(str(distribution(package).locate_file(relative)))


def _compile_definitions(path: Path, names: set[str], namespace: dict[str, Any]) -> None:
    with warnings.catch_warnings():  # their regular expressions' old escapes are theirs to fix
        warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
        tree = ast.parse(path.read_text())
    chosen = [
        node
        for node in tree.body
        if getattr(node, "name", None) in names
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in names for t in node.targets))
    ]
    found = {getattr(n, "name", None) or n.targets[0].id for n in chosen}  # type: ignore[attr-defined]
    assert found == names, f"{path} no longer defines {names - found}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
        code = compile(ast.Module(body=chosen, type_ignores=[]), str(path), "exec")
    exec(code, namespace)


def fastchat_llm_judge() -> SimpleNamespace:
    """FastChat 0.2.36's answer loaders, data check and single-answer match builder."""
    namespace: dict[str, Any] = {
        "dataclasses": dataclasses,
        "glob": glob,
        "json": json,
        "os": os,
        "Optional": Optional,
    }
    _compile_definitions(
        _installed("fschat", "fastchat/llm_judge/common.py"),
        {"NEED_REF_CATS", "Judge", "MatchSingle", "load_questions", "load_model_answers", "check_data",
         "get_model_list"},
        namespace,
    )  # fmt: skip
    _compile_definitions(
        _installed("fschat", "fastchat/llm_judge/gen_judgment.py"), {"make_match_single"}, namespace
    )
    return SimpleNamespace(**namespace)
