"""Pole-mode feasibility in process vs networkx on the same graph, and radius mode alongside.

    uv run python benchmarks/bench_feasibility_poles.py            # ~1M poles
    uv run python benchmarks/bench_feasibility_poles.py --quick    # ~40k poles, seconds

A street grid of poles 25–50 m apart per city (with a river crossed at a few bridges and 5 %
unusable poles), a box on every fifth pole. Prints p50 per query at 150 m and 3000 m for the
pole mode (and with every box's drop_poles read, as serialising does), the same
routes by networkx (multi-source Dijkstra with a cutoff) and the ratio,
the pole index memory per million poles, and the radius query p50 on the same boxes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import networkx as nx
import numpy as np

from domain.feasibility.geodesy import ecef_point
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.pole_query import PoleNetwork
from domain.feasibility.poles import PoleGraph
from domain.feasibility.policy import RadiusPolicy

M_PER_DEG = 111_320.0


def city(rng: np.random.Generator, lat0: float, lng0: float, side: int, offset: int):
    gaps = rng.uniform(25, 50, (2, side))
    ys, xs = np.cumsum(gaps[0]), np.cumsum(gaps[1])
    lat = lat0 + np.repeat(ys, side) / M_PER_DEG
    lng = lng0 + np.tile(xs, side) / (M_PER_DEG * np.cos(np.radians(lat0)))
    idx = np.arange(side * side).reshape(side, side)
    right = np.column_stack((idx[:, :-1].ravel(), idx[:, 1:].ravel()))
    down = np.column_stack((idx[:-1, :].ravel(), idx[1:, :].ravel()))
    river = side // 2
    bridges = rng.choice(side, 3, replace=False)
    keep = np.ones(len(down), dtype=bool)
    cut = (down[:, 0] // side) == river
    keep[cut] = np.isin(down[cut, 0] % side, bridges)
    edges = np.vstack((right, down[keep])) + offset
    return lat, lng, edges


def build(n_poles: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    side = 500
    cities = max(1, n_poles // (side * side))
    lats, lngs, edges = [], [], []
    for c in range(cities):
        lat, lng, e = city(rng, -23.5 - 0.5 * c, -46.6 + 0.5 * c, side, c * side * side)
        lats.append(lat), lngs.append(lng), edges.append(e)
    lat, lng, e = np.concatenate(lats), np.concatenate(lngs), np.vstack(edges)
    n = lat.size
    ids = [f"{i:024x}" for i in range(n)]
    adj: list[list[str]] = [[] for _ in range(n)]
    for a, b in e.tolist():
        adj[a].append(ids[b])
        adj[b].append(ids[a])
    usable = rng.random(n) > 0.05
    return ids, lat, lng, usable, adj, e


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="~40k poles instead of ~1M")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    n = 40_000 if args.quick else 1_000_000
    t0 = time.perf_counter()
    ids, lat, lng, usable, adj, edges = build(n if not args.quick else 250_000)
    if args.quick:
        keep = np.arange(len(ids)) < 40_000
        ids = [i for i, k in zip(ids, keep, strict=True) if k]
        lat, lng, usable = lat[keep], lng[keep], usable[keep]
        adj = adj[: len(ids)]
        edges = edges[(edges < len(ids)).all(axis=1)]
    graph = PoleGraph(ids=ids, lats=lat, lngs=lng, usable=usable, adjacents=adj)
    box_rows = np.arange(0, len(ids), 5)
    boxes = [ids[i] for i in box_rows]
    policy = RadiusPolicy(default_m=150.0, max_m=3000.0)
    index = FeasibilityIndex(
        ids=boxes, names=boxes, project_ids=["p"] * len(boxes), lats=lat[box_rows],
        lngs=lng[box_rows], statuses=["implanted"] * len(boxes), ports_free=[1] * len(boxes),
        ports_reserved=[0] * len(boxes), ports_active=[0] * len(boxes),
        ports_occupied=[0] * len(boxes), ports_blocked=[0] * len(boxes), radius_policy=policy,
    )  # fmt: skip
    net = PoleNetwork(index, graph, dict(zip(boxes, boxes, strict=True)), {"p": 300.0})
    print(f"{len(graph):,} usable poles, {graph.edges:,} edges, {len(index):,} boxes; "
          f"build {time.perf_counter() - t0:.1f} s")  # fmt: skip
    print(f"pole graph memory: {graph.nbytes / len(graph) * 1e6 / 2**20:.0f} MB per million poles")

    g = nx.Graph()
    for a, b in edges.tolist():
        if usable[a] and usable[b]:
            ra, rb = graph.row_of(ids[a]), graph.row_of(ids[b])
            g.add_edge(ra, rb, w=graph.edge_m(ra, rb))
    rng = np.random.default_rng(7)
    picks = rng.integers(0, len(ids), args.queries)
    points = [(float(lat[i]) + 1e-4, float(lng[i])) for i in picks]
    print("| bound | boxes | pole mode p50 | + drop_poles p50 | networkx p50 | ratio "
          "| radius mode p50 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for bound in (150.0, 3000.0):
        ours, chains, theirs, radius, found = [], [], [], [], []
        for q, (la, lo) in enumerate(points):
            t = time.perf_counter()
            answer = net.query(la, lo, bound)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            # What serialising the answer costs on top: the chains are built on first read.
            sum(len(h.drop_poles) for h in answer.hits)
            chains.append(time.perf_counter() - t + ours[-1])
            found.append(len(answer.hits))
            t = time.perf_counter()
            index.query(la, lo, bound)
            radius.append(time.perf_counter() - t)
            if q < 30:  # networkx is slow: a sample is enough for its median
                t = time.perf_counter()
                src = -1
                g.add_node(src)
                point = np.asarray(ecef_point(la, lo))
                for r in graph.tree.query_ball_point(point, graph.max_span_m):
                    span = graph.span_m(la, lo, r)
                    if span <= graph.max_span_m:
                        g.add_edge(src, r, w=span)
                nx.single_source_dijkstra_path_length(g, src, cutoff=bound, weight="w")
                theirs.append(time.perf_counter() - t)
                g.remove_node(src)
        p50 = statistics.median
        print(f"| {bound:g} m | {p50(found):g} | {p50(ours) * 1e3:.2f} ms | "
              f"{p50(chains) * 1e3:.2f} ms | {p50(theirs) * 1e3:.2f} ms | "
              f"{p50(theirs) / p50(ours):.1f}x | {p50(radius) * 1e3:.3f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
