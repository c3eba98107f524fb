"""Header keywords: the one place that names them.

Processed-file markers and timestamp keywords follow DRAGONS
(``geminidr/gemini/lookups/timestamp_keywords.py``); raw keywords follow the
Gemini archive files (``shared/reference/gmos-raw-files.md``).
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
