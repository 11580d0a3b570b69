"""The three ways ``midprobe scan`` writes its reports, all streaming: one host written as it finishes.

``table`` (readable columns, colour on a terminal), ``json`` (one JSON object per host per line) and
``ecc`` (an ECC input payload: the ``<results>`` opening is written once, then one Shazzam ``<host>``
per finished host, and the closing with the echoed parameters at the end). The live progress bar
lives here too; it goes to stderr, and only when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Protocol, TextIO

from midprobe.probes.neighbour_table import LIMIT_SYSCTL, OverflowCounts, overflowed_since
from midprobe.runner.scan.pipeline import ScanStats
from midprobe.runner.scan.report import HostReport

# rich (the table, the progress bar) and the ECC codec (--format ecc) are imported by the writers
# that use them: a scan writing JSON lines loads neither.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.text import Text

    from midprobe.runner.ecc.payload import Parameter

__all__ = [
    "FORMATS",
    "SORTED_TABLE_LIMIT",
    "EccWriter",
    "JsonLinesWriter",
    "ProgressDisplay",
    "ReportWriter",
    "ScanHeader",
    "TableWriter",
    "incomplete_text",
    "incomplete_warning",
    "interrupted_text",
    "make_writer",
    "summary_line",
]

Format = Literal["table", "json", "ecc"]
FORMATS: Final[tuple[Format, ...]] = ("table", "json", "ecc")

#: Room kept in the ``<results>`` opening tag for the real ``probe_time`` (patched in at the end).
_PROBE_TIME_ROOM: Final = 12
_SPLIT_MARK: Final = "midprobe-scan-hosts"


@dataclass(frozen=True)
class ScanHeader:
    """What is known before the first host: shown in the ECC ``<result>`` and echoed parameters."""

    targets: str
    ports: str
    engine: str
    addresses: int


class ReportWriter(Protocol):
    """Writes reports as they come: ``begin`` once, ``write`` per host, ``end`` once.

    ``end`` is called also when the scan stops early (Ctrl-C, an engine failure), with
    ``complete=False``: the output then says it is incomplete instead of claiming the whole range.
    """

    def begin(self, header: ScanHeader) -> None: ...

    def write(self, report: HostReport) -> None: ...

    def end(self, stats: ScanStats, *, complete: bool = True) -> None: ...


def interrupted_text(scanned: int, planned: int) -> str:
    """What an output says of a scan that stopped early."""
    return f"interrupted: {scanned:,} of {planned:,} addresses scanned"


def incomplete_text(hosts: int) -> str:
    """What an output says of a scan some of whose hosts are incomplete (``HostReport.incomplete``)."""
    return (
        f"incomplete: {hosts:,} host(s) not fully scanned, the kernel refused sends to them "
        "(ENOBUFS: neighbour table full or no buffer space)"
    )


def incomplete_warning(hosts: int, before: OverflowCounts, after: OverflowCounts) -> str:
    """The warning after a scan with incomplete hosts: how many, why, and what to do. The neighbour
    tables' overflow counters read ``before`` and ``after`` the scan tell which limit to raise."""
    text = f"{incomplete_text(hosts)}; they are not known to be down"
    sysctls = overflowed_since(before, after)
    if sysctls:
        return (
            f"{text}; the neighbour table overflowed during the scan: raise {' and '.join(sysctls)} "
            "(sysctl -w), or scan fewer addresses at once"
        )
    if not after.by_table:  # /proc/net/stat unreadable: either cause may be the one
        return f"{text}; raise {' and '.join(LIMIT_SYSCTL.values())} (sysctl -w), or scan slower (--rate)"
    return f"{text}; no neighbour table overflowed, so the send buffers were full: scan slower (--rate)"


class _Stream:
    """The output: a given stream, or whatever ``sys.stdout`` is when written to.

    Looked up at each write, so the progress display's stdout redirection (on a terminal) applies.
    What is written is flushed at the end of the event loop's turn (at once outside a loop): a
    reader of a pipe sees each host as it is reported, and the hosts reported in one turn (a page
    of a big scan) cost one write, not one each.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        #: The file written to since the last flush (a flush is scheduled for it).
        self._unflushed: TextIO | None = None

    @property
    def file(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stdout

    def write(self, text: str) -> None:
        file = self.file
        file.write(text)
        if self._unflushed is file:
            return
        self.flush()  # what went to another file before (the display's redirection ended)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            file.flush()
            return
        self._unflushed = file
        loop.call_soon(self.flush)

    def flush(self) -> None:
        file, self._unflushed = self._unflushed, None
        if file is not None and not file.closed:
            file.flush()


class JsonLinesWriter:
    """``--format json``: one JSON object per host per line, flushed as it is written."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = _Stream(stream)

    def begin(self, header: ScanHeader) -> None:
        pass

    def write(self, report: HostReport) -> None:
        self._out.write(report.to_json_line() + "\n")

    def end(self, stats: ScanStats, *, complete: bool = True) -> None:
        self._out.flush()  # one object per host and nothing else: an interrupted scan is told on stderr


@dataclass(frozen=True)
class _Column:
    """One table column: its width while rows stream, the narrowest it gets to fit a terminal, and
    what a cell too long for it does (``fold``: wraps onto more lines; ``ellipsis``: cut with ``…``)."""

    name: str
    width: int
    minimum: int
    overflow: Literal["fold", "ellipsis"]


#: Scans of at most this many addresses print their table at the end, sorted by address; larger
#: ones print each row as its host finishes (a /16 is never held in memory).
SORTED_TABLE_LIMIT: Final = 4096
#: The EVIDENCE column is left out of a terminal narrower than the other columns plus this.
_EVIDENCE_MINIMUM: Final = 20


class TableWriter:
    """``--format table``: a header, one aligned row per host (and its errors under it), then a summary.

    Up to :data:`SORTED_TABLE_LIMIT` planned addresses the rows are kept and printed at the end,
    sorted by address, each column as wide as its longest cell; beyond, each row prints as its host
    finishes, the columns at fixed widths. On a terminal the columns fit its width: the long ones
    (host name, services, class, evidence) are cut with ``…``, the ports wrap, and EVIDENCE is left
    out when there is no room for it. Elsewhere (a file, a pipe) nothing is cut.
    """

    COLUMNS: Final = (
        _Column("ADDRESS", 15, 15, "fold"),
        _Column("HOSTNAME", 34, 12, "ellipsis"),
        _Column("OPEN TCP PORTS", 16, 8, "fold"),
        _Column("SERVICES", 30, 12, "ellipsis"),
        # The verdict gives way last: ``cmdb_ci_linux_server (0.70)`` whole in 80 columns.
        _Column("CLASS", 30, 27, "ellipsis"),
        _Column("EVIDENCE", 60, _EVIDENCE_MINIMUM, "ellipsis"),
    )

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        color: bool | None = None,
        console: Console | None = None,
        summary: bool = True,
    ) -> None:
        self._out = _Stream(stream)
        self._color = color
        #: End with the summary line (``--quiet``: not; an interrupted scan still says so).
        self._summary = summary
        #: The live display's console (``ProgressDisplay.console``): rows print above its bar.
        self._live_console = console
        self._planned = 0
        #: The rows kept for the sorted table (``None``: rows stream).
        self._kept: list[HostReport] | None = []
        self._widths: tuple[int, ...] = ()
        self._own_console: Console | None = None

    def _console(self) -> Console:
        # Through the live display's console, rows are printed above the bar; a console of our own
        # would write past it (rich unwraps its stdout proxy), gluing rows to the bar's text.
        if self._live_console is not None:
            return self._live_console
        if self._own_console is None or self._own_console.file is not self._out.file:
            self._own_console = self._new_console()
        return self._own_console

    def _plain(self) -> TextIO | None:
        """The file to write rows to as plain text, when nothing is styled, cut or wrapped (not a
        terminal, no live display): the same lines rich would print, without its per-row cost."""
        if self._live_console is not None:
            return None
        file = self._out.file
        terminal = self._color if self._color is not None else file.isatty()
        return None if terminal else file

    def _new_console(self) -> Console:
        from rich.console import Console

        file = self._out.file
        terminal = self._color if self._color is not None else file.isatty()
        return Console(
            file=file,
            force_terminal=terminal,
            no_color=not terminal,
            highlight=False,
            soft_wrap=True,
            emoji=False,
            markup=False,
        )

    def begin(self, header: ScanHeader) -> None:
        self._planned = header.addresses
        if header.addresses > SORTED_TABLE_LIMIT:
            self._kept = None
            self._widths = tuple(column.width for column in self.COLUMNS)
            plain = self._plain()
            if plain is not None:
                plain.write(self._plain_header())
                return
            console = self._console()
            self._widths = self._fit(console, self._widths)
            self._print_header(console)

    def write(self, report: HostReport) -> None:
        if self._kept is not None:
            self._kept.append(report)
            return
        if self._plain() is not None:  # nothing is cut: a long cell pushes the rest of its row right
            widths = tuple(map(max, self._widths, _natural_widths([report])))
            self._out.write(self._plain_report(report, widths))
            return
        console = self._console()
        widths = self._widths
        if not console.is_terminal:  # nothing is cut: a long cell pushes the rest of its row right
            widths = tuple(map(max, widths, _natural_widths([report])))
        self._print_report(console, report, widths)
        console.file.flush()

    def end(self, stats: ScanStats, *, complete: bool = True) -> None:
        self._out.flush()
        plain = self._plain()
        if plain is not None:  # rich is not even imported
            if self._kept is not None:
                reports = sorted(self._kept, key=_address_order)
                self._widths = _natural_widths(reports)
                plain.write(self._plain_header())
                plain.writelines(self._plain_report(report, self._widths) for report in reports)
            plain.writelines(f"{line}\n" for line, _style in self._closing_lines(stats, complete))
            plain.flush()
            return
        from rich.text import Text

        console = self._console()
        if self._kept is not None:
            reports = sorted(self._kept, key=_address_order)
            self._widths = self._fit(console, _natural_widths(reports))
            self._print_header(console)
            for report in reports:
                self._print_report(console, report, self._widths)
        for line, style in self._closing_lines(stats, complete):
            console.print(Text(line, style=style))
        console.file.flush()

    def _closing_lines(self, stats: ScanStats, complete: bool) -> list[tuple[str, str]]:
        """The lines after the rows, each with its style: the summary, and what was not finished."""
        lines: list[tuple[str, str]] = []
        if self._summary:
            lines.append((summary_line(stats), "dim"))
        if not complete:
            lines.append((interrupted_text(stats.scanned, self._planned), "bold yellow"))
        if stats.incomplete:
            lines.append((incomplete_text(stats.incomplete), "bold yellow"))
        return lines

    @classmethod
    def _fit(cls, console: Console, widths: tuple[int, ...]) -> tuple[int, ...]:
        """``widths`` made to fit a terminal's width (unchanged elsewhere); 0 leaves a column out."""
        if not console.is_terminal:
            return widths
        total = console.width
        *firsts, evidence = widths
        minimums = [
            max(1, min(column.minimum, width)) for column, width in zip(cls.COLUMNS[:-1], firsts, strict=True)
        ]
        room = total - (len(firsts) - 1) - sum(minimums)
        slack = [width - minimum for width, minimum in zip(firsts, minimums, strict=True)]
        if sum(slack) > room:  # every column gives up the same share of what it has above its minimum
            share = max(room, 0) / sum(slack)
            firsts = [minimum + int(extra * share) for minimum, extra in zip(minimums, slack, strict=True)]
        left = total - sum(firsts) - len(firsts)
        evidence = min(evidence, left) if left >= _EVIDENCE_MINIMUM and evidence else 0
        return (*firsts, evidence)

    def _print_header(self, console: Console) -> None:
        from rich.text import Text

        names = [Text(column.name) for column in self.COLUMNS]
        for line in self._lines(console, [[name] for name in names], self._widths):
            line.stylize("bold")
            console.print(line, soft_wrap=True)

    def _print_report(self, console: Console, report: HostReport, widths: tuple[int, ...]) -> None:
        from rich.text import Text

        cells = [[Text(line) for line in cell.split("\n")] if cell else [] for cell in report.table_row()]
        if report.ci_class:
            for line in cells[4]:
                line.stylize("green", 0, len(report.ci_class))
        for line in self._lines(console, cells, widths):
            console.print(line, soft_wrap=True)
        if report.incomplete is not None:
            console.print(Text(f"    ! incomplete: {report.incomplete}", style="yellow"), soft_wrap=True)
        for problem in report.errors:
            console.print(Text(f"    ! {problem}", style="yellow"), soft_wrap=True)

    def _plain_report(self, report: HostReport, widths: tuple[int, ...]) -> str:
        """:meth:`_print_report`'s lines as plain text, for ``widths`` no cell exceeds."""
        cells = [cell.split("\n") if cell else [] for cell in report.table_row()]
        text = self._plain_lines(cells, widths)
        if report.incomplete is not None:
            text += f"    ! incomplete: {report.incomplete}\n"
        for problem in report.errors:
            text += f"    ! {problem}\n"
        return text

    def _plain_header(self) -> str:
        """:meth:`_print_header`'s line as plain text."""
        return self._plain_lines([[column.name] for column in self.COLUMNS], self._widths)

    @staticmethod
    def _plain_lines(cells: Sequence[list[str]], widths: tuple[int, ...]) -> str:
        """A row's lines, each cell padded to its column's width (0: the column is left out)."""
        from rich.cells import cell_len

        shown = [(width, lines) for width, lines in zip(widths, cells, strict=True) if width > 0]
        height = max((len(lines) for _, lines in shown), default=0) or 1
        text = ""
        for index in range(height):
            parts = (lines[index] if index < len(lines) else "" for _, lines in shown)
            line = "".join(
                part + " " * (width - cell_len(part)) + " "
                for (width, _), part in zip(shown, parts, strict=True)
            )
            text += line.rstrip() + "\n"
        return text

    def _lines(self, console: Console, cells: Sequence[list[Text]], widths: tuple[int, ...]) -> list[Text]:
        """A row's screen lines: each cell's lines wrapped or cut to its column, side by side."""
        from rich.text import Text

        shown = [
            (column, width, lines)
            for column, width, lines in zip(self.COLUMNS, widths, cells, strict=True)
            if width > 0
        ]
        columns: list[list[Text]] = []
        for column, width, lines in shown:
            fitted: list[Text] = []
            for line in lines:
                if column.overflow == "fold":
                    fitted.extend(line.wrap(console, width, overflow="fold"))
                else:
                    cut = line.copy()
                    cut.truncate(width, overflow="ellipsis")
                    fitted.append(cut)
            columns.append(fitted)
        height = max((len(lines) for lines in columns), default=0) or 1
        result = []
        for index in range(height):
            line = Text()
            for (_, width, _), lines in zip(shown, columns, strict=True):
                part = lines[index].copy() if index < len(lines) else Text()
                part.pad_right(width - part.cell_len)
                line.append_text(part)
                line.append(" ")
            line.rstrip()
            result.append(line)
        return result


def _may_be_terminal(stream: TextIO) -> bool:
    """Whether rich could take ``stream`` for a terminal: it is one, or the environment says to act
    as if (rich reads ``FORCE_COLOR``, ``TTY_COMPATIBLE`` and ``TTY_INTERACTIVE``)."""
    if any(os.environ.get(name) for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a file
        return False


def _natural_widths(reports: Sequence[HostReport]) -> tuple[int, ...]:
    """Each column as wide as its header and its longest cell line among ``reports``."""
    from rich.cells import cell_len

    widths = [len(column.name) for column in TableWriter.COLUMNS]
    for report in reports:
        for index, cell in enumerate(report.table_row()):
            widths[index] = max(widths[index], *(cell_len(line) for line in cell.split("\n")))
    return tuple(widths)


def _address_order(report: HostReport) -> tuple[int, int, str]:
    """IPv4 addresses first, each family in numeric order."""
    try:
        address = ip_address(report.address)
    except ValueError:
        return (9, 0, report.address)
    return (address.version, int(address), report.address)


def summary_line(stats: ScanStats) -> str:
    """``6 host(s) up, 256 addresses scanned in 3.24 s (connect scan)``; after host discovery
    ``(syn scan, arp,icmp ping)``."""
    plural = "" if stats.scanned == 1 else "es"
    discovery = f", {stats.discovery} ping" if stats.discovery else ""
    incomplete = f", {stats.incomplete} incomplete" if stats.incomplete else ""
    return (
        f"{stats.alive} host(s) up{incomplete}, {stats.scanned} address{plural} scanned "
        f"in {stats.elapsed:.2f} s ({stats.engine or '?'} scan{discovery})"
    )


class EccWriter:
    """``--format ecc``: an ECC input payload whose one ``<result>`` holds a Shazzam ``<host>`` per host.

    Streamed: the opening is written at ``begin``, each host at ``write``, the closing (with the
    echoed parameters) at ``end``. Every piece comes from ``encode_input_payload``, so escaping and
    sanitising are the codec's. ``probe_time`` is unknown when the opening is written: on a seekable
    output (a file) the opening is rewritten in place at the end with the real time (the root tag keeps
    some trailing blanks for it); on a pipe it stays ``0`` and the echoed ``scan_time_ms`` says it.

    A scan that stops early (``complete=False``) says so in the echoed ``complete`` (``false``) and
    ``hosts_scanned``; in a file the opening also gets ``result_code="1"``, an ``error`` naming how
    many addresses were scanned, and the real ``hosts_scanned`` on ``<result>`` (the root tag keeps
    room for that error too). A scan with incomplete hosts (each ``<host>`` with ``incomplete``)
    is marked the same way: ``complete`` ``false``, ``hosts_incomplete``, and in a file
    ``result_code="1"`` with an ``error`` saying how many hosts are incomplete.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = _Stream(stream)
        self._header: ScanHeader | None = None
        self._opening_at: int | None = None
        self._opening_length = 0
        self._result_tag_length = 0
        from midprobe.runner.ecc.payload import encode_input_payload

        empty = encode_input_payload([], probe_time_ms=0)
        split = empty.index("<parameters")
        self._host_prefix, self._host_suffix = empty[:split], empty[split:]

    def _parts(self, echoed: Sequence[Parameter], hosts_scanned: int | None = None) -> tuple[str, str]:
        """(opening up to and including ``<result ..>``, closing from ``</result>``)."""
        from midprobe.runner.ecc.payload import encode_input_payload

        assert self._header is not None
        result = ET.Element(
            "result",
            engine=self._header.engine,
            ports=self._header.ports,
            hosts_scanned=str(self._header.addresses if hosts_scanned is None else hosts_scanned),
        )
        ET.SubElement(result, _SPLIT_MARK)
        text = encode_input_payload([result], echoed=echoed, probe_time_ms=0)
        opening, closing = text.split(f"<{_SPLIT_MARK}/>")
        return opening, closing

    @staticmethod
    def _root_tag(probe_time_ms: int, error: str | None = None) -> str:
        from midprobe.runner.ecc.payload import encode_input_payload

        text = encode_input_payload([], probe_time_ms=probe_time_ms, error=error)
        return text[: text.index(">") + 1]

    def begin(self, header: ScanHeader) -> None:
        self._header = header
        opening, _ = self._parts(())
        root = self._root_tag(0)
        assert opening.startswith(root)
        file = self._out.file
        try:
            self._opening_at = file.tell() if file.seekable() else None
        except (OSError, ValueError):
            self._opening_at = None
        room = _PROBE_TIME_ROOM
        if self._opening_at is not None:  # room for the error of an interrupted or incomplete scan
            planned = header.addresses
            error = max(interrupted_text(planned, planned), incomplete_text(planned), key=len)
            room += len(self._root_tag(0, error)) - len(root)
        padded_root = root[:-1] + " " * room + ">"
        self._opening_length = len(padded_root)
        self._result_tag_length = len(opening) - len(root)
        self._out.write(padded_root + opening[len(root) :] + "\n")

    def write(self, report: HostReport) -> None:
        from midprobe.runner.ecc.payload import encode_input_payload

        text = encode_input_payload([report.to_shazzam_element()], probe_time_ms=0)
        assert text.startswith(self._host_prefix)
        assert text.endswith(self._host_suffix)
        self._out.write(text[len(self._host_prefix) : -len(self._host_suffix)] + "\n")

    def end(self, stats: ScanStats, *, complete: bool = True) -> None:
        if self._header is None:
            return
        from midprobe.runner.ecc.payload import Parameter

        elapsed_ms = round(stats.elapsed * 1000)
        echoed = [
            Parameter("topic", "Shazzam"),
            Parameter("agent", "midprobe scan"),
            Parameter("source", self._header.targets),
            Parameter("ports", self._header.ports),
            Parameter("engine", stats.engine or self._header.engine),
            Parameter("hosts_scanned", str(stats.scanned)),
            Parameter("hosts_alive", str(stats.alive)),
            Parameter("scan_time_ms", str(elapsed_ms)),
            Parameter("complete", "true" if complete and not stats.incomplete else "false"),
        ]
        if stats.incomplete:
            echoed.append(Parameter("hosts_incomplete", str(stats.incomplete)))
        _, closing = self._parts(echoed)
        self._out.write(closing + "\n")
        self._out.flush()
        if not complete:
            error: str | None = interrupted_text(stats.scanned, self._header.addresses)
        else:
            error = incomplete_text(stats.incomplete) if stats.incomplete else None
        self._patch_opening(elapsed_ms, None if complete else stats.scanned, error)

    def _patch_opening(self, elapsed_ms: int, scanned: int | None, error: str | None) -> None:
        """Rewrite the opening in place: the real ``probe_time``; with an ``error`` (an interrupted
        or incomplete scan) also ``result_code``; for an interrupted scan (``scanned`` given) the
        real ``hosts_scanned``. Each tag keeps its length."""
        if self._opening_at is None or self._header is None:
            return
        root = self._root_tag(elapsed_ms, error)
        opening, _ = self._parts((), hosts_scanned=scanned)
        result_tag = opening[len(self._root_tag(0)) :]
        if len(root) > self._opening_length or len(result_tag) > self._result_tag_length:
            return
        file = self._out.file
        try:
            end = file.tell()
            file.seek(self._opening_at)
            file.write(_padded(root, self._opening_length) + _padded(result_tag, self._result_tag_length))
            file.seek(end)
            file.flush()
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # the stream cannot go back after all: probe_time stays 0, scan_time_ms has it


def _padded(tag: str, length: int) -> str:
    """``tag`` (ending in ``>``) widened to ``length`` with blanks before its ``>``."""
    return tag[:-1] + " " * (length - len(tag)) + ">"


def make_writer(
    kind: Format, stream: TextIO | None = None, *, console: Console | None = None, summary: bool = True
) -> ReportWriter:
    """The writer of ``kind``; ``console`` (the live display's, for a table on its terminal) prints the
    rows; ``summary=False`` (``--quiet``) leaves the table's summary line out."""
    if kind == "json":
        return JsonLinesWriter(stream)
    if kind == "ecc":
        return EccWriter(stream)
    return TableWriter(stream, console=console, summary=summary)


class ProgressDisplay:
    """A live progress bar on stderr while the scan runs; does nothing unless stderr is a terminal.

    When the reports go to the same terminal (stdout), they are printed above the bar: the table
    through :attr:`console`, anything else written to stdout through rich's stdout proxy.
    """

    def __init__(self, total: int, *, enabled: bool | None = None, stdout_is_output: bool = True) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        #: The console to print reports with so they appear above the bar (``None``: no bar there).
        self.console: Console | None = None
        self.enabled = False
        if enabled is False or (enabled is None and not _may_be_terminal(sys.stderr)):
            return  # -q, or stderr a file or a pipe: rich is not even imported
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.enabled = console.is_terminal if enabled is None else enabled
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]scanning[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[alive]} up"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                redirect_stdout=stdout_is_output and sys.stdout.isatty(),
                redirect_stderr=False,
            )
            self._task = self._progress.add_task("scan", total=total, alive=0)
            if stdout_is_output and sys.stdout.isatty():
                self.console = console

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, stats: ScanStats) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=stats.scanned, alive=stats.alive)

    def refresh(self) -> None:
        """Draw the bar now (it also redraws itself ten times a second)."""
        if self._progress is not None:
            self._progress.refresh()
