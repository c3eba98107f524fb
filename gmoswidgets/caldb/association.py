"""Association rules: which processed calibration goes with a frame.

The rules are those of the Gemini Observatory Archive for GMOS imaging
(FitsStorage ``cal/calibration/calibration_gmos.py``, which DRAGONS'
local calibration manager also uses):

* processed_bias: instrument, detector, x/y binning, read speed, gain
  setting and the amplifier read area (ROI) match; if the frame is
  prepared, its overscan state (subtracted, trimmed) matches too; within
  +-90 days.
* processed_flat: as the bias plus the filter, and the flat must be an
  imaging flat; within +-180 days.
* processed_fringe: instrument, detector, binning, filter and ROI; within
  +-365 days (the archive does not check read mode for fringes).
* processed_bpm: instrument and binning; the frame's amplifier names
  (AMPNAMEs joined by '+', in extension order) appear in the mask's, so a
  full-frame mask serves an ROI frame; the mask is valid from its date, so
  it must not be later than the frame.

ROI: for a Full Frame or Central Spectrum frame the read areas must be
equal; for any other ROI the frame's read area must be contained in the
calibration's.

Ordering among the calibrations that pass every rule: the smallest
``|Δt|`` between the UT start times wins; a tie (e.g. one calibration a
day before and one a day after) goes to the most recently added, then to
the first file name in alphabetical order.

Each :class:`Rule` states its test twice, side by side: as an SQL clause
(used by the fast database lookup) and as a Python check (used by
:func:`explain_candidates` and by user-calibration warnings).  The test
suite checks that both agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .properties import ObsProperties

__all__ = ["Rule", "RULES", "CalEntry", "CalMatch", "CandidateReport", "rank_key",
           "ORDER_SQL", "order_params", "run_checks", "explain_candidates", "shared_properties"]

_DAY = 86400.0
_EQUAL_ROI = ("Full Frame", "Central Spectrum")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


class Rule:
    """One association rule.

    Attributes
    ----------
    name : str
        Short name shown in explanations ('binning', 'ROI', 'time window' ...).
    temporal : bool
        True for rules about dates, which a user-supplied calibration is not
        held to.
    """

    name = ""
    temporal = False
    #: Properties a calibration and every frame it serves share exactly under
    #: this rule (what a batch groups raw files by); none for date rules.
    shared: tuple = ()

    def applies(self, sci: ObsProperties) -> bool:
        """Whether the rule is checked at all for this frame."""
        return True

    def sql(self, sci: ObsProperties) -> tuple[str, list]:
        """SQL condition on the calibrations table, and its parameters."""
        raise NotImplementedError

    def check(self, sci: ObsProperties, cal: ObsProperties) -> tuple[bool, str]:
        """Whether ``cal`` passes for ``sci``, and a one-line detail."""
        raise NotImplementedError


class Exact(Rule):
    """The calibration's values of ``attrs`` equal the frame's."""

    def __init__(self, name: str, attrs: tuple, show=None):
        self.name = name
        self.attrs = self.shared = attrs
        self._show = show or (lambda props: "/".join(str(getattr(props, a)) for a in attrs))

    def sql(self, sci):
        return (" AND ".join(f"{a} = ?" for a in self.attrs),
                [getattr(sci, a) for a in self.attrs])

    def check(self, sci, cal):
        ok = all(getattr(cal, a) == getattr(sci, a) for a in self.attrs)
        return ok, f"{self.name} {self._show(cal)} {'==' if ok else '!='} {self._show(sci)}"


class ImagingOnly(Rule):
    """The calibration is imaging data (not a spectroscopic or through-mask flat)."""

    name = "imaging"
    shared = ("imaging",)

    def sql(self, sci):
        return "imaging = ?", [True]

    def check(self, sci, cal):
        return cal.imaging, "imaging calibration" if cal.imaging else "not an imaging calibration"


class OverscanState(Rule):
    """A prepared frame needs a calibration with the same overscan state."""

    name = "overscan"
    _attrs = shared = ("overscan_subtracted", "overscan_trimmed")

    def applies(self, sci):
        return sci.prepared

    def sql(self, sci):
        return (" AND ".join(f"{a} = ?" for a in self._attrs),
                [getattr(sci, a) for a in self._attrs])

    def check(self, sci, cal):
        def show(p):
            return (f"subtracted {_yes_no(p.overscan_subtracted)}, "
                    f"trimmed {_yes_no(p.overscan_trimmed)}")
        ok = all(getattr(cal, a) == getattr(sci, a) for a in self._attrs)
        return ok, f"overscan {show(cal)} {'==' if ok else '!='} {show(sci)}"


class ReadArea(Rule):
    """Amplifier read area: equal for Full Frame / Central Spectrum, else contained."""

    name = "ROI"
    shared = ("amp_read_area",)  # frames grouped together read the same area

    def sql(self, sci):
        if sci.roi in _EQUAL_ROI:
            return "amp_read_area = ?", [sci.amp_read_area]
        return "instr(amp_read_area, ?) > 0", [sci.amp_read_area]

    def check(self, sci, cal):
        if sci.roi in _EQUAL_ROI:
            ok = cal.amp_read_area == sci.amp_read_area
            if ok:
                return True, f"ROI {cal.roi} == {sci.roi}"
            if cal.roi != sci.roi:
                return False, f"ROI {cal.roi} != {sci.roi}"
            return False, f"ROI {cal.roi}: amplifiers or read areas differ from the frame's"
        ok = sci.amp_read_area in cal.amp_read_area
        return ok, (f"ROI {cal.roi} {'contains' if ok else 'does not contain'} "
                    f"the frame's {sci.roi} read area")


def _delta_days(sci, cal) -> float:
    return (cal.epoch - sci.epoch) / _DAY


class TimeWindow(Rule):
    """The calibration was taken within ``days`` of the frame."""

    name = "time window"
    temporal = True

    def __init__(self, days: int):
        self.days = days

    def _limits(self, sci):
        return sci.epoch - self.days * _DAY, sci.epoch + self.days * _DAY

    def sql(self, sci):
        return "ut_epoch BETWEEN ? AND ?", list(self._limits(sci))

    def check(self, sci, cal):
        low, high = self._limits(sci)
        ok = low <= cal.epoch <= high
        return ok, (f"Δt {_delta_days(sci, cal):+.2f} d {'within' if ok else 'outside'} "
                    f"±{self.days} d")


class AmpNames(Rule):
    """The frame's amplifiers ('+'-joined AMPNAMEs) are a run of the calibration's."""

    name = "amplifiers"

    def sql(self, sci):
        return "instr(amp_names, ?) > 0", [sci.amp_names]

    def check(self, sci, cal):
        ok = sci.amp_names in cal.amp_names
        return ok, (f"amplifiers of the frame {'are' if ok else 'are not'} among the "
                    f"calibration's ({cal.amp_names.count('+') + 1 if cal.amp_names else 0} "
                    f"amplifiers)")


class ValidFrom(Rule):
    """The calibration (a bad-pixel mask) is valid from its date: not later than the frame."""

    name = "valid from"
    temporal = True

    def sql(self, sci):
        return "ut_epoch <= ?", [sci.epoch]

    def check(self, sci, cal):
        ok = cal.epoch <= sci.epoch
        return ok, (f"valid from {cal.ut_datetime:%Y-%m-%d %H:%M}, "
                    f"{'not after' if ok else 'after'} the frame "
                    f"({sci.ut_datetime:%Y-%m-%d %H:%M})")


_INSTRUMENT = Exact("instrument", ("instrument",))
_DETECTOR = Exact("detector", ("detector",))
_BINNING = Exact("binning", ("xbin", "ybin"), lambda p: p.binning)
_READ_SPEED = Exact("read speed", ("read_speed",))
_GAIN = Exact("gain setting", ("gain_setting",))
_FILTER = Exact("filter", ("filter_name",))

#: The rules of each calibration type, in the order explanations show them.
RULES: dict[str, tuple[Rule, ...]] = {
    "processed_bias": (_INSTRUMENT, _DETECTOR, _BINNING, _READ_SPEED, _GAIN, ReadArea(),
                       OverscanState(), TimeWindow(90)),
    "processed_flat": (_INSTRUMENT, _DETECTOR, _BINNING, _FILTER, _READ_SPEED, _GAIN,
                       ImagingOnly(), ReadArea(), TimeWindow(180)),
    "processed_fringe": (_INSTRUMENT, _DETECTOR, _BINNING, _FILTER, ReadArea(), TimeWindow(365)),
    "processed_bpm": (_INSTRUMENT, _BINNING, AmpNames(), ValidFrom()),
}

#: SQL ordering of the candidates; :func:`rank_key` is the same order in Python.
ORDER_SQL = "ORDER BY abs(ut_epoch - ?) ASC, ingest_time DESC, filename ASC"


def order_params(sci: ObsProperties) -> list:
    """Parameters of :data:`ORDER_SQL`."""
    return [sci.epoch]


@dataclass(frozen=True)
class CalEntry:
    """One calibration in the database.

    Attributes
    ----------
    filename : str
        Base name; the entry's identity (adding the same name again updates it).
    path : pathlib.Path
        Absolute path of the file.
    caltype : str
        One of :data:`~gmoswidgets.caldb.properties.CALTYPES`.
    props : ObsProperties
        The stored descriptor values.
    ingest_time : float
        When it was added (seconds since 1970).
    """

    filename: str
    path: Path
    caltype: str
    props: ObsProperties
    ingest_time: float

    @property
    def missing(self) -> bool:
        """True if the file is no longer on disk."""
        return not self.path.is_file()


def rank_key(sci: ObsProperties, entry: CalEntry) -> tuple:
    """Sort key of a passing candidate: nearest in time, newest ingest, then name."""
    return abs(entry.props.epoch - sci.epoch), -entry.ingest_time, entry.filename


@dataclass
class CalMatch:
    """The answer to "which calibration for this frame".

    Attributes
    ----------
    path : pathlib.Path or None
        The calibration file, or None if nothing matched.
    reason : str
        Why it was chosen, or why nothing matched.
    caltype : str
        The calibration type asked for.
    source : str
        'user' (``--user_cal``) or 'database'; '' if nothing matched.
    missing : bool
        True if the chosen calibration's file is no longer on disk.
    warnings : list of str
        Mismatches of a user calibration with the frame.
    """

    path: Path | None
    reason: str
    caltype: str = ""
    source: str = ""
    missing: bool = False
    warnings: list = field(default_factory=list)

    @property
    def found(self) -> bool:
        """True if a calibration file was chosen and is on disk."""
        return self.path is not None and not self.missing


@dataclass
class CandidateReport:
    """Why one stored calibration was or was not chosen for a frame.

    Attributes
    ----------
    path : pathlib.Path
        The calibration file.
    chosen : bool
        True for the calibration :func:`get_calibration` returns.
    reasons : list of str
        The failed checks, or why a matching calibration lost, or why it won.
    checks : list of (str, bool, str)
        Every rule applied: (rule name, passed, detail).
    missing : bool
        True if the file is no longer on disk.
    """

    path: Path
    chosen: bool
    reasons: list
    checks: list
    missing: bool = False

    @property
    def filename(self) -> str:
        """Base name of the calibration file."""
        return self.path.name

    @property
    def matches(self) -> bool:
        """True if the calibration passes every rule."""
        return all(ok for _, ok, _ in self.checks)


def shared_properties(*caltypes: str) -> tuple:
    """The properties that frames sharing calibrations of these types have in common.

    Parameters
    ----------
    *caltypes : str
        Keys of :data:`RULES`.

    Returns
    -------
    tuple of str
        :class:`~gmoswidgets.caldb.properties.ObsProperties` field names,
        in rule order, without repeats.
    """
    names = [name for caltype in caltypes for rule in RULES[caltype] for name in rule.shared]
    return tuple(dict.fromkeys(names))


def run_checks(caltype: str, sci: ObsProperties, cal: ObsProperties, temporal=True) -> list:
    """Apply the rules of ``caltype`` to one calibration.

    Parameters
    ----------
    caltype : str
        A key of :data:`RULES`.
    sci, cal : ObsProperties
        The frame and the calibration.
    temporal : bool, optional
        Include the date rules (False for user-supplied calibrations).

    Returns
    -------
    list of (str, bool, str)
        (rule name, passed, detail) for every rule that applies to the frame.
    """
    return [(rule.name, *rule.check(sci, cal)) for rule in RULES[caltype]
            if rule.applies(sci) and (temporal or not rule.temporal)]


def explain_candidates(sci: ObsProperties, caltype: str, entries) -> list:
    """Evaluate every rule of ``caltype`` on each stored calibration.

    Parameters
    ----------
    sci : ObsProperties
        The frame asking for a calibration.
    caltype : str
        A key of :data:`RULES`.
    entries : iterable of CalEntry
        The stored calibrations of that type.

    Returns
    -------
    list of CandidateReport
        The chosen one first, then the other matching ones from best to
        worst, then the rejected ones by file name.
    """
    checked = [(entry, run_checks(caltype, sci, entry.props)) for entry in entries]
    passing = sorted((e for e, checks in checked if all(ok for _, ok, _ in checks)),
                     key=lambda e: rank_key(sci, e))
    best = passing[0] if passing else None
    rank = {id(e): i for i, e in enumerate(passing)}
    ranked = []
    for entry, checks in checked:
        missing = entry.missing
        if entry is best:
            delta = _delta_days(sci, entry.props)
            reasons = [f"passes every rule; nearest in time (Δt {delta:+.2f} d)"]
        elif all(ok for _, ok, _ in checks):
            reasons = [_why_lost(sci, entry, best)]
        else:
            reasons = [detail for _, ok, detail in checks if not ok]
        if missing:
            reasons.append(f"file missing from disk: {entry.path}")
        report = CandidateReport(entry.path, entry is best, reasons, checks, missing)
        ranked.append((rank.get(id(entry), len(rank)), entry.filename, report))
    ranked.sort(key=lambda item: item[:2])
    return [report for _, _, report in ranked]


def _why_lost(sci, entry, best) -> str:
    mine, theirs = _delta_days(sci, entry.props), _delta_days(sci, best.props)
    if abs(mine) != abs(theirs):
        return (f"matches, but {best.filename} is nearer in time "
                f"(Δt {theirs:+.2f} d vs {mine:+.2f} d)")
    if entry.ingest_time != best.ingest_time:
        return f"matches, equally near in time as {best.filename}, which was added more recently"
    return f"matches, equally near in time and added together with {best.filename} (name order)"

