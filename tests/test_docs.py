"""Every command the docs show works: each ``python -m amodal_lightning.<entry> ...`` line of a ```bash block in
README.md and docs/*.md composes with Hydra (or, for convert_sas, parses), so no documented override is refused."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from amodal_lightning import convert_sas
from amodal_lightning.run.config import compose

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# Entry module -> its Hydra config.
ENTRY_CONFIGS = {"train": "train", "predict": "predict", "evaluate": "evaluate", "data.check": "check", "demo": "demo"}
NOT_HYDRA = {"convert_sas"}
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)
ENTRY = re.compile(r"(?:^|\s)-m\s+amodal_lightning\.([\w.]+)(?=\s|$)")
# Where a shell command ends on a joined line.
SHELL_OPERATORS = {"&", "&&", ";", "|", "||"}
# Hydra's own flags on a command line (not overrides).
HYDRA_FLAGS = {"-m", "--multirun", "--cfg", "--info", "--resolve"}
MULTIRUN_FLAGS = {"-m", "--multirun"}
# A shell variable ($gpu, ${SLURM_JOB_ID}): the shell expands it before Hydra sees it; a number stands in.
SHELL_VARIABLE = re.compile(r"\$(\{\w+\}|\w+)")
SHELL_VALUE = "0"


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(where, entry module, arguments) of every amodal_lightning command in the docs' bash blocks."""
    found = []
    for path in DOC_FILES:
        text = path.read_text()
        for block in BASH_BLOCK.finditer(text):
            first_line = text[: block.start()].count("\n") + 2
            for offset, line in _joined(block.group(1)):
                match = ENTRY.search(line)
                if not match:
                    continue
                # Whatever precedes the module (env assignments, torchrun ... -m, srun python -m) is dropped.
                args = []
                for token in shlex.split(line[match.end() :], comments=True):
                    if token in SHELL_OPERATORS:
                        break
                    args.append(SHELL_VARIABLE.sub(SHELL_VALUE, token))
                found.append((f"{path.relative_to(REPO_ROOT)}:{first_line + offset}", match.group(1), args))
    return found


def _joined(block: str) -> list[tuple[int, str]]:
    """(line offset, text) of the block's commands, backslash continuations joined onto their first line."""
    out, current, start = [], "", None
    for offset, line in enumerate(block.splitlines()):
        start = offset if start is None else start
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        out.append((start, current + line))
        current, start = "", None
    if current:
        out.append((start, current))
    return out


def first_of_sweep(override: str) -> str:
    """``key=a,b,c`` -> ``key=a`` (a multirun's first job); other overrides unchanged."""
    key, value = override.split("=", 1)
    if "," in value and not any(c in value for c in "[](){}"):
        return f"{key}={value.split(',')[0]}"
    return override


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_entry_point():
    shown = {entry for _, entry, _ in COMMANDS}
    assert set(ENTRY_CONFIGS) | NOT_HYDRA <= shown, f"no documented command for {set(ENTRY_CONFIGS) - shown}"


HYDRA_COMMANDS = [c for c in COMMANDS if c[1] in ENTRY_CONFIGS]
CONVERT_COMMANDS = [c for c in COMMANDS if c[1] in NOT_HYDRA]


@pytest.mark.parametrize("where,entry,args", HYDRA_COMMANDS, ids=[c[0] for c in HYDRA_COMMANDS])
def test_documented_command_composes(where, entry, args, tmp_path):
    overrides = [a for a in args if a not in HYDRA_FLAGS]
    if MULTIRUN_FLAGS & set(args):
        overrides = [first_of_sweep(o) for o in overrides]  # compose takes one job's values
    assert all("=" in o for o in overrides), f"{where}: not a key=value override in {overrides}"
    if entry == "train":
        overrides.append(f"paths.output_dir={tmp_path}")
    try:
        compose(ENTRY_CONFIGS[entry], overrides)
    except Exception as exc:  # noqa: BLE001 - the message names the refused override
        pytest.fail(f"{where}: python -m amodal_lightning.{entry} {' '.join(args)}\n  {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("where,entry,args", CONVERT_COMMANDS, ids=[c[0] for c in CONVERT_COMMANDS])
def test_documented_convert_sas_command_parses(where, entry, args, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(convert_sas, "convert", lambda src, out, flags: calls.append((src, out, flags)) or Path(out))
    convert_sas.main(args)
    assert len(calls) == 1, f"{where}: convert_sas did not get to convert"


def test_the_docs_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: every nav page exists and no link is broken (mkdocs comes with the test extra)."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "training" / "index.html").is_file()
