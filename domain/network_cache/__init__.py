"""Network cache for feasibility: OZmap boxes, customer-facing splitters and port states.

A refresh pulls, per OZmap project of the company units ("Local"), every box with its
customer-facing ("atendimento") splitters and the state of each port, and writes them into
`network_box` / `network_splitter`:

- **full**: every box of the project; boxes no longer in OZmap are removed afterwards (OZmap
  does not report deletions, so only a full refresh catches them);
- **incremental**: only boxes whose box, splitters, properties or clients changed since the
  project's high-water mark (`network_refresh_state.last_seen_updated_at`), minus a small
  overlap so a change committed out of order while the previous refresh was reading is not
  lost. A project never refreshed is pulled in full.

Rows are compared before writing, so a batch writes only what changed and the counts say
new / changed / unchanged / removed. Writes are batched upserts (`INSERT ... ON CONFLICT DO
UPDATE`, the same on SQLite and PostgreSQL), one transaction per batch: a refresh that dies
half-way leaves consistent boxes and an old high-water mark, and the next run redoes the rest.
When anything changed, the refresh bumps `network_cache_generation`; every service process
polls that one row and rebuilds its in-memory index (`load_index`) in the background.

Plain functions over an engine and an OZmap client; no Prefect here (see flows/network.py).
One module per step, imported directly (this package re-exports nothing):

| module | holds |
|---|---|
| `plan` | which projects to pull and how (`plan_refresh`), what a refresh needs from OZmap |
| `store` | the cache tables: compare-then-upsert of a page, removals, refresh state, generation |
| `refresh` | one project (`refresh_project`); a whole refresh in one process (the CLI) |
| `report` | what a refresh did (`ProjectRefresh`, `RefreshReport`): counts, summary, failure rule |

The feasibility index is built from these tables by `domain.feasibility.loader`.
"""
