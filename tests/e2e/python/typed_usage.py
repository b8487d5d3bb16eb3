"""Type-checked by test_typing.py (mypy --strict): how a typed app uses the API. Never run."""

import asyncio
import livegate

async def main() -> None:
    async with livegate.Client("http://127.0.0.1:8080") as client:
        async for pub in client.subscribe("metrics.cpu"):
            print(pub.data, pub.offset + 1)
        async for item in client.subscribe("alerts", with_status=True):
            if isinstance(item, livegate.StatusEvent):
                print(item.kind)
            else:
                print(item.data)
        ack: livegate.Ack = await client.publish("alerts", {"x": 1})
        print(ack.offset)

with livegate.SyncClient("http://127.0.0.1:8080") as c:
    p = c.subscribe("x").get(timeout=1)
    if p is not None:
        print(p.time.isoformat())
    w = c.window("x")
    print([q.data for q in w.items()])
livegate.Publisher("http://x:1", api_key="k").publish("t", 1, event="e")
asyncio.run(main())
