"""``ibcbench bench cache``: the hot reads under no cache, the in-process cache and Redis."""

from __future__ import annotations

import argparse

from ibcbench.commands import count_at_most, dataset_scale, non_negative_int, positive_float


def register_bench(bench: argparse._SubParsersAction) -> None:
    from ibcbench.commands import add_dsn_argument

    p = bench.add_parser(
        "cache",
        help="the hot reads with no cache, QueryCache and a shared Redis: latency, database "
        "queries saved, hit ratio, staleness, Redis memory per key, Redis going away",
    )
    p.add_argument(
        "--scale", type=dataset_scale, default="small", help="dataset scale (default: small)"
    )
    p.add_argument("--seed", type=non_negative_int, default=42, help="dataset seed (default: 42)")
    p.add_argument(
        "--requests", type=count_at_most(1_000_000), default=3000, help="reads (default: 3000)"
    )
    p.add_argument(
        "--instances",
        type=count_at_most(64),
        default=2,
        help="application instances, each with its own in-process cache (default: 2)",
    )
    p.add_argument("--ttl", type=positive_float, default=30.0, help="cache TTL, s (default: 30)")
    p.add_argument(
        "--kill-redis",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="kill the kit's own Redis halfway through a last run, then start it again "
        "(default: True, on; a Redis of REDIS_URL is never killed)",
    )
    add_dsn_argument(p)
    p.set_defaults(func=_cache)


def _cache(args: argparse.Namespace) -> int:
    import os

    from ibcbench.bench.cache import run_cache_benchmark
    from ibcbench.data.datasets import ensure_dataset
    from ibcbench.infra.redis import LocalRedis, redis_target

    redis_target()  # no Redis: one line before any work
    local = None if os.environ.get("REDIS_URL") or not args.kill_redis else LocalRedis()
    dsn = ensure_dataset(args.dsn, scale=args.scale, seed=args.seed, quiet=False)
    try:
        result = run_cache_benchmark(
            dsn,
            requests=args.requests,
            instances=args.instances,
            ttl_s=args.ttl,
            kill_redis=local.kill if local else None,
            seed=args.seed,
        )
    finally:
        if local is not None and local.up():
            print("redis: started again after the run that killed it")
    print(
        f"cache: {args.requests} hot reads at scale {args.scale}, {args.instances} instances, "
        f"TTL {args.ttl:g} s"
    )
    print(result.table())
    return 0
