"""addDQ's unilluminated flags (DQ 64) equal DRAGONS' illumination masks, pixel for pixel.

For every vendored mask a raw-like frame (headers and zero data, built here
from the mask's own placement headers listed in the reference JSON, with 32
overscan columns per amplifier and amplifiers in detector order, not the
mask's) goes through ``addDQ``; its DQ 64 must equal the mask file as read
from ``shared/reference/dragons-lookups/illum`` with astropy, placed by
DRAGONS' rule (README "How the mask is aligned"): match by DETSEC, offset
by the section start divided by the binning, data section only.  Full
frame at the mask's binning, and a Central Spectrum and a Central Stamp ROI.
"""
import bz2
import io
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from conftest import SHARED
from gmoswidgets import dq
from gmoswidgets.frame import Extension, Frame
from gmoswidgets.sections import Section
from helpers import run_steps

REFDIR = Path(SHARED) / "reference" / "dragons-lookups"
REF = json.loads((REFDIR / "gmos-lookups.json").read_text())
FILES = REF["illumination_masks"]["files"]
OVERSCAN = 32
#: The file DRAGONS uses for each vendored file's configuration (only the GMOS-S 4x4 v1 differs).
USED = {name: name.replace("HAM_44_12amp_v1", "HAM_44_12amp_v2") if name.startswith("gmos-s")
        else name for name in FILES}
#: Two ROIs per detector family, unbinned 0-based [x1, x2, y1, y2] (from the JSON's ROI table).
ROIS = {family: {name: next(r["section_0based_unbinned"] for r in REF["rois"]["by_name"][name]
                            if r["detector_family"] == family)
                 for name in ("Central Spectrum", "Central Stamp")}
        for family in ("Hamamatsu", "EEV/e2vDD")}
SLOW = [name for name in FILES if "_11_" in name]


def _section(text):
    return Section.from_string(text)


def mask_planes(name):
    """The mask file's extensions as (DETSEC, array), read with astropy from the reference copy."""
    with fits.open(io.BytesIO(bz2.decompress((REFDIR / "illum" / name).read_bytes()))) as hdus:
        return [(_section(h.header["DETSEC"]), np.array(h.data)) for h in hdus[1:]]


def raw_frame(name, window=None):
    """A raw-like frame in the configuration of mask ``name``; ``window`` cuts each amplifier."""
    info = FILES[name]
    phu = info["PHU"]
    xbin, ybin = info["binning_xy"]
    header = fits.Header({"INSTRUME": phu["INSTRUME"], "DETTYPE": phu["DETTYPE"],
                          "DETID": phu["DETID"], "DETECTOR": phu["DETECTOR"],
                          "NAMPS": phu["NAMPS"], "NCCDS": 3, "OBSTYPE": "OBJECT",
                          "OBJECT": "field", "OBSMODE": "IMAGE", "GRATING": "MIRROR",
                          "DATE-OBS": phu["DATE-OBS"][:10], "AMPINTEG": 1000})
    exts = []
    amps = sorted(info["extensions"], key=lambda e: _section(e["DETSEC"]).x1)
    for index, amp in enumerate(amps):
        detsec, ccdsec = _section(amp["DETSEC"]), _section(amp["CCDSEC"])
        if window is not None:
            x1, x2, y1, y2 = window
            cut = Section(max(detsec.x1, x1), min(detsec.x2, x2),
                          max(detsec.y1, y1), min(detsec.y2, y2))
            if cut.x1 >= cut.x2 or cut.y1 >= cut.y2:
                continue
            ccdsec = cut.shift(dx=ccdsec.x1 - detsec.x1, dy=ccdsec.y1 - detsec.y1)
            detsec = cut
        ny, nx = detsec.y2 // ybin - detsec.y1 // ybin, detsec.x2 // xbin - detsec.x1 // xbin
        if index % 2:            # overscan on the left of every other amplifier
            datasec, biassec = Section(OVERSCAN, OVERSCAN + nx, 0, ny), Section(0, OVERSCAN, 0, ny)
        else:
            datasec, biassec = Section(0, nx, 0, ny), Section(nx, nx + OVERSCAN, 0, ny)
        hdr = fits.Header({"AMPNAME": amp["AMPNAME"], "DETSEC": detsec.to_string(),
                           "CCDSEC": ccdsec.to_string(), "DATASEC": datasec.to_string(),
                           "BIASSEC": biassec.to_string(), "CCDSUM": f"{xbin} {ybin}",
                           "GAIN": 2.0, "RDNOISE": 3.5})
        exts.append(Extension(np.zeros((ny, nx + OVERSCAN), np.float32), hdr))
    frame = Frame(header, exts)
    frame.filename = f"raw_like_{name.split('.')[0]}.fits"
    return frame


def expected_dq64(frame, name):
    """DRAGONS' placement of mask ``name`` on every extension of ``frame`` (bool planes)."""
    xbin, ybin = FILES[name]["binning_xy"]
    planes = mask_planes(name)
    out = []
    for ext in frame.exts:
        detsec = _section(ext.header["DETSEC"])
        datasec = _section(ext.header["DATASEC"])
        mdet, mask = next((d, m) for d, m in planes if d.contains(detsec))
        dx, dy = (detsec.x1 - mdet.x1) // xbin, (detsec.y1 - mdet.y1) // ybin
        ny, nx = datasec.shape
        full = np.zeros(ext.data.shape, bool)
        full[datasec.slices] = mask[dy:dy + ny, dx:dx + nx] != 0
        out.append(full)
    return out


def dq64(frame):
    [out] = run_steps([frame], [("addDQ", {"static_bpm": None})])
    return [(ext.mask & dq.UNILLUMINATED) != 0 for ext in out]


def _check(frame, name):
    got, want = dq64(frame), expected_dq64(frame, name)
    assert len(got) == len(want) > 0
    for index, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape
        assert np.array_equal(g, w), (f"{name} extension {index + 1}: {np.count_nonzero(g != w)} "
                                      "pixels differ")
    return sum(int(w.sum()) for w in want)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in FILES])
def test_full_frame_dq64_equals_dragons_mask(name):
    flagged = _check(raw_frame(name), USED[name])
    # every flagged pixel of the file is there (the raw frame covers every amplifier)
    assert flagged == sum(e["n_flagged"] for e in FILES[USED[name]]["extensions"])


@pytest.mark.parametrize("roi", ["Central Spectrum", "Central Stamp"])
@pytest.mark.parametrize("name", [n for n in FILES if n not in SLOW])
def test_roi_dq64_equals_dragons_mask(name, roi):
    family = "Hamamatsu" if "_HAM_" in name else "EEV/e2vDD"
    frame = raw_frame(name, ROIS[family][roi])
    _check(frame, USED[name])


def test_gmos_s_4x4_uses_the_v2_mask_as_dragons():
    name = "gmos-s_illum_HAM_44_12amp_v1.fits.bz2"
    got = dq64(raw_frame(name))
    old = expected_dq64(raw_frame(name), name)
    assert sum(int(g.sum()) for g in got) - sum(int(o.sum()) for o in old) == 1975  # README


@pytest.mark.parametrize("binning, namps", [((1, 2), 4), ((2, 1), 4), ((4, 4), 2)])
def test_no_mask_for_configurations_dragons_has_none(binning, namps, caplog):
    """1x2 / 2x1 binnings and 4x4 e2vDD: DRAGONS logs it and flags nothing."""
    name = "gmos-n_illum_HAM_44_12amp_v1.fits.bz2" if namps == 4 else \
        "gmos-n_illum_e2v_22_6amp_v1.fits.bz2"
    frame = raw_frame(name)
    for ext in frame.exts:
        ext.header["CCDSUM"] = f"{binning[0]} {binning[1]}"
    assert not any(m.any() for m in dq64(frame))
    assert "no illumination mask" in caplog.text
