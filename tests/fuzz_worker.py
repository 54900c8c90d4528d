"""Run the `alls` command line on every input of a folder, in one limited process.

    python tests/fuzz_worker.py MEMORY_BYTES CPU_SECONDS FOLDER ARG... ("{}" in an ARG is the input)

The process limits itself (address space, CPU time) before it imports
anything, then, for each file of FOLDER in name order, prints a JSON line
``{"start": name}`` and, once the command returned, ``{"input": name,
"status": exit status or "traceback", "output": its stdout and stderr}``.
A hang or a crash leaves the last ``start`` line without its result, so the
test that reads the lines knows which input did it (`tests/test_fuzz.py`).
"""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import resource
import sys
import traceback


def main(argv: list[str]) -> int:
    memory, cpu, folder, *template = argv
    resource.setrlimit(resource.RLIMIT_AS, (int(memory), int(memory)))
    resource.setrlimit(resource.RLIMIT_CPU, (int(cpu), int(cpu)))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from alls.cli import main as alls_main

    for path in sorted(pathlib.Path(folder).iterdir()):
        print(json.dumps({"start": path.name}), flush=True)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                status = alls_main([arg.replace("{}", str(path)) for arg in template])
            except SystemExit as exc:  # argparse
                status = exc.code
            except BaseException:  # what the test is looking for
                status = "traceback"
                out.write(traceback.format_exc())
        print(json.dumps({"input": path.name, "status": status, "output": out.getvalue()[-3000:]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
