"""The ingest reference: a bare websockets client that only receives the stream (child).

``python -m bench.bareclient URL`` prints ``{"ev": "connected"}`` after the hello, then
``{"ev": "marker", "t": perf_counter_ns, "n": frames}`` for every flood marker frame it sees.
It does not decode JSON: it measures what the transport alone can deliver.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect


async def main(url: str) -> None:
    async with connect(url, max_size=2**20) as ws:
        await ws.recv()
        print(json.dumps({"ev": "connected", "t": time.perf_counter_ns()}), flush=True)
        n = 0
        async for frame in ws:
            n += 1
            if "bench-marker" in frame:
                print(json.dumps({"ev": "marker", "t": time.perf_counter_ns(), "n": n}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
