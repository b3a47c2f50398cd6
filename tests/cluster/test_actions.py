"""Actions over NATS: only to jobs that offer them, under the WebSocket path's rules (docs/security.md)."""

from __future__ import annotations

import asyncio
import json

import nats

from tests.cluster.natsd import NatsServer
from tests.cluster.rig import Desk, finish, node, until


def test_cancel_reaches_a_job_that_offers_it_and_nothing_else_gets_through(natsd: NatsServer) -> None:
    async def scenario() -> None:
        spy = await nats.connect(natsd.url)
        seen: list[str] = []

        async def on_action(msg: nats.aio.msg.Msg) -> None:
            seen.append(msg.subject)

        await spy.subscribe("peft.actions.>", cb=on_action)
        async with Desk(natsd.url) as desk:
            offers = node(natsd.url, "offers", steps=3000, extra=("--cancel",))
            plain = node(natsd.url, "plain", steps=3000)
            keys = {name: f"{name}@127.0.0.1:{natsd.port}" for name in ("offers", "plain")}
            await until(lambda: all(desk.job(k) is not None and desk.job(k).current_step > 5 for k in keys.values()))

            # The desktop never sends an action the job does not advertise: nothing is published.
            plain_url = desk.monitor.connection_for_job(keys["plain"]).url
            task = desk.monitor.request_action(plain_url, "cancel")
            assert task is not None and await task is False
            await asyncio.sleep(0.3)
            assert "peft.actions.plain" not in seen

            # A forged request straight to the subject is refused by the job itself (same rules as the WebSocket).
            reply = await spy.request("peft.actions.plain", _action("cancel"), timeout=5)
            assert json.loads(reply.data) == {"ok": False, "error": "the job does not offer 'cancel'"}
            reply = await spy.request("peft.actions.offers", _action("retry"), timeout=5)
            assert json.loads(reply.data)["ok"] is False  # not advertised (and the run has not ended)
            reply = await spy.request("peft.actions.offers", b"{not json", timeout=5)
            assert json.loads(reply.data)["ok"] is False

            # Cancel from the desktop reaches the job that offers it; the job stops.
            offers_url = desk.monitor.connection_for_job(keys["offers"]).url
            task = desk.monitor.request_action(offers_url, "cancel")
            assert task is not None and await task is True
            rc, out, _err = await finish(offers)
            assert rc == 130 and "cancelled" in out
            await until(lambda: desk.job(keys["offers"]).state.value == "cancelled", what="cancelled state")
            assert plain.poll() is None  # the other job trains on
            plain.terminate()
            await finish(plain)
        await spy.close()

    asyncio.run(scenario())


def _action(name: str) -> bytes:
    return json.dumps({"v": 1, "type": "action", "data": {"action": name}}).encode()
