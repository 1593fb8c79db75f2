"""Feasibility ("viabilidade"): which network boxes (CTOs) can serve an address.

One module per concept; import from the module, this package re-exports nothing (importing a
light module such as `policy` must not load numpy/scipy/folium/geopandas):

| module | holds |
|---|---|
| `boxes` | the plain data: `BoxStatus`, `Availability`, `BoxRecord`, `FeasibilityHit` |
| `policy` | the search radius (`RadiusPolicy`, "Distância máxima"), limits and their errors |
| `geodesy` | fast ECEF/geodesic helpers of the one distance definition in `domain.geo` |
| `columns` | compact string columns and the Z-curve order used by the index |
| `index` | `FeasibilityIndex`: the in-memory radius index over the offered boxes |
| `holder` | `IndexHolder`: the live index of a process, swapped after a refresh |
| `loader` | `load_index`: the index built from the network cache tables |
| `service` | the front door of a query: validate (`plan_query`), answer (`run_query`) |
| `map` | the "ver no mapa" page |
| `coverage` | the coverage report: a file of addresses against the cached network |
"""
