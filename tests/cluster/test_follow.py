"""A desktop follows training jobs through a real NATS JetStream server (issue 15 part 2)."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.cluster.natsd import NatsServer
from tests.cluster.rig import Desk, Proxy, finish, node, stream_last_seq, until


def test_two_nodes_publish_and_one_desktop_follows_both_through_a_cut_connection(natsd: NatsServer) -> None:
    """Two training processes publish; the desktop's connection is cut twice mid-run: every
    milestone, warning and completion of both jobs pops up exactly once, none is missing."""

    async def scenario() -> None:
        proxy = await Proxy(natsd.port).start()
        async with Desk(f"nats://127.0.0.1:{proxy.port}") as desk:
            nodes = [node(natsd.url, "node-a", steps=150), node(natsd.url, "node-b", steps=150, sleep=0.03)]
            keys = [f"node-a@127.0.0.1:{proxy.port}", f"node-b@127.0.0.1:{proxy.port}"]
            await until(lambda: all(desk.job(k) is not None and desk.job(k).current_step > 20 for k in keys))
            proxy.cut()
            await asyncio.sleep(0.5)
            proxy.cut()
            for proc in nodes:
                rc, _out, err = await finish(proc)
                assert rc == 0, err
            await until(lambda: all(desk.job(k).state.value == "completed" for k in keys), what="both completed")
            await desk.monitor.drain()
            source = desk.monitor.connections[desk.url].client
            assert proxy.cuts == 2
            assert source.connects >= 2  # it really lost the connection and came back
            assert source.last_stream_seq == await stream_last_seq(natsd.url)  # read to the end, no gap
            for key in keys:
                titles = Counter(desk.popups(key))
                assert all(n == 1 for n in titles.values()), titles
                assert any("25%" in t for t in titles), titles
                assert any("50%" in t for t in titles), titles
                assert any("75%" in t for t in titles), titles
                assert any("plateau" in r.event.message for r in desk.notifier.requests if r.job_id == key)
                assert desk.job(key).current_step == 150
                assert len(titles) == 5, titles  # 25/50/75 %, the warning, the completion
        await proxy.close()

    asyncio.run(scenario())
