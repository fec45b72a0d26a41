"""SAS's flags as a user has them written down: its command line (``--image_size 64 --num_channels 128``, also inside
the README's ``MODEL_FLAGS="..."`` lines) or the ``Namespace(image_size=64, ...)`` that argparse prints.

:func:`read_sas_args` reads such a file (a ``log.txt``, a shell script, a note) into a flag dictionary for
``convert_sas --sas_args FILE``; :func:`parse_flag_value` reads one value as SAS's argparse would type it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from amodal_lightning.errors import ConfigError

# `--name value` or `--name=value`, the value bare or quoted.
FLAG = re.compile(r"--(\w+)(?:\s+|=)(\"[^\"]*\"|'[^']*'|[^\s\"'-][^\s\"']*|-\d[^\s\"']*)")
# argparse's printout of the parsed flags, and one `name=value` item of it.
NAMESPACE = re.compile(r"Namespace\((.*?)\)\s*$", re.MULTILINE)
NAMESPACE_ITEM = re.compile(r"(\w+)=('[^']*'|\"[^\"]*\"|[^,\s]+)")
QUOTES = "'\""


def parse_flag_value(text: str) -> Any:
    """A flag's text as a value: true/false, an integer, a number, else the text itself (unquoted)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in QUOTES:
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_sas_args(path: str | Path, known: set[str] | frozenset[str]) -> dict[str, Any]:
    """The SAS flags written in ``path`` (see the module docstring), keeping the names in ``known``.

    Raises :class:`ConfigError` naming the file when it cannot be read or holds no known flag.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(f"--sas_args {path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    flags: dict[str, Any] = {}
    for body in NAMESPACE.findall(text):
        flags.update((name, parse_flag_value(value)) for name, value in NAMESPACE_ITEM.findall(body))
    # Command-line flags come after: a file holding both is a command line and its printout, which agree.
    flags.update((name, parse_flag_value(value)) for name, value in FLAG.findall(text))
    flags = {name: value for name, value in flags.items() if name in known}
    if not flags:
        raise ConfigError(
            f"--sas_args {path}: no SAS flag in it (expected SAS's command line, e.g. --image_size 64 "
            "--num_channels 128, or the Namespace(...) argparse prints)"
        )
    return flags
