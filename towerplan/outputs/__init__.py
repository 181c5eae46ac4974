"""Outputs: the atomic output folder, offline web maps, map sheets and exports.

:mod:`~towerplan.outputs.folder` (staged output folder), :mod:`~towerplan.outputs.maps`
(Folium HTML), :mod:`~towerplan.outputs.sheets` (PDF/PNG sheets),
:mod:`~towerplan.outputs.export` (GPKG/GeoJSON/KML/SHP/CSV in WGS84 and VN-2000);
``_themes`` is the theme logic both maps and sheets read, ``_assets`` the inlined
Leaflet assets.
"""
