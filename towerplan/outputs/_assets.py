"""Offline Leaflet assets shipped in ``towerplan/static`` (private).

towerplan's own helpers (``static/towerplan/map.js``, ``map.css``) are
always inlined.  The JavaScript and CSS of Leaflet 1.9.4 and Leaflet.markercluster 1.5.3 come
from their npm registry packages (see ``towerplan/static/SOURCE.md``).  They are
embedded inline in every HTML map so that the file works with no network; the
few images the Leaflet stylesheet refers to are inlined as ``data:`` URIs.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from importlib import resources

__all__ = [
    "CDN_CSS",
    "CDN_JS",
    "LEAFLET_VERSION",
    "MARKERCLUSTER_VERSION",
    "external_references",
    "inline_assets",
    "linked_assets",
    "towerplan_assets",
]

LEAFLET_VERSION = "1.9.4"
MARKERCLUSTER_VERSION = "1.5.3"

_LEAFLET = ("leaflet/leaflet.css", "leaflet/leaflet.js")
_CLUSTER = (
    "leaflet.markercluster/MarkerCluster.css",
    "leaflet.markercluster/MarkerCluster.Default.css",
    "leaflet.markercluster/leaflet.markercluster.js",
)
CDN_JS = {
    "leaflet": f"https://cdn.jsdelivr.net/npm/leaflet@{LEAFLET_VERSION}/dist/leaflet.js",
    "markercluster": (
        f"https://cdn.jsdelivr.net/npm/leaflet.markercluster@{MARKERCLUSTER_VERSION}"
        "/dist/leaflet.markercluster.js"
    ),
}
CDN_CSS = {
    "leaflet": f"https://cdn.jsdelivr.net/npm/leaflet@{LEAFLET_VERSION}/dist/leaflet.css",
    "markercluster": (
        f"https://cdn.jsdelivr.net/npm/leaflet.markercluster@{MARKERCLUSTER_VERSION}"
        "/dist/MarkerCluster.css"
    ),
    "markercluster_default": (
        f"https://cdn.jsdelivr.net/npm/leaflet.markercluster@{MARKERCLUSTER_VERSION}"
        "/dist/MarkerCluster.Default.css"
    ),
}

_URL_RE = re.compile(r"url\((['\"]?)(images/[A-Za-z0-9_.-]+\.png)\1\)")
_SOURCEMAP_RE = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)
_EXTERNAL_RE = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""",
    re.IGNORECASE,
)


def _read(rel: str) -> str:
    return (resources.files("towerplan") / "static" / rel).read_text(encoding="utf-8")


def _inline_css_images(css: str, folder: str) -> str:
    def repl(m: re.Match[str]) -> str:
        data = (resources.files("towerplan") / "static" / folder / m.group(2)).read_bytes()
        return "url(data:image/png;base64," + base64.b64encode(data).decode("ascii") + ")"

    return _URL_RE.sub(repl, css)


def _script(js: str) -> str:
    js = _SOURCEMAP_RE.sub("", js).replace("</script", "<\\/script")
    return f"<script>\n{js}\n</script>"


def _style(css: str) -> str:
    css = css.replace("</style", "<\\/style")
    return f"<style>\n{css}\n</style>"


@lru_cache(maxsize=2)
def inline_assets(cluster: bool) -> str:
    """HTML ``<style>``/``<script>`` block embedding Leaflet (and markercluster).

    Parameters
    ----------
    cluster : bool
        Also embed Leaflet.markercluster.

    Returns
    -------
    str
        HTML to put in the page head, before any map script.
    """
    parts = [
        _style(_inline_css_images(_read(_LEAFLET[0]), "leaflet")),
        _script(_read(_LEAFLET[1])),
    ]
    if cluster:
        parts += [
            _style(_read(_CLUSTER[0])),
            _style(_read(_CLUSTER[1])),
            _script(_read(_CLUSTER[2])),
        ]
    return "\n".join(parts)


@lru_cache(maxsize=1)
def towerplan_assets() -> str:
    """HTML ``<style>``/``<script>`` of towerplan's own map helpers (``static/towerplan``).

    Always inline (also with ``offline=False``): canvas site shapes, popups,
    site search, the VN-2000 coordinate readout and collapsible panels.
    """
    return "\n".join([_style(_read("towerplan/map.css")), _script(_read("towerplan/map.js"))])


def linked_assets(cluster: bool) -> str:
    """HTML linking the same asset versions from a CDN (for ``offline=False``)."""
    parts = [
        f'<link rel="stylesheet" href="{CDN_CSS["leaflet"]}"/>',
        f'<script src="{CDN_JS["leaflet"]}"></script>',
    ]
    if cluster:
        parts += [
            f'<link rel="stylesheet" href="{CDN_CSS["markercluster"]}"/>',
            f'<link rel="stylesheet" href="{CDN_CSS["markercluster_default"]}"/>',
            f'<script src="{CDN_JS["markercluster"]}"></script>',
        ]
    return "\n".join(parts)


def external_references(html: str) -> list[str]:
    """URLs that an HTML page would fetch from the network (script, link, img, iframe).

    Tile URL templates inside scripts are not listed: tiles are optional and
    the map renders without them.
    """
    return sorted(set(_EXTERNAL_RE.findall(html)))
