"""Header keywords: the one place that names them.

Processed-file markers and timestamp keywords follow DRAGONS
(``geminidr/gemini/lookups/timestamp_keywords.py``); raw keywords follow the
Gemini archive's raw GMOS files (as DRAGONS' ``gmos`` astrodata descriptors read them).
"""

#: PHU keyword whose presence means the file went through a pipeline.
GEM_TLM = "GEM-TLM"

#: PHU keywords marking a processed product, with the tags each implies.
PROCESSED_MARKERS = {
    "PROCBIAS": {"PROCESSED", "BIAS", "CAL"},
    "GBIAS": {"PROCESSED", "BIAS", "CAL"},
    "PROCFLAT": {"PROCESSED", "FLAT", "CAL"},
    "GIFLAT": {"PROCESSED", "FLAT", "CAL"},
    "PROCFRNG": {"PROCESSED", "FRINGE", "CAL"},
    "GIFRINGE": {"PROCESSED", "FRINGE", "CAL"},
    "PROCSCI": {"PROCESSED", "PROCESSED_SCIENCE"},
    "PROCBPM": {"PROCESSED", "BPM", "CAL"},
    "BPMASK": {"PROCESSED", "BPM", "CAL"},
}

#: Timestamp keyword written to the PHU by each primitive (DRAGONS' names).
TIMESTAMP_KEYWORDS = {
    "prepare": "PREPARE",
    "addDQ": "ADDDQ",
    "addVAR": "ADDVAR",
    "overscanCorrect": "SUBOVER",
    "trimOverscan": "TRIMOVER",
    "biasCorrect": "BIASCORR",
    "ADUToElectrons": "ADUTOELE",
    "stackBiases": "STACKFRM",
    "stackFlats": "STACKFRM",
    "stackFrames": "STACKFRM",
    "scaleFlats": "SCALEFLT",
    "normalizeFlat": "NORMLIZE",
    "flatCorrect": "FLATCORR",
    "fringeCorrect": "FRNGCORR",
    "QECorrect": "QECORR",
    "mosaicDetectors": "MOSAIC",
    "detectSources": "DETECSRC",
    "adjustWCSToReference": "CORRWCS",
    "resampleToCommonFrame": "ALIGN",
    "flagCosmicRaysByStacking": "FLAGCR",
    "scaleCountsToReference": "SCALEOBJ",
    "makeFringeFrame": "FRINGE",
    "storeProcessedBias": "PROCBIAS",
    "storeProcessedFlat": "PROCFLAT",
    "storeProcessedFringe": "PROCFRNG",
    "storeProcessedScience": "PROCSCI",
}

#: BUNIT value written for data in electrons (astropy parses 'electron').
BUNIT_ELECTRONS = "electron"
#: BUNIT values read as "electrons" (the seed writes 'electrons').
BUNIT_ELECTRON_ALIASES = ("electron", "electrons", "e-")

#: PHU keyword keeping the original file name; output names are built on its root.
ORIGINAL_FILENAME = "ORIGNAME"

# -- Keywords written by the calibration primitives (prepare ... storeProcessed*) --
#: Per-extension detector properties written by prepare (read back by the descriptors).
GAIN = "GAIN"
#: PHU gain setting ('low' / 'high') recorded by prepare: GAIN becomes 1 in electrons.
GAINSET = "GAINSET"
RDNOISE = "RDNOISE"
SATLEVEL = "SATLEVEL"
NONLINEA = "NONLINEA"
BUNIT = "BUNIT"
#: BUNIT value of raw / prepared data.
BUNIT_ADU = "adu"
#: Noise components already in the VAR plane ("read", "Poisson"; comma separated).
VARNOISE = "VARNOISE"
#: overscanCorrect: section used, level subtracted, fit rms, read noise from the overscan.
OVERSCAN = "OVERSCAN"
OVERSEC = "OVERSEC"
OVERRMS = "OVERRMS"
OVERRDNS = "OVERRDNS"
TRIMMED = "TRIMMED"
#: Calibration files applied (PHU).
BIASIM = "BIASIM"
FLATIM = "FLATIM"
FRINGEIM = "FRINGEIM"
#: Observation ID (PHU); makeFringeFrame joins several with '+' (DRAGONS).
OBSID = "OBSID"
#: stackFlats: relative intensity (scale factor applied to each flat).
RELINT = "RELINT"
#: Number of frames combined by a stack.
NCOMBINE = "NCOMBINE"
#: Original file names of the inputs of a fringe frame, IMCMB001, IMCMB002, ... (IRAF
#: imcombine's convention); fringeCorrect uses them to know a frame is in its own fringe frame.
COMBINED_INPUT = "IMCMB{:03d}"
#: Processing mode of a processed product ('sq', 'ql', 'qa').
PROCMODE = "PROCMODE"

# -- Keywords written by the geometry primitives (QECorrect ... scaleCountsToReference) --
#: Exposure time (PHU); scaleCountsToReference sets it to the reference's value.
EXPTIME = "EXPTIME"
#: Original exposure time, kept by scaleCountsToReference (never overwritten).
ORIGTEXP = "ORIGTEXP"
#: resampleToCommonFrame: output pixel area in input pixels (flux-conservation factor).
JFACTOR = "JFACTOR"
#: resampleToCommonFrame: footprint of the input in the output ('POLYGON', AREAi_j vertices).
AREATYPE = "AREATYPE"
#: QECorrect: factor this extension was multiplied by (extension header).
QEFACTOR = "QEFACTOR"
