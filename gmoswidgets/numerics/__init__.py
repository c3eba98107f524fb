"""Numeric libraries on plain arrays, used by the primitives.

* :mod:`.combine`: combining N images into one (rejection, scaling,
  weighting, VAR and DQ propagation), behind the stacking primitives.
* :mod:`.interpolate`: resampling images, VAR and DQ planes through affine
  pixel maps, behind mosaicDetectors and resampleToCommonFrame.
"""
