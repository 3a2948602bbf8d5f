#!/usr/bin/env python3
"""Terminal chat over Socket.IO with python-socketio.

usage: python3 chat.py [url=http://localhost:8084] [room=lobby] [token]
Type a line to send it to the room; "/away" and "/online" set your status; Ctrl-D quits.
"""
import asyncio
import sys

import socketio


async def main(url: str, room: str, token: str | None) -> None:
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on("message:new")
    async def on_message(msg):
        print(f"[{msg.get('room', 'global')}] {msg['from']}: {msg['data']['content']}", flush=True)

    @sio.on("presence:update")
    async def on_presence(p):
        print(f"* {p['user']['name']} is {p['status']} in {p['room']}", flush=True)

    @sio.on("error")
    async def on_error(err):
        print(f"error: {err['code']} {err['message']}", flush=True)

    await sio.connect(url, transports=["websocket"], auth={"token": token} if token else None)
    ack = await sio.call("room:join", {"room": room}, timeout=10)
    if ack.get("status") != "ok":
        print(f"join failed: {ack}", flush=True)
        return
    print(f"connected as {sio.get_sid()}, joined {room}", flush=True)

    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        line = line.rstrip("\n")
        if not line:
            continue
        if line in ("/away", "/online", "/busy"):
            await sio.call("presence:update", {"status": line[1:]}, timeout=10)
            continue
        ack = await sio.call("message:send", {"room": room, "content": line}, timeout=10)
        if ack.get("status") == "ok":
            print(f"sent {ack['id']}", flush=True)
        else:
            print(f"not sent: {ack['code']} {ack['message']}", flush=True)
    await asyncio.sleep(0.3)  # let the last messages arrive
    await sio.disconnect()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0] if len(args) > 0 else "http://localhost:8084",
            args[1] if len(args) > 1 else "lobby",
            args[2] if len(args) > 2 else None,
        )
    )
