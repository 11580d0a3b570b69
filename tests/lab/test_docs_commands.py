"""The commands README.md and docs/*.md show are run as written, in the shared lab, and give what they show.

The convention (docs/README.md says the same to whoever writes a page):

* A block tagged ```` ```console ```` is run. Its commands are the lines starting with ``$ `` or, as
  root, ``# `` (a line ending in ``\\`` continues on the next); the other lines are the output the page shows. The block
  runs as one bash script in a fresh working folder kept for the whole page (a file one block writes,
  the next can read; shell variables last for the block; ``fixtures/`` is there, as in a clone), with the project's ``.venv/bin`` on PATH
  and ``MIDPROBE_LAB_PREFIX`` naming the shared lab, so ``midprobe lab exec -- ...`` enters it as
  it does for a user with one lab.
* Each command must exit 0, or the status its line ends with as a comment: ``$ cmd  # exit 2``.
* Every output line shown must appear in the command's output (stdout and stderr), in order, with
  runs of blanks counted as one; ``…`` (or ``...``) in a shown line stands for any text (times,
  sys_ids, secrets), and a line that is only ``…`` for lines left out.
* ``midprobe lab up`` and ``midprobe lab down`` stand for the shared lab: they are not run (the
  session's lab is up before the first page and down after the last), and their output is not checked.
* A block that must not run (installation, ``make demo``/``make test``/``make bench``, slow or
  destructive commands, an example with placeholders) is excused by the line just before its fence:
  ``<!-- not run: REASON -->``.
* A block tagged ``sh``, ``bash`` or ``shell``, or an untagged block with a line that starts with
  ``$ ``, ``midprobe `` or ``make ``, is a command block that is neither runnable nor excused: the
  check fails, naming the page and line. Other tags are never run: ``text`` for output, layouts and
  synopses (``midprobe scan TARGETS... [-p PORTS]``), ``toml``, ``xml``, ``json``, ``python``.

Keep runnable blocks quick: all pages together must stay within about a minute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from midprobe.runner.cli.lab import LAB_PREFIX_ENV
from midprobe.runner.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,})\s*([\w-]*)")
EXCUSE = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->$")
#: A command line's prompt: a user's or root's (the lab needs root).
PROMPTS = ("$ ", "# ")
SHELL_TAGS = frozenset({"sh", "bash", "shell", "shell-session", "zsh"})
COMMAND_START = re.compile(r"^([$#] midprobe |\$ |midprobe |make )")
EXIT_COMMENT = re.compile(r"#\s*exit\s+(\d+)\s*$")
SHARED_LAB = re.compile(r"^midprobe lab (up|down)\b")
#: Per command; the agreed budget for all pages is about a minute.
COMMAND_TIMEOUT = 60.0


@dataclass
class Command:
    line: int
    text: str
    status: int = 0
    shown: list[str] = field(default_factory=list)

    @property
    def stands_for_the_lab(self) -> bool:
        return SHARED_LAB.match(self.text) is not None


@dataclass
class Block:
    page: Path
    line: int
    tag: str
    lines: list[str]
    excuse: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[Command]:
        commands: list[Command] = []
        continued = False
        for offset, text in enumerate(self.lines, start=self.line + 1):
            if continued:
                commands[-1].text += "\n" + text
            elif text.startswith(PROMPTS):
                commands.append(Command(offset, text[2:]))
            elif commands:
                commands[-1].shown.append(text)
            continued = text.endswith("\\")
        for command in commands:
            found = EXIT_COMMENT.search(command.text)
            if found:
                command.status = int(found.group(1))
        return commands


def blocks(page: Path) -> Iterator[Block]:
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if not opened:
            index += 1
            continue
        fence, tag = opened.groups()
        before = next((text.strip() for text in reversed(lines[:index]) if text.strip()), "")
        excused = EXCUSE.match(before)
        end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith(fence)), len(lines))
        yield Block(
            page, index + 1, tag.lower(), lines[index + 1 : end], excused.group(1) if excused else None
        )
        index = end + 1


def problem(block: Block) -> str | None:
    """Why ``block`` breaks the convention, or None."""
    if block.excuse is not None:
        return None
    if block.tag in SHELL_TAGS:
        return f"{block.where}: a ```{block.tag} block: tag it ```console with `$ ` prompts, or excuse it"
    if block.tag == "console":
        if not block.commands():
            return f"{block.where}: a ```console block without a `$ ` (or `# `) command"
        return None
    if not block.tag and any(COMMAND_START.match(text.strip()) for text in block.lines):
        return (
            f"{block.where}: commands in an untagged block: tag it ```console with `$ ` prompts "
            "(it is then run), or put `<!-- not run: REASON -->` on the line before it"
        )
    return None


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_command_block_is_runnable_or_excused() -> None:
    problems = [found for page in PAGES for block in blocks(page) if (found := problem(block))]
    assert not problems, "\n".join(problems)


def test_the_convention_is_read_as_documented() -> None:
    page = ROOT / "docs" / "README.md"
    assert "not run:" in page.read_text(), "docs/README.md tells page writers how to mark their blocks"
    sample = Block(
        page,
        1,
        "console",
        ["$ midprobe sweep --lab \\", "    198.18.0.0/24", "up …", "# midprobe ecc show x  # exit 2"],
        None,
    )
    first, second = sample.commands()
    assert first.text == "midprobe sweep --lab \\\n    198.18.0.0/24"
    assert first.shown == ["up …"]
    assert (second.status, second.shown) == (2, [])
    assert problem(Block(page, 1, "", ["midprobe scan 198.18.0.1"], None)) is not None
    assert problem(Block(page, 1, "", ["midprobe scan 198.18.0.1"], "placeholders")) is None
    assert problem(Block(page, 1, "text", ["midprobe scan TARGETS... [-p PORTS]"], None)) is None
    output = "ADDRESS  HOSTNAME\n198.18.0.10   linux1\n6 host(s) up, 256 addresses scanned in 3.49 s\n"
    assert _missing(["198.18.0.10 linux1", "…", "6 host(s) up, … s"], output) == []
    assert _missing(["6 host(s) up, … s", "198.18.0.10 linux1"], output) == ["198.18.0.10 linux1"], "in order"
    assert _missing(["198.18.0.11 switch1"], output) == ["198.18.0.11 switch1"]
    assert _missing(["ADDRESS ...", "...", "6 host(s) up, ... scanned"], output) == []


#: What a shown line writes for text left out: ``…`` or ``...``.
ELISION = re.compile(r"…|\.\.\.")


def test_the_runner_reports_a_wrong_status_and_missing_output(tmp_path: Path) -> None:
    """Plain shell commands, no lab: what the page test says when a page is wrong."""
    page = ROOT / "docs" / "README.md"
    lines = [
        "$ X=1",
        "$ echo value $X",
        "value 1",
        "$ false",
        "$ echo shown",
        "not shown",
        "$ exit 3  # exit 3",
    ]
    failures = _run_block(
        Block(page, 1, "console", lines, None), tmp_path, cast(Lab, SimpleNamespace(prefix="mp000000"))
    )
    assert len(failures) == 3, failures
    assert "`false`: exit 1, the page says 0" in failures[0]
    assert "`echo shown`: shown lines not in the output: ['not shown']" in failures[1]
    assert "`exit 3  # exit 3`: the block's script stopped in it" in failures[2]


def _pattern(shown: str) -> re.Pattern[str]:
    parts = (re.escape(" ".join(part.split())) for part in ELISION.split(shown))
    return re.compile(".*".join(parts))


def _missing(shown: list[str], output: str) -> list[str]:
    """The shown lines not found in ``output`` in order (blank runs collapsed)."""
    actual = [" ".join(line.split()) for line in output.splitlines()]
    missing = []
    position = 0
    for text in shown:
        if not text.strip() or ELISION.fullmatch(text.strip()):
            continue
        pattern = _pattern(text.strip())
        found = next((i for i in range(position, len(actual)) if pattern.search(actual[i])), None)
        if found is None:
            missing.append(text)
        else:
            position = found + 1
    return missing


_MARK = "@@midprobe-docs"


def _script(commands: list[Command]) -> str:
    parts = []
    for index, command in enumerate(commands):
        body = ":" if command.stands_for_the_lab else command.text
        parts.append(f"echo {_MARK}-start-{index} >&2\n{body}\necho {_MARK}-end-{index}-$? >&2\n")
    return "".join(parts)


def _run_block(block: Block, workdir: Path, lab: Lab) -> list[str]:
    commands = block.commands()
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        LAB_PREFIX_ENV: lab.prefix,
        "COLUMNS": "200",
    }
    try:
        done = subprocess.run(
            ["bash", "-c", _script(commands)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT * len(commands),
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else error.stdout
        return [f"{block.where}: still running after {error.timeout:g} s\n{(output or '')[-2000:]}"]
    failures = []
    sections = re.split(rf"{_MARK}-start-\d+\n", done.stdout)[1:]
    for index, command in enumerate(commands):
        where = f"{block.page.relative_to(ROOT)}:{command.line} `{command.text}`"
        if index >= len(sections):
            failures.append(f"{where}: did not run (the block stopped before it)\n{done.stdout[-2000:]}")
            break
        output, ended, status = sections[index].rpartition(f"{_MARK}-end-{index}-")
        if not ended:
            failures.append(f"{where}: the block's script stopped in it\n{sections[index][-2000:]}")
            break
        if command.stands_for_the_lab:
            continue
        if int(status.split()[0]) != command.status:
            failures.append(
                f"{where}: exit {status.split()[0]}, the page says {command.status}\n{output[-2000:]}"
            )
            continue
        missing = _missing(command.shown, output)
        if missing:
            failures.append(f"{where}: shown lines not in the output: {missing}\n{output[-3000:]}")
    return failures


def _runnable(page: Path) -> list[Block]:
    """The page's blocks to run (a console block without commands is the convention test's to report)."""
    return [
        block
        for block in blocks(page)
        if block.tag == "console" and block.excuse is None and block.commands()
    ]


@pytest.mark.parametrize("page", [page for page in PAGES if _runnable(page)], ids=_page_id)
def test_the_pages_commands_run_as_written(page: Path, lab: Lab, tmp_path: Path) -> None:
    runnable = _runnable(page)
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")  # as in a clone: the pages name fixtures/...
    failures = [failure for block in runnable for failure in _run_block(block, tmp_path, lab)]
    assert not failures, "\n\n".join(failures)
