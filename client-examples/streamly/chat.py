#!/usr/bin/env python3
"""Terminal chat written only from the Streamly chat service's description (seed 003):
connect to `/ws?room={room_id}`, send `{"type":"message","data":{"room","message",
"username"}}`, receive `{"type":"message","data":{"id","room","message","username",
"timestamp"}}`. chatwire speaks this dialect on the same routes as its own protocol.

usage: python3 chat.py [url=ws://localhost:8084/ws?room=lobby] [username=streamly-user]
Type a line to send it; Ctrl-D quits. Frames of other types are not Streamly's: skipped.
"""
import asyncio
import json
import sys
from urllib.parse import parse_qs, urlparse

import websockets


async def main(url: str, username: str) -> None:
    room = parse_qs(urlparse(url).query).get("room", ["lobby"])[0]
    async with websockets.connect(url, max_size=65536) as ws:
        print(f"connected as {username} in {room}", flush=True)

        unechoed: list[str] = []  # lines sent whose echo has not come back yet
        echoed = asyncio.Event()

        async def receive() -> None:
            async for frame in ws:
                msg = json.loads(frame)
                if msg.get("type") == "message":
                    data = msg["data"]
                    print(f"[{data['room']}] {data['username']}: {data['message']}", flush=True)
                    if data["username"] == username and data["message"] in unechoed:
                        unechoed.remove(data["message"])
                        if not unechoed:
                            echoed.set()

        receiver = asyncio.create_task(receive())
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            line = line.rstrip("\n")
            if line:
                echoed.clear()
                unechoed.append(line)
                frame = {"type": "message", "data": {"room": room, "message": line, "username": username}}
                await ws.send(json.dumps(frame))
        if unechoed:  # the echoes of the last lines, for at most 2 s
            try:
                await asyncio.wait_for(echoed.wait(), 2)
            except asyncio.TimeoutError:
                pass
        receiver.cancel()


if __name__ == "__main__":
    asyncio.run(main(
        sys.argv[1] if len(sys.argv) > 1 else "ws://localhost:8084/ws?room=lobby",
        sys.argv[2] if len(sys.argv) > 2 else "streamly-user",
    ))
