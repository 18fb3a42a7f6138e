"""The bare grpc.aio baseline for the fan-out benchmark.

The same message exchange as a Convoy fan-out, with nothing else: N bidirectional streams over
the same number of channels (a TCP connection each), opened in the same waves; after a `Go`, the server writes one Job
to every stream, each client answers with three JobStatus messages (received, installing,
completed), and the server answers the last with an Ack. Same protobuf messages, same payload;
no database, no journal, no state machine. The client prints the time from Go to the last Ack.

    python -m bench.baseline server              # prints {"event": "listening", "port": P}
    python -m bench.baseline client --target 127.0.0.1:P --count N --channels 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

import grpc
import grpc.aio
from google.protobuf import struct_pb2

from agent.simulate import own_channel
from common import transport
from common.convoy.v1 import agent_pb2

SERVICE = "bench.Baseline"
PAYLOAD = {"interpreter": "sh", "body": "true", "parameters": {}, "scriptId": "00000000-0000-0000-0000-000000000000"}


def job_message(i: int) -> agent_pb2.CoordinatorMessage:
    payload = struct_pb2.Struct()
    payload.update(PAYLOAD)
    return agent_pb2.CoordinatorMessage(job=agent_pb2.Job(
        job_id=f"job-{i:08d}", deployment_id="dep", attempt=1, type="script", payload=payload, timeout_seconds=1800))


async def serve() -> None:
    streams: list[asyncio.Queue[agent_pb2.CoordinatorMessage | None]] = []

    async def connect(_request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        await context.write(agent_pb2.CoordinatorMessage(welcome=agent_pb2.Welcome(device_id="d",
                                                                                    heartbeat_interval_seconds=15)))
        q: asyncio.Queue[agent_pb2.CoordinatorMessage | None] = asyncio.Queue()
        streams.append(q)

        async def reader() -> None:
            while True:
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    q.put_nowait(None)
                    return
                st = msg.job_status
                if st.state == "completed":
                    q.put_nowait(agent_pb2.CoordinatorMessage(ack=agent_pb2.Ack(job_id=st.job_id, state=st.state)))

        task = asyncio.create_task(reader())
        try:
            while (out := await q.get()) is not None:
                await context.write(out)
        finally:
            task.cancel()

    async def go(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
        for i, q in enumerate(streams):
            q.put_nowait(job_message(i))
        return b""

    server = transport.aio_server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {
        "Connect": grpc.stream_stream_rpc_method_handler(
            connect, request_deserializer=agent_pb2.AgentMessage.FromString,
            response_serializer=agent_pb2.CoordinatorMessage.SerializeToString),
        "Go": grpc.unary_unary_rpc_method_handler(go, request_deserializer=bytes,
                                                  response_serializer=bytes),
    })])
    port = transport.bind(server, "127.0.0.1:0", None)
    await server.start()
    print(json.dumps({"event": "listening", "grpc_port": port}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


async def client(target: str, count: int, channels: int, wave: int = 100, pause: float = 0.01) -> dict[str, Any]:
    # As many connections as the simulator opens for the same fleet (agent/simulate.py): at most
    # 90% of the server's streams per connection on each, or the streams past it wait forever.
    channels = max(channels, -(-count // (transport.MAX_STREAMS_PER_CONNECTION * 9 // 10)))
    chans = [own_channel(target, transport.PLAINTEXT) for _ in range(channels)]  # a TCP connection each
    connects = [c.stream_stream(f"/{SERVICE}/Connect", request_serializer=agent_pb2.AgentMessage.SerializeToString,
                                response_deserializer=agent_pb2.CoordinatorMessage.FromString) for c in chans]
    acked = 0
    all_acked = asyncio.Event()
    hello = agent_pb2.AgentMessage(hello=agent_pb2.Hello(agent_version="bench"))

    async def agent(call: Any, welcomed: asyncio.Event) -> None:
        nonlocal acked
        await call.write(hello)
        await call.read()
        welcomed.set()
        while True:
            msg = await call.read()
            if msg is grpc.aio.EOF:
                return
            if msg.HasField("job"):
                j = msg.job
                for state in ("received", "installing", "completed"):
                    await call.write(agent_pb2.AgentMessage(job_status=agent_pb2.JobStatus(
                        job_id=j.job_id, deployment_id=j.deployment_id, state=state,
                        **({"exit_code": 0, "output": "ok\n"} if state == "completed" else {}))))
            elif msg.HasField("ack"):
                acked += 1
                if acked == count:
                    all_acked.set()

    started = time.monotonic()
    calls = []
    tasks = []
    for start in range(0, count, wave):
        events = []
        for i in range(start, min(start + wave, count)):
            call = connects[i % channels]()
            ev = asyncio.Event()
            calls.append(call)
            events.append(ev)
            tasks.append(asyncio.create_task(agent(call, ev)))
        await asyncio.gather(*(e.wait() for e in events))
        await asyncio.sleep(pause)
    connected = time.monotonic() - started
    go = chans[0].unary_unary(f"/{SERVICE}/Go", request_serializer=bytes, response_deserializer=bytes)
    t0 = time.monotonic()
    await go(b"")
    await asyncio.wait_for(all_acked.wait(), 600)
    elapsed = time.monotonic() - t0
    for call in calls:
        call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in chans:
        await c.close()
    return {"event": "done", "count": count, "channels": channels, "connect_seconds": round(connected, 3),
            "seconds": round(elapsed, 4), "messages": count * 5}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("server", "client"))
    p.add_argument("--target")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--channels", type=int, default=8)
    args = p.parse_args()
    if args.role == "server":
        asyncio.run(serve())
    else:
        print(json.dumps(asyncio.run(client(args.target, args.count, args.channels))), flush=True)


if __name__ == "__main__":
    main()
