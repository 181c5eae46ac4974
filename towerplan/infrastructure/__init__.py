"""Shared and passive infrastructure around the sites.

One module per concept: :mod:`~towerplan.infrastructure.sharing` (co-location),
:mod:`~towerplan.infrastructure.undergrounding` (outer cable plant),
:mod:`~towerplan.infrastructure.backhaul` (fibre routes) and
:mod:`~towerplan.infrastructure.wifi` (public Wi-Fi hotspots).
"""
