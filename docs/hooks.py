"""MkDocs hooks: the repository's benchmark reports (and their figures) and examples become files of
the site where they are, so the pages link to them as they are and the reports are never copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SHARED = {"benchmarks": ("*.md", "*.png"), "examples": ("*.py", "configs/*.toml")}


def on_files(files: Files, config: Any) -> Files:
    for folder, patterns in SHARED.items():
        for pattern in patterns:
            for path in sorted((ROOT / folder).glob(pattern)):
                relative = path.relative_to(ROOT).as_posix()
                files.append(File(relative, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
