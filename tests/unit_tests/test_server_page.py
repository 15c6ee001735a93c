"""The page's files as the package ships them: nothing inline, nothing from elsewhere, light, and the
vendored libraries byte for byte the published ones (the page in a browser: test_page.py)."""

from __future__ import annotations

import hashlib
import re
from importlib.resources import files

from langchain_moa.server.page import PAGE_FILES

WEB = files("langchain_moa.server") / "web"


def test_the_vendored_libraries_are_the_published_ones() -> None:
    readme = WEB.joinpath("vendor/README.md").read_text()
    for name, digest in {
        "marked.js": "f8c7f128939415995e2219e8a84bec42fab27f5980d22e361339e6901da5eadf",  # marked 18.3.0
        "purify.js": "f69a46022ab1f53e969c8ebbca98172c8995785a9b3be72ea4a12d25b1a1bf67",  # dompurify 3.5.0
    }.items():
        assert hashlib.sha256(WEB.joinpath(f"vendor/{name}").read_bytes()).hexdigest() == digest, name
        assert digest in readme


def test_the_page_loads_its_own_files_only_and_has_no_inline_script_or_handler() -> None:
    page = WEB.joinpath("index.html").read_text()
    assert not re.search(r"<script(?![^>]*\ssrc=)", page)  # every script is a file
    assert not re.search(r"\son[a-z]+\s*=", page, re.IGNORECASE)  # no inline event handler
    assert not re.search(r"\sstyle\s*=", page)  # no inline style (the policy allows none)
    linked = set(re.findall(r'(?:src|href)="([^"]+)"', page))
    assert linked == {f"/page/{name}" for name in PAGE_FILES if name != "index.html"}


def test_the_page_weighs_under_150_kb() -> None:
    assert sum(len(WEB.joinpath(name).read_bytes()) for name in PAGE_FILES) < 150 * 1024


def test_the_script_never_parses_model_text_as_html_except_through_the_sanitiser() -> None:
    script = WEB.joinpath("app.js").read_text()
    assert re.findall(r"innerHTML\s*=.*", script) == ["innerHTML = DOMPurify.sanitize(marked.parse(text));"]
    assert "insertAdjacentHTML" not in script and "outerHTML" not in script and "eval(" not in script
