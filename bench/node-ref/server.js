// Node Socket.IO reference: the chat as a typical user writes it.
// PORT (default 3100); REDIS_URL enables @socket.io/redis-adapter for cross-pod runs.
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 3100);
const httpServer = createServer();
const io = new Server(httpServer, { serveClient: false });

if (process.env.REDIS_URL) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on("connection", (socket) => {
  socket.on("room:join", ({ room }, ack) => {
    socket.join(room);
    ack?.({ status: "ok", room });
  });
  socket.on("message:send", ({ room, content }, ack) => {
    const message = {
      id: randomUUID(), type: "chat", room, from: socket.id,
      data: { content }, timestamp: new Date().toISOString(),
    };
    socket.to(room).emit("message:new", message);
    ack?.({ status: "ok", id: message.id, timestamp: message.timestamp });
  });
});

httpServer.listen(port, "127.0.0.1", () => console.log(`node-ref listening on ${port}`));
