"""GMOS detector geometry: amplifiers -> CCDs -> mosaic.

Coordinates
-----------
*CCD coordinates* are 0-based binned pixel coordinates on the full CCD
(pixel centres on integers): a binned pixel ``i`` of an amplifier whose
``CCDSEC`` starts at unbinned column ``x1`` has CCD coordinate
``x1 / xbin + i``.

*Mosaic coordinates* are the CCD coordinates of the central CCD (CCD2,
DRAGONS' reference).  CCD1 and CCD3 are placed as DRAGONS' ``geometry_conf``
does: rotated about the CCD centre (with square pixels when the binning is
unequal), then shifted by the centre-to-centre offset divided by the
binning.  The numbers come from :data:`gmoswidgets.gmos.lookups.MOSAIC_GEOMETRY`.

Which CCD an extension belongs to is read from its ``DETSEC`` and
``CCDSEC`` (their difference is the CCD's origin on the detector), as on
real archive files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FileProblem
from ..sections import Section
from . import lookups
from .descriptors import ccdsum_binning

if TYPE_CHECKING:  # numerics.interpolate imports scipy.ndimage: only where a map is made
    from ..numerics.interpolate import AffineMap

__all__ = ["CCDGroup", "detector_of", "mosaic_geometry", "binning_of", "ccd_groups",
           "amp_offset", "tile_shape", "tile_origin", "ccd_to_mosaic", "reference_extension",
           "tile_parts", "parts_cover", "tile_planes"]


@dataclass(frozen=True)
class CCDGroup:
    """The extensions of a frame that lie on one CCD.

    Attributes
    ----------
    ccd : int
        0, 1 or 2 for CCD1, CCD2, CCD3 (from the detector origin of the CCD).
    ext_indices : tuple of int
        Indices of the frame's extensions on this CCD, left to right.
    section : Section
        Unbinned CCD section covered by these extensions (union of CCDSECs).
    """

    ccd: int
    ext_indices: tuple
    section: Section


def _where(frame) -> str:
    return str(getattr(frame, "path", None) or getattr(frame, "filename", "?"))


def detector_of(frame) -> lookups.DetectorType:
    """The :class:`~gmoswidgets.gmos.lookups.DetectorType` of a frame.

    Raises
    ------
    FileProblem
        If INSTRUME/DETTYPE name no known GMOS detector array.
    """
    det = lookups.detector_type(str(frame.phu.get("INSTRUME", "")).strip(),
                                str(frame.phu.get("DETTYPE", "")).strip())
    if det is None:
        raise FileProblem(_where(frame), "unknown GMOS detector (INSTRUME = "
                          f"{frame.phu.get('INSTRUME')!r}, DETTYPE = {frame.phu.get('DETTYPE')!r})")
    return det


def mosaic_geometry(frame) -> lookups.MosaicGeometry:
    """The mosaic geometry of a frame's detector set (PHU ``DETID``).

    Raises
    ------
    FileProblem
        If DETID is missing or not in the geometry table.
    """
    detid = str(frame.phu.get("DETID", "")).strip()
    try:
        return lookups.MOSAIC_GEOMETRY[detid]
    except KeyError:
        raise FileProblem(_where(frame), f"no mosaic geometry for DETID = {detid!r}; known: "
                          + "; ".join(lookups.MOSAIC_GEOMETRY)) from None


def binning_of(frame) -> tuple[int, int]:
    """``(xbin, ybin)`` from the ``CCDSUM`` of the first extension."""
    return ccdsum_binning(frame.exts[0].header, _where(frame))


def _section(frame, header, key) -> Section:
    if key not in header:
        raise FileProblem(_where(frame), f"missing keyword {key} in an extension header")
    try:
        return Section.from_string(header[key])
    except ValueError as exc:
        raise FileProblem(_where(frame), f"{key}: {exc}") from None


def ccd_groups(frame) -> list[CCDGroup]:
    """Group a frame's extensions by CCD, CCDs and amplifiers left to right.

    Raises
    ------
    FileProblem
        If DETSEC / CCDSEC are missing or inconsistent with the detector.
    """
    det = detector_of(frame)
    members: dict[int, list] = {}
    for index, ext in enumerate(frame.exts):
        detsec = _section(frame, ext.header, "DETSEC")
        ccdsec = _section(frame, ext.header, "CCDSEC")
        origin = detsec.x1 - ccdsec.x1
        if origin % det.ccd_width or not 0 <= origin // det.ccd_width < det.nccds:
            raise FileProblem(_where(frame), f"extension {index + 1}: DETSEC {detsec} and CCDSEC "
                              f"{ccdsec} do not place it on one of the {det.nccds} CCDs")
        members.setdefault(origin // det.ccd_width, []).append((ccdsec.x1, index, ccdsec))
    groups = []
    for ccd in sorted(members):
        parts = sorted(members[ccd])
        secs = [sec for _, _, sec in parts]
        union = Section(min(s.x1 for s in secs), max(s.x2 for s in secs),
                        min(s.y1 for s in secs), max(s.y2 for s in secs))
        groups.append(CCDGroup(ccd, tuple(i for _, i, _ in parts), union))
    return groups


def amp_offset(header, group: CCDGroup, xbin: int, ybin: int) -> tuple[int, int]:
    """Binned (x, y) position of an extension's data inside its CCD tile."""
    ccdsec = Section.from_string(header["CCDSEC"])
    return (ccdsec.x1 - group.section.x1) // xbin, (ccdsec.y1 - group.section.y1) // ybin


def tile_shape(group: CCDGroup, xbin: int, ybin: int) -> tuple[int, int]:
    """Numpy shape of the binned tile holding a CCD group."""
    ny, nx = group.section.shape
    return ny // ybin, nx // xbin


def tile_origin(group: CCDGroup, xbin: int, ybin: int) -> tuple[float, float]:
    """CCD coordinates (x, y) of the tile's first pixel."""
    return group.section.x1 / xbin, group.section.y1 / ybin


def ccd_to_mosaic(frame, ccd: int) -> AffineMap:
    """Map from CCD coordinates of CCD ``ccd`` (0, 1, 2) to mosaic coordinates.

    Parameters
    ----------
    frame : Frame or HeaderSet
        Supplies the detector (INSTRUME, DETTYPE), DETID and the binning.
    ccd : int
        0-based CCD index.

    Returns
    -------
    AffineMap
        Identity for the central (reference) CCD.
    """
    from ..numerics.interpolate import AffineMap
    det = detector_of(frame)
    xbin, ybin = binning_of(frame)
    if ccd == det.nccds // 2:
        return AffineMap.identity()
    geometry = mosaic_geometry(frame)
    placement = geometry.ccd1 if ccd < det.nccds // 2 else geometry.ccd3
    theta = np.deg2rad(placement.rotation)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    square = np.diag([1.0, ybin / xbin])  # binned -> square pixels, x units
    linear = np.linalg.inv(square) @ rotation @ square
    centre = np.array([(det.ccd_width / xbin - 1) / 2.0, (det.ccd_height / ybin - 1) / 2.0])
    shift = np.array([placement.shift[0] / xbin, placement.shift[1] / ybin])
    return AffineMap(linear, centre - linear @ centre + shift)


def reference_extension(frame, groups: list[CCDGroup]) -> int:
    """Index of the extension whose WCS defines the mosaic WCS.

    DRAGONS' reference is the amplifier of the central CCD that reads the
    detector's central column; if the frame does not include it, the first
    extension of the central CCD (or of the first CCD present) is used.
    """
    det = detector_of(frame)
    centre_col = det.ccd_width * det.nccds // 2
    central = [g for g in groups if g.ccd == det.nccds // 2] or groups[:1]
    for index in central[0].ext_indices:
        detsec = Section.from_string(frame.exts[index].header["DETSEC"])
        if detsec.x1 <= centre_col < detsec.x2:
            return index
    return central[0].ext_indices[0]


def tile_parts(frame, group: CCDGroup, plane: str) -> list | None:
    """The pieces of a CCD's tile for one plane: each extension's data section and its place.

    Parameters
    ----------
    frame : Frame
    group : CCDGroup
    plane : str
        Extension attribute (``data``, ``variance``, ``mask``).

    Returns
    -------
    list of ((int, int), numpy.ndarray) or None
        ``((x0, y0), part)`` per extension, left to right: the ``DATASEC`` view of the
        plane and the tile pixel of its first pixel; None if an extension lacks the plane.

    Raises
    ------
    FileProblem
        If a data section does not fit the tile at its CCDSEC.
    """
    xbin, ybin = binning_of(frame)
    ny, nx = tile_shape(group, xbin, ybin)
    parts = []
    for ext in (frame.exts[i] for i in group.ext_indices):
        array = getattr(ext, plane)
        if array is None:
            return None
        part = array[_section(frame, ext.header, "DATASEC").slices]
        x0, y0 = amp_offset(ext.header, group, xbin, ybin)
        if part.shape[0] > ny - y0 or part.shape[1] > nx - x0:
            raise FileProblem(_where(frame), f"extension with DETSEC {ext.header['DETSEC']}: "
                              f"data {part.shape} do not fit its CCDSEC at binning "
                              f"{xbin}x{ybin}")
        parts.append(((x0, y0), part))
    return parts


def parts_cover(parts: list, shape: tuple[int, int]) -> bool:
    """Whether the pieces from :func:`tile_parts` cover a tile of ``shape`` once each pixel."""
    boxes = [(x0, x0 + part.shape[1], y0, y0 + part.shape[0]) for (x0, y0), part in parts]
    overlap = any(a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]
                  for k, a in enumerate(boxes) for b in boxes[k + 1:])
    area = sum((x1 - x0) * (y1 - y0) for x0, x1, y0, y1 in boxes)
    return not overlap and area == shape[0] * shape[1]


def tile_planes(frame, group: CCDGroup, planes=("data", "variance", "mask"), *,
                buffers: dict | None = None, parts: dict | None = None) -> dict:
    """Paste a CCD's extensions into one array per plane.

    Parameters
    ----------
    frame : Frame
    group : CCDGroup
    planes : tuple of str
        Extension attributes to tile (``data``, ``variance``, ``mask``).
    buffers : dict, optional
        Plane name -> array of an earlier call to reuse (when of the tile's shape), so
        that tiling several CCDs in turn does not ask for fresh memory each time.
    parts : dict, optional
        Plane name -> :func:`tile_parts` of this CCD, when the caller has them already.

    Returns
    -------
    dict
        Plane name -> array (float32 for data/variance, uint16 for mask), or
        None for planes the extensions do not have.  Parts of the tile no
        extension covers (none for a standard readout) are 0.
    """
    xbin, ybin = binning_of(frame)
    shape = tile_shape(group, xbin, ybin)
    out = {}
    for plane in planes:
        pieces = parts[plane] if parts is not None else tile_parts(frame, group, plane)
        if pieces is None:
            out[plane] = None
            continue
        dtype = np.uint16 if plane == "mask" else np.float32
        tile = (buffers or {}).get(plane)
        if tile is None or tile.shape != shape or tile.dtype != dtype:
            tile = np.zeros(shape, dtype=dtype)
        elif not parts_cover(pieces, shape):
            tile.fill(0)
        for (x0, y0), part in pieces:
            tile[y0:y0 + part.shape[0], x0:x0 + part.shape[1]] = part
        out[plane] = tile
    return out
