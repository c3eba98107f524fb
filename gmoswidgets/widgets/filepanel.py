"""FilePanel: list a directory's FITS files with tags and descriptors, select, preview, save."""
from __future__ import annotations

import datetime as _dt
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as W

from ..cli.common import FITS_NAME, check_list_target
from ..errors import ExpressionError, FileProblem, GmosError
from ..frame import read_headers
from ..gmos.descriptors import descriptor_names, descriptor_value
from ..gmos.tags import tags_of
from ..select import expr_parser, select_data
from .imageview import ImageView

__all__ = ["FilePanel", "FileRow", "DEFAULT_DESCRIPTORS", "list_file_target"]

#: Descriptors shown by default (those the tutorial's ``showd`` uses, and which
#: configuration a file is: detector, binning, readout region, read mode).
DEFAULT_DESCRIPTORS = ("object", "observation_type", "filter_name", "exposure_time", "ut_date",
                       "detector_name", "detector_x_bin", "detector_roi_setting", "read_mode")
_MAX_ROWS = 400
#: List-file names of the tutorial, suggested from the tags of the selection.
_LIST_NAMES = (({"BIAS"}, set(), "list_of_bias.txt"), ({"FLAT"}, set(), "list_of_flats.txt"),
               (set(), {"CAL"}, "list_of_science.txt"))


def _is_list_file(path: Path) -> bool:
    """True for a text file of FITS names, one a line (what ``dataselect -o`` writes)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(1 << 20)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return all(FITS_NAME.match(ln) for ln in lines)


def list_file_target(name: str, workdir, protect=()) -> Path:
    """Where a list file called ``name`` may be written, with the CLI's protections and more.

    Parameters
    ----------
    name : str
        A file name relative to ``workdir`` (sub-folders allowed).
    workdir : path-like
        The working directory; nothing is written outside it.
    protect : sequence of path-like
        Files never replaced (e.g. the files listed).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    GmosError
        For an empty or absolute name, a name leading outside ``workdir``, a
        FITS name or a protected file (as ``dataselect -o``), or an existing
        file that is not a list file.
    """
    name = str(name).strip()
    if not name:
        raise GmosError("give a list file name, e.g. list_of_bias.txt")
    if Path(name).is_absolute() or name.startswith("~"):
        raise GmosError(f"refusing to write the list to {name}: give a name inside the working "
                        "directory, not an absolute path")
    root = Path(workdir).resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root):
        raise GmosError(f"refusing to write the list to {name}: it is outside the working "
                        f"directory {root}")
    check_list_target(str(target), protect)
    if target.is_dir():
        raise GmosError(f"refusing to write the list to {name}: it is a directory")
    if target.exists() and not _is_list_file(target):
        raise GmosError(f"refusing to write the list to {name}: it exists and is not a list "
                        "of FITS files; choose another name")
    return target


@dataclass
class FileRow:
    """One file of the table: its tags, descriptor values, or why it cannot be read."""

    path: Path
    tags: frozenset = frozenset()
    values: dict = field(default_factory=dict)
    problem: str = ""


def _format(value) -> str:
    if isinstance(value, (list, tuple)):
        return _format(value[0]) + (" ..." if len(set(map(str, value))) > 1 else "") if value else ""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, numbers.Real):
        return f"{value:.6g}"
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    return str(value)


def _sort_key(value):
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None:
        return (2, "")
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, str(value))


class FilePanel(W.VBox):
    """Choose a directory, list its FITS files, filter them like ``dataselect``, preview, save.

    Filtering calls :func:`gmoswidgets.select.select_data` itself, so the
    selection and its error messages are exactly those of ``dataselect``.

    Parameters
    ----------
    directory : str or path-like, optional
        Directory to list at once.
    descriptors : sequence of str
        Descriptor columns.
    pattern : str
        Glob pattern of the files listed.
    preview : bool
        Include an :class:`ImageView` that shows a clicked file.
    workdir : path-like, optional
        Where list files are saved (default: the current directory); names
        leading outside it are refused.
    """

    def __init__(self, directory=None, *, descriptors=DEFAULT_DESCRIPTORS, pattern: str = "*.fits",
                 preview: bool = True, workdir=None):
        self.workdir = Path(workdir) if workdir is not None else Path.cwd()
        self.rows: list[FileRow] = []
        self.selected: list[Path] = []
        self.sort_column = "file"
        self.sort_ascending = True
        self._callbacks = []
        self._preview_callbacks = []
        self._checks: dict = {}

        self.directory = W.Text(value=str(directory or ""), description="Directory",
                                placeholder="../playdata", layout=W.Layout(width="420px"))
        self.directory.add_class("gmos-directory")
        self.pattern = W.Text(value=pattern, description="Files", layout=W.Layout(width="180px"))
        self.scan_button = W.Button(description="List files", icon="folder-open",
                                    button_style="primary")
        self.scan_button.add_class("gmos-scan")
        self.descriptors = W.TagsInput(value=list(descriptors), allowed_tags=descriptor_names(),
                                       allow_duplicates=False)
        self.descriptors.add_class("gmos-descriptors")
        self.tags = W.TagsInput(value=[], allow_duplicates=False)
        self.tags.add_class("gmos-tags")
        self.xtags = W.TagsInput(value=[], allow_duplicates=False)
        self.xtags.add_class("gmos-xtags")
        self.expression = W.Text(value="True", description="--expr",
                                 placeholder='filter_name=="i"', layout=W.Layout(width="420px"))
        self.expression.add_class("gmos-expr")
        self.apply_button = W.Button(description="Select", icon="filter")
        self.apply_button.add_class("gmos-apply-filter")
        self.message = W.HTML("")
        self.message.add_class("gmos-file-message")
        self.table = W.GridBox([], layout=W.Layout(grid_gap="1px 12px", overflow="auto",
                                                   max_height="320px"))
        self.table.add_class("gmos-file-table")
        self.list_name = W.Text(value="list_of_bias.txt", description="Save as",
                                layout=W.Layout(width="300px"))
        self.list_name.add_class("gmos-list-name")
        self.save_button = W.Button(description="Save list", icon="save")
        self.save_button.add_class("gmos-save-list")
        self.use_button = W.Button(description="Use for reduction", icon="play",
                                   button_style="success")
        self.use_button.add_class("gmos-use-selection")
        self.image_view = ImageView(title="Preview", height="300px") if preview else None

        children = [
            W.HBox([self.directory, self.pattern, self.scan_button]),
            W.HBox([W.Label("Columns"), self.descriptors]),
            W.HBox([W.Label("--tags"), self.tags, W.Label("--xtags"), self.xtags]),
            W.HBox([self.expression, self.apply_button]),
            self.message, self.table,
            W.HBox([self.list_name, self.save_button, self.use_button]),
        ]
        if self.image_view is not None:
            children.append(self.image_view)
        super().__init__(children)
        self.add_class("gmos-filepanel")

        self.scan_button.on_click(lambda _: self.scan())
        self.apply_button.on_click(lambda _: self.apply_filter())
        self.expression.on_submit(lambda _: self.apply_filter())
        self.save_button.on_click(lambda _: self._save_clicked())
        self.use_button.on_click(lambda _: self._hand_over())
        self.descriptors.observe(lambda _: self.scan(), names="value")
        if directory:
            self.scan()

    # -- public API --------------------------------------------------------------
    def scan(self, directory=None) -> list:
        """(Re)list the FITS files of the directory with their tags and descriptors.

        Returns
        -------
        list of FileRow
        """
        if directory is not None:
            self.directory.value = str(directory)
        folder = Path(self.directory.value).expanduser()
        if not folder.is_dir():
            self.rows, self.selected = [], []
            self._error(f"{folder}: no such directory")
            self._draw()
            return self.rows
        rows = []
        for path in sorted(folder.glob(self.pattern.value or "*.fits")):
            if path.is_file():
                rows.append(self._describe(path))
        self.rows = rows
        self.apply_filter()
        return self.rows

    def apply_filter(self) -> list:
        """Select the listed files with the tags, excluded tags and expression.

        Returns
        -------
        list of pathlib.Path
            The selected files (also in :attr:`selected`); empty, with the
            parser's message shown, if the expression is invalid.
        """
        readable = [row.path for row in self.rows if not row.problem]
        problems = []
        try:
            expr_parser(self.expression.value)
            self.selected = select_data(readable, self.tags.value, self.xtags.value,
                                        self.expression.value, problems=problems)
        except ExpressionError as exc:
            self.selected = []
            self._error(f"Invalid expression: {exc}")
            self._draw()
            return self.selected
        suggested = {name for _, _, name in _LIST_NAMES}
        if self.list_name.value in suggested:
            for tags, xtags, name in _LIST_NAMES:
                if tags <= {t.upper() for t in self.tags.value} and \
                        xtags <= {t.upper() for t in self.xtags.value}:
                    self.list_name.value = name
                    break
        skipped = [row for row in self.rows if row.problem]
        note = f"{len(self.selected)} of {len(self.rows)} file(s) selected"
        if skipped or problems:
            note += f"; {len(skipped) + len(problems)} skipped (unreadable or missing keywords)"
        self.message.value = note
        self._draw()
        return self.selected

    @property
    def checked(self) -> list:
        """The selected files whose row box is ticked (all of them unless unticked)."""
        return [p for p in self.selected if self._checks.get(p, True)]

    def sort_by(self, column: str, ascending: bool | None = None) -> None:
        """Sort the table by ``'file'``, ``'tags'`` or a descriptor column."""
        if ascending is None:
            ascending = not self.sort_ascending if column == self.sort_column else True
        self.sort_column, self.sort_ascending = column, ascending
        self._draw()

    def save(self, name: str | None = None) -> Path:
        """Write the ticked selection, one path per line, like ``dataselect -o``.

        Parameters
        ----------
        name : str, optional
            File name (default: the "Save as" box), inside :attr:`workdir`.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        GmosError
            If the name is refused (see :func:`list_file_target`) or the file
            cannot be written; the message is shown in the panel too.
        """
        if name is not None:
            self.list_name.value = name
        paths = self.checked
        try:
            target = list_file_target(self.list_name.value, self.workdir,
                                      [*paths, *(row.path for row in self.rows)])
        except GmosError as exc:
            self._error(str(exc))
            raise
        try:
            target.write_text("".join(f"{p}\n" for p in paths))
        except OSError as exc:
            self._error(f"Cannot write {target}: {exc.strerror}")
            raise GmosError(f"cannot write {target}: {exc.strerror}") from None
        self.message.value = f"Wrote {len(paths)} file name(s) to {target}"
        return target

    def on_selection(self, callback) -> None:
        """Call ``callback(list_of_paths, list_name)`` when "Use for reduction" is clicked."""
        self._callbacks.append(callback)

    def on_preview(self, callback) -> None:
        """Call ``callback(path)`` when a file name is clicked."""
        self._preview_callbacks.append(callback)

    def preview(self, path) -> None:
        """Show one file in the panel's ImageView."""
        for callback in self._preview_callbacks:
            callback(Path(path))
        if self.image_view is None:
            return
        try:
            self.image_view.show(Path(path), title=Path(path).name)
        except GmosError as exc:
            self.image_view.clear(f"<span style='color:red'>{exc}</span>")

    # -- internals -----------------------------------------------------------------
    def _describe(self, path: Path) -> FileRow:
        try:
            headers = read_headers(path)
            tags = tags_of(headers)
        except FileProblem as exc:
            return FileRow(path, problem=exc.problem)
        values = {}
        for name in self.descriptors.value:
            try:
                values[name] = descriptor_value(headers, name)
            except (FileProblem, KeyError, ValueError):
                values[name] = None
        return FileRow(path, tags, values)

    def _save_clicked(self) -> None:
        try:
            self.save()
        except GmosError:
            pass                         # the reason is shown in the panel

    def _error(self, text: str) -> None:
        self.message.value = f"<span style='color:#c00000'>{_escape(text)}</span>"

    def _hand_over(self) -> None:
        for callback in self._callbacks:
            callback(list(self.checked), self.list_name.value)

    def _sorted_rows(self) -> list:
        chosen = set(self.selected)
        rows = [row for row in self.rows if row.path in chosen]

        def key(row):
            if self.sort_column == "file":
                return (0, row.path.name)
            if self.sort_column == "tags":
                return (1, " ".join(sorted(row.tags)))
            return _sort_key(row.values.get(self.sort_column))
        return sorted(rows, key=key, reverse=not self.sort_ascending)

    def _draw(self) -> None:
        columns = ["file", *self.descriptors.value, "tags"]
        cells = [W.HTML("")]
        for name in columns:
            arrow = ("▲" if self.sort_ascending else "▼") if name == self.sort_column else ""
            head = W.Button(description=f"{name} {arrow}".strip(), tooltip=f"Sort by {name}",
                            layout=W.Layout(width="auto"))
            head.add_class("gmos-sort")
            head.on_click(lambda _, n=name: self.sort_by(n))
            cells.append(head)
        rows = self._sorted_rows()
        for row in rows[:_MAX_ROWS]:
            check = W.Checkbox(value=self._checks.get(row.path, True), indent=False,
                               layout=W.Layout(width="24px"))
            check.observe(lambda ch, p=row.path: self._checks.__setitem__(p, ch["new"]),
                          names="value")
            name = W.Button(description=row.path.name, tooltip=f"Preview {row.path}",
                            layout=W.Layout(width="auto"))
            name.add_class("gmos-file-row")
            name.on_click(lambda _, p=row.path: self.preview(p))
            cells += [check, name]
            cells += [W.Label(_format(row.values.get(d))) for d in self.descriptors.value]
            cells.append(W.Label(" ".join(sorted(row.tags)), layout=W.Layout(width="auto")))
        self.table.children = cells
        self.table.layout.grid_template_columns = "24px " + " ".join(["auto"] * len(columns))
        if len(rows) > _MAX_ROWS:
            self.message.value += f" (showing the first {_MAX_ROWS})"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
