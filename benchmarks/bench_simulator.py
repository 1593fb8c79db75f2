"""Benchmark: the simulator's own costs at scale (no HTTP): generation and `near` queries.

* generation of N boxes (seconds, array memory);
* `near` on boxes: the store's query path (k-d tree over ECEF + exact geodesic check,
  nearest first) against the named baseline "brute force": numpy geodesic distance to every
  box, filter, sort — same points, same radii, same answers (checked), ratio printed.

    uv run python benchmarks/bench_simulator.py [--boxes 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simulator.filters import geodesic_m, parse_filter
from simulator.network import generate_network
from simulator.store import Store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boxes", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    t = time.perf_counter()
    net = generate_network(args.boxes, args.seed)
    gen_s = time.perf_counter() - t
    print(
        f"generate {args.boxes} boxes: {gen_s:.2f} s, {net.n_splitters} splitters, "
        f"{net.n_props} occupied ports, arrays {net.nbytes() / 2**20:.0f} MiB"
    )
    st = Store(net)
    t = time.perf_counter()
    st.kdtree()
    print(f"k-d tree build: {time.perf_counter() - t:.2f} s")

    rng = np.random.default_rng(0)
    picks = rng.integers(0, net.n_boxes, size=args.queries)
    points = [
        (float(net.box_lat[b]) + rng.normal(0, 0.002), float(net.box_lng[b]) + rng.normal(0, 0.002))
        for b in picks
    ]
    for radius in (150.0, 3000.0):
        flts = [
            parse_filter(
                [
                    {
                        "property": "coords",
                        "operator": "near",
                        "value": {"lat": la, "lng": lo, "radius": radius},
                    }
                ]
            )
            for la, lo in points
        ]
        t = time.perf_counter()
        fast = [st.query("boxes", f) for f in flts]
        fast_s = time.perf_counter() - t
        t = time.perf_counter()
        base = []
        for la, lo in points:
            d = geodesic_m(la, lo, net.box_lat, net.box_lng)
            hit = np.flatnonzero(d <= radius)
            base.append(hit[np.lexsort((hit, d[hit]))])
        base_s = time.perf_counter() - t
        assert all(np.array_equal(a, b) for a, b in zip(fast, base, strict=True)), "answers differ"
        mean_hits = np.mean([len(a) for a in fast])
        per_fast, per_base = fast_s / len(points) * 1e3, base_s / len(points) * 1e3
        print(
            f"near r={radius:.0f} m ({mean_hits:.0f} boxes/answer): store {per_fast:.2f} ms vs "
            f"brute force {per_base:.2f} ms per query -> {base_s / fast_s:.0f}x"
        )


if __name__ == "__main__":
    main()
