"""MkDocs hook: publish the studies in ``results/`` as pages of the site.

The studies live outside ``docs/`` (configs and docs cite them as ``results/...``), and the docs link to them the way
GitHub resolves a link from ``docs/``: ``../results/<study>.md``. Each study is registered under exactly that source
path, so those links and the studies' links to each other resolve in the site as on GitHub, and ``mkdocs build
--strict`` checks them. ``results/README.md`` is not published: ``docs/results.md`` is the site's index of studies.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

STUDIES_DIR = "results"  # beside docs/, at the repository root
SKIPPED = {"README.md"}


def on_files(files: Files, config) -> Files:
    """Add every study of ``results/`` as a page at ``results/<study>/``, linked from the pages, not in the nav."""
    docs_dir = Path(config["docs_dir"])
    for study in sorted((docs_dir.parent / STUDIES_DIR).glob("*.md")):
        if study.name in SKIPPED:
            continue
        page = File(
            f"../{STUDIES_DIR}/{study.name}",
            src_dir=str(docs_dir),
            dest_dir=config["site_dir"],
            use_directory_urls=config["use_directory_urls"],
            dest_uri=f"{STUDIES_DIR}/{study.stem}/index.html"
            if config["use_directory_urls"]
            else f"{STUDIES_DIR}/{study.stem}.html",
            inclusion=InclusionLevel.NOT_IN_NAV,
        )
        files.append(page)
    return files
