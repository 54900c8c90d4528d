"""The README and docs/: every example runs and prints what the page shows; every link leads somewhere.

A ```text block whose lines start with `$ ` is a session: each command runs (from a scratch copy of
the files the examples read) and its output must be the lines shown under it, where a line `...`
stands for any lines. A ```sh block is a list of commands that must succeed. A block marked
```sh illustration shows the form of a command and is not run; the README's first ```sh block (the
two set-up commands) is run by CI, whose .ci/run reads it. `pytest --update-golden` rewrites the
shown outputs from a fresh run.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# Progress goes to standard error and carries times; a session shows the rest of standard error.
PROGRESS = re.compile(r"^(compiling the kernels .*|tune: step \d+/\d+: .*|[\w ,()+-]+: \d+/\d+( [\w]+)*"
                      r"( \([\d.]+ s\)| done in [\d.]+ s)?)$")
SETUP_PREFIX = "pip install . && "


def _blocks(page: pathlib.Path):
    yield from _blocks_of(page.read_text(encoding="utf-8"))


def _blocks_of(text: str):
    """(language, info, body, line) of each fenced block of ``text``."""
    for match in FENCE.finditer(text):
        yield match.group(1), match.group(2).strip(), match.group(3), text.count("\n", 0, match.start()) + 1


def _sessions(page: pathlib.Path):
    """(line, command, shown output lines) for each `$ ` command of the page's text blocks, in order."""
    for lang, _info, body, line in _blocks(page):
        if lang != "text" or not body.startswith("$ "):
            continue
        command, shown = None, []
        for row in body.rstrip("\n").split("\n"):
            if row.startswith("$ "):
                if command is not None:
                    yield line, command, shown
                command, shown = row[2:], []
            else:
                shown.append(row)
        yield line, command, shown


def _scripts(page: pathlib.Path):
    first = page.name == "README.md"
    for lang, info, body, line in _blocks(page):
        if lang not in ("sh", "bash"):
            continue
        if first:  # the set-up commands: CI runs them (.ci/run)
            first = False
            continue
        if "illustration" in info:
            continue
        for row in body.split("\n"):
            if row.strip() and not row.lstrip().startswith("#"):
                yield line, row


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> pathlib.Path:
    """A folder with the files the examples read, where they may write."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "samples", root / "samples")
    shutil.copytree(ROOT / "tests" / "golden" / "plans", root / "tests" / "golden" / "plans")
    return root


def _run(command: str, cwd: pathlib.Path) -> tuple[int, str]:
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               COLUMNS="100")
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    errors = [row for row in done.stderr.splitlines() if not PROGRESS.match(row)]
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, "\n".join(errors + done.stdout.splitlines())


def _matches(shown: list[str], got: list[str], numbers_vary: bool = False) -> bool:
    """``got`` is ``shown``, where `...` stands for any lines (and, where ``numbers_vary``, any number
    for a number: a command that prints times says so with a trailing `# times vary`)."""
    number = re.compile(r"\d+(\.\d+)?")
    vary = (lambda row: number.sub("0", row)) if numbers_vary else (lambda row: row)
    pattern = "\n".join(".*?" if row == "..." else re.escape(vary(row.rstrip())) for row in shown)
    return re.fullmatch(pattern, "\n".join(vary(row.rstrip()) for row in got), re.S) is not None


def test_the_readme_shows_its_first_command():
    setup = next(body for lang, _, body, _ in _blocks(ROOT / "README.md") if lang == "sh").split("\n")
    assert setup[0].startswith(SETUP_PREFIX) and setup[1].startswith("pip install -e '.[dev]' && python -m pytest")
    commands = [command for _, command, _ in _sessions(ROOT / "README.md")]
    assert commands[0] == setup[0][len(SETUP_PREFIX):]  # the session under it is that command's output


@pytest.mark.parametrize("page", [p for p in PAGES if any(_sessions(p)) or any(_scripts(p))], ids=lambda p: p.name)
def test_the_examples_print_what_the_page_shows(page, scratch, update_golden):
    sessions = list(_sessions(page))
    scripts = list(_scripts(page))
    for line, command in scripts:
        status, out = _run(command, scratch)
        assert status == 0, f"{page.name}:{line}: `{command}` failed:\n{out}"
    replaced = {}
    for line, command, shown in sessions:
        _, out = _run(command, scratch)
        got = out.split("\n") if out else []
        if update_golden:
            replaced[(command, "\n".join(shown))] = got if "..." not in shown else shown
            continue
        assert _matches(shown, got, command.rstrip().endswith("# times vary")), \
            f"{page.name}:{line}: `{command}` printed\n" + "\n".join(got)
    if update_golden:
        _rewrite(page, replaced)


def test_the_help_examples_run(scratch):
    from alls.cli import EXAMPLES

    for name, text in EXAMPLES.items():  # in order: quantize writes the model eval and analyze read
        for command in text.split("\n"):
            status, out = _run(command.strip(), scratch)
            assert status in (0, 1), f"`alls {name} --help` example `{command.strip()}` failed:\n{out}"


def _rewrite(page: pathlib.Path, replaced: dict) -> None:
    text = page.read_text(encoding="utf-8")
    for (command, shown), got in replaced.items():
        old = f"$ {command}\n{shown}\n" if shown else f"$ {command}\n"
        new = f"$ {command}\n" + "".join(row + "\n" for row in got)
        text = text.replace(old, new, 1)
    page.write_text(text, encoding="utf-8")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    heading = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading))


def _anchors(page: pathlib.Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_to_a_file_and_every_anchor_to_a_heading(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_every_docs_page_is_in_the_table_of_contents():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    listed = {target.partition("#")[0] for target in LINK.findall(index)}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert pages <= listed, f"not in docs/index.md: {sorted(pages - listed)}"


def _section(page: pathlib.Path, heading: str) -> str:
    """The text of the ``## heading`` section of ``page``, up to the next ``## `` heading."""
    text = page.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def test_the_ops_page_lists_the_importers_handlers_by_module():
    from alls.importer import HANDLERS

    section = _section(ROOT / "docs" / "ops.md", "Adding an ONNX op")
    claimed = {module: set(ops.replace(" ", "").split(","))
               for module, ops in re.findall(r"^\| `(\w+)` \| ([\w, ]+) \|$", section, re.M)}
    registered: dict[str, set] = {}
    for op, handler in HANDLERS.items():
        registered.setdefault(handler.__module__.rsplit(".", 1)[-1], set()).add(op)
    assert claimed == registered


def test_the_ops_page_example_is_the_handler_it_names():
    from alls.importer import HANDLERS

    section = _section(ROOT / "docs" / "ops.md", "Adding an ONNX op")
    (example,) = [body for lang, _, body, _ in _blocks_of(section) if lang == "python"]
    op = re.search(r'@handles\("(\w+)"\)', example).group(1)
    handler = HANDLERS[op]
    module = ROOT / "alls" / "importer" / "ops" / (handler.__module__.rsplit(".", 1)[-1] + ".py")
    assert f"`{module.relative_to(ROOT).as_posix()}`" in section  # the page names the file it quotes
    assert example in module.read_text(encoding="utf-8")  # the code shown is the code that runs
    assert f"def {handler.__name__}(" in example
