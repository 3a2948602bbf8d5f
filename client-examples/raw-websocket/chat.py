#!/usr/bin/env python3
"""Terminal chat over chatwire's raw WebSocket protocol (realtime.Message JSON).

usage: python3 chat.py [url=ws://localhost:8084/ws/lobby]
Type a line to send it; "ping" sends a protocol ping; Ctrl-D quits.
"""
import asyncio
import json
import sys

import websockets


async def main(url: str) -> None:
    async with websockets.connect(url, max_size=65536) as ws:
        welcome = json.loads(await ws.recv())
        data = welcome["data"]
        print(f"connected as {data['client_id']} in {data.get('room', 'global')}")

        async def receive() -> None:
            async for frame in ws:
                msg = json.loads(frame)
                if msg["type"] == "chat":
                    print(f"[{msg.get('room', 'global')}] {msg['from']}: {msg['data']['content']}")
                elif msg["type"] == "error":
                    print(f"error: {msg['data']['code']} {msg['data']['message']}")
                else:
                    print(f"{msg['type']}: {json.dumps(msg['data'])}")

        receiver = asyncio.create_task(receive())
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            line = line.rstrip("\n")
            if not line:
                continue
            if line == "ping":
                await ws.send(json.dumps({"type": "ping"}))
            else:
                await ws.send(json.dumps({"type": "chat", "data": {"content": line}}))
        await asyncio.sleep(0.3)  # let replies to the last line arrive
        receiver.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://localhost:8084/ws/lobby"))
