"""The documentation site builds with `mkdocs build --strict`: no broken links or anchors, no
missing pages, every `::: autovmap.<name>` reference resolves; and it reads the same offline."""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
# What a browser loads by itself (scripts, stylesheets, fonts, figures) from another host.
EXTERNAL_LOAD = re.compile(
    r"<(?:script|img|link)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//[^\"']+", re.IGNORECASE
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def test_mkdocs_build_strict(tmp_path):
    missing = [name for name in NEEDED if not _installed(name)]
    assert not missing, (
        f"cannot build the docs: {', '.join(missing)} not installed. Install the docs extra: "
        "pip install -e '.[docs]'"
    )
    site = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    for page in ("ranks", "annotations", "errors", "migration", "api"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "api" / "index.html").read_text()
    assert "auto_vmap" in api and "BroadcastError" in api
    pages = sorted(site.glob("**/*.html"))
    for page in pages:
        html = page.read_text()
        assert not EXTERNAL_LOAD.findall(html), (page, EXTERNAL_LOAD.findall(html))
        # Material renders Mermaid with a script from a CDN: offline, readers got raw text.
        assert 'class="mermaid"' not in html, page
        assert "stylesheets/extra.css" in html, page  # wide code blocks, wrapped messages
    ranks = (site / "ranks" / "index.html").read_text()
    assert 'src="../assets/vmap-levels.svg"' in ranks
    assert (site / "assets" / "vmap-levels.svg").is_file()
