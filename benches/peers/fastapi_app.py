"""The FastAPI + uvicorn ConnectionManager pattern that teams write today
(the FastAPI documentation's WebSocket example): a list of sockets, and for
each message `await ws.send_text()` in a loop.

    uvicorn fastapi_app:app --host 127.0.0.1 --port 9103
"""

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

app = FastAPI()


class ConnectionManager:
    def __init__(self) -> None:
        self.active: list[WebSocket] = []

    async def connect(self, ws: WebSocket) -> None:
        await ws.accept()
        self.active.append(ws)

    def disconnect(self, ws: WebSocket) -> None:
        if ws in self.active:
            self.active.remove(ws)

    async def broadcast(self, message: str) -> None:
        for ws in list(self.active):
            try:
                await ws.send_text(message)
            except Exception:
                self.disconnect(ws)


manager = ConnectionManager()


@app.websocket("/sub")
async def sub(ws: WebSocket) -> None:
    await manager.connect(ws)
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        manager.disconnect(ws)


@app.post("/pub")
async def pub(request: Request) -> dict:
    await manager.broadcast((await request.body()).decode())
    return {"ok": True}
