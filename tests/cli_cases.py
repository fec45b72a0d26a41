"""Runs several command lines of the entry points in one process, as the shell would run each: for the bad-input tests.

    python tests/cli_cases.py CASES.json RESULTS.json

CASES.json is a list of ``{"module": "amodal_lightning.predict", "args": [...]}``; RESULTS.json gets, for each, the
exit status, stdout and stderr. An exception that escapes ``main`` is printed with its traceback to the case's
stderr and gives status 1, as Python itself would. One process for many cases pays for importing torch once.
"""

import contextlib
import importlib
import io
import json
import sys
import traceback

from hydra.core.global_hydra import GlobalHydra

# What `python -m` reports for an exception nobody caught.
UNCAUGHT_EXIT_CODE = 1


def exit_status(exc: SystemExit) -> int:
    """The status a process ending in ``exc`` reports, as Python computes it."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else UNCAUGHT_EXIT_CODE


def run_case(module_name: str, args: list[str]) -> dict:
    """Run ``python -m module_name *args`` in this process; its status, stdout and stderr."""
    module = importlib.import_module(module_name)
    sys.argv = [module_name, *args]
    stdout, stderr = io.StringIO(), io.StringIO()
    status = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            module.main()
        except SystemExit as exc:
            status = exit_status(exc)
        except BaseException:  # noqa: BLE001 - reported as the interpreter would
            traceback.print_exc()
            status = UNCAUGHT_EXIT_CODE
    GlobalHydra.instance().clear()
    return {"status": status, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def main() -> None:
    cases_path, results_path = sys.argv[1:3]
    with open(cases_path) as file:
        cases = json.load(file)
    results = [run_case(case["module"], case["args"]) for case in cases]
    with open(results_path, "w") as file:
        json.dump(results, file)


if __name__ == "__main__":
    main()
