"""Aladin Lite without the CDN: an ipyaladin.Aladin whose JavaScript loads a local copy.

ipyaladin 0.8.1's front end imports Aladin Lite from ``https://esm.sh`` when
the page loads, so on a machine without internet the view never appears
(its ``static/widget.js`` imports ``https://esm.sh/aladin-lite@3.9.2-beta``).
:func:`aladin_class` returns ``ipyaladin.Aladin`` patched to import Aladin Lite from

* a local JavaScript file (the npm package ``aladin-lite``, vendored in
  ``gmoswidgets/widgets/vendor``), sent to the browser inside the widget's
  code and imported from a ``blob:`` URL - works in JupyterLab, Notebook and
  Voila with no server configuration; or
* a URL (absolute, or relative to the page such as
  ``voila/files/vendor/aladin-lite-3.9.2-beta.js``);

or the stock class when asked for ``"cdn"``.  The choice comes from the
argument, else the environment variable ``GMOSWIDGETS_ALADIN_LITE``, else the
vendored file.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import ipyaladin

__all__ = ["ALADIN_LITE_VERSION", "VENDORED_ALADIN_LITE", "ENV_VAR", "aladin_class"]

#: The Aladin Lite version ipyaladin 0.8.1 imports (the local copy must match).
ALADIN_LITE_VERSION = "3.9.2-beta"
#: The local copy shipped with gmoswidgets (LGPL-3.0-or-later, see vendor/aladin-lite-COPYING).
VENDORED_ALADIN_LITE = Path(__file__).parent / "vendor" / f"aladin-lite-{ALADIN_LITE_VERSION}.js"
#: Environment variable naming the Aladin Lite source: a file, a URL or "cdn".
ENV_VAR = "GMOSWIDGETS_ALADIN_LITE"

_CDN_IMPORT = f'import C from"https://esm.sh/aladin-lite@{ALADIN_LITE_VERSION}";'


def _stock_widget_js() -> str:
    source = (Path(ipyaladin.__file__).parent / "static" / "widget.js").read_text()
    if _CDN_IMPORT not in source:
        raise RuntimeError("ipyaladin's widget.js no longer imports Aladin Lite "
                           f"{ALADIN_LITE_VERSION} from esm.sh; update gmoswidgets' offline patch "
                           f"(installed ipyaladin {ipyaladin.__version__}, expected 0.8.1)")
    return source


@lru_cache(maxsize=4)
def _patched_class(source: str, is_file: bool):
    if is_file:
        code = Path(source).read_text(encoding="utf-8")
        loader = ("const C=(await import(URL.createObjectURL(new Blob([" + json.dumps(code)
                  + '],{type:"text/javascript"})))).default;')
    else:
        loader = f"const C=(await import(new URL({json.dumps(source)},document.baseURI).href)).default;"
    esm = _stock_widget_js().replace(_CDN_IMPORT, loader)
    return type("OfflineAladin", (ipyaladin.Aladin,),
                {"_esm": esm, "__doc__": f"ipyaladin.Aladin loading Aladin Lite from {source}.",
                 "__module__": __name__})


def aladin_class(source: str | os.PathLike | None = None):
    """The Aladin widget class to use.

    Parameters
    ----------
    source : str or path-like, optional
        ``"cdn"`` for the stock ipyaladin class (needs internet), a path to a
        local ``aladin.js`` of version :data:`ALADIN_LITE_VERSION`, or a URL
        to one.  Default: ``$GMOSWIDGETS_ALADIN_LITE``, else the vendored
        file if present, else ``"cdn"``.

    Returns
    -------
    type
        ``ipyaladin.Aladin`` or a subclass of it.
    """
    if source is None:
        source = os.environ.get(ENV_VAR) or (VENDORED_ALADIN_LITE if VENDORED_ALADIN_LITE.exists()
                                             else "cdn")
    source = os.fspath(source)
    if source == "cdn":
        return ipyaladin.Aladin
    path = Path(source).expanduser()
    if path.is_file():
        return _patched_class(str(path.resolve()), True)
    return _patched_class(source, False)
