"""Single-transaction scoring latency against a running CipherGuard, from one keep-alive client.

Usage: python bench/score_latency.py --url http://127.0.0.1:8000 --username U --password P
           [--requests 2000] [--customers 2000] [--merchants 300]

Posts fresh transaction ids for existing customers and merchants (those of
`generate_transactions`), so every request reads real history and writes one row. Prints the
client-side p50/p95/p99 and throughput. A precursor of `make bench` (issue #7)."""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlparse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--merchants", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()

    target = urlparse(args.url)
    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
    conn.request(
        "POST",
        "/api/v1/auth/token/",
        json.dumps({"username": args.username, "password": args.password}),
        {"Content-Type": "application/json"},
    )
    token = json.loads(conn.getresponse().read())["access"]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    rng = random.Random(1)  # noqa: S311 - load-test data, not security

    latencies, statuses = [], {}
    started = None
    for i in range(args.warmup + args.requests):
        body = {
            "transaction_id": f"bench-{uuid.uuid4().hex}",
            "customer_id": f"C{rng.randrange(args.customers):06d}",
            "merchant_id": f"M{rng.randrange(args.merchants):05d}",
            "amount": f"{rng.lognormvariate(3.8, 0.8):.2f}",
            "currency": "EUR",
            "country": rng.choice(["FR", "DE", "GB", "ES", "IT", "NL"]),
            "channel": rng.choice(["pos", "online"]),
            "timestamp": datetime.now(UTC).isoformat(),
        }
        payload = json.dumps(body)
        if i == args.warmup:
            started = time.perf_counter()
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/transactions/", payload, headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - t0
        if i >= args.warmup:
            latencies.append(elapsed * 1000)
            statuses[response.status] = statuses.get(response.status, 0) + 1
    total = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "statuses": statuses,
                "throughput_rps": round(len(latencies) / total, 1),
                "p50_ms": round(q[49], 2),
                "p95_ms": round(q[94], 2),
                "p99_ms": round(q[98], 2),
                "max_ms": round(max(latencies), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
