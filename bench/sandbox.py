"""Start+stop pairs per second: the sandbox against a bare Starlette app on the same stack.

Each server runs in its own subprocess (uvicorn, httptools, uvloop, one worker); this process
is the client: asyncio keep-alive connections speaking raw HTTP/1.1, so the client costs as
little as possible and the two servers are measured under the same load. Goal: the sandbox
keeps at least half the bare app's rate.

    .venv/bin/python bench/sandbox.py [--seconds 4] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_ID, APP_SECRET = "bench-app", "bench-secret"
START = json.dumps(
    {
        "operation": "start",
        "endpoint": {"type": "pstn", "phoneNumber": "14082924837", "dtmf": None},
        "actions": {},
        "data": {},
        "pushSpeakerEvents": True,
    }
).encode()


def serve_bare(port: int) -> None:
    """The baseline: a Starlette app that reads the body and answers a small JSON object."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"connectionId": "00000000-0000-4000-8000-000000000000"}, 201)

    app = Starlette(routes=[Route("/{path:path}", hello, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "bare":
        args = [sys.executable, __file__, "--serve-bare", str(port)]
    else:
        args = [
            sys.executable, "-m", "dialq.sandbox", "--port", str(port),
            "--max-concurrent", "100000000", "--app-id", APP_ID, "--app-secret", APP_SECRET,
        ]  # fmt: skip
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{kind} server did not start on port {port}")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, path: str, body: bytes, token: str = "") -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"x-api-key: {token}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


async def open_connection(port: int) -> Connection:
    return Connection(*await asyncio.open_connection("127.0.0.1", port))


async def token_for(port: int) -> str:
    connection = await open_connection(port)
    body = json.dumps({"type": "application", "appId": APP_ID, "appSecret": APP_SECRET}).encode()
    status, answer = await connection.post("/oauth2/token:generate", body)
    connection.writer.close()
    return str(json.loads(answer)["accessToken"]) if status == 200 else ""


async def pairs_per_second(port: int, seconds: float, connections: int) -> tuple[float, int]:
    token = await token_for(port)
    counts = [0] * connections
    errors = [0]
    stop_at = time.monotonic() + seconds

    async def worker(index: int) -> None:
        connection = await open_connection(port)
        while time.monotonic() < stop_at:
            status, answer = await connection.post("/v1/endpoint:connect", START, token)
            connection_id = json.loads(answer)["connectionId"]
            stop = json.dumps({"operation": "stop", "connectionId": connection_id}).encode()
            stop_status, _ = await connection.post("/v1/endpoint:connect", stop, token)
            if status == 201 and stop_status in (200, 201):
                counts[index] += 1
            else:
                errors[0] += 1
        connection.writer.close()

    began = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return sum(counts) / (time.monotonic() - began), errors[0]


def measure(kind: str, seconds: float, connections: int) -> tuple[float, int]:
    port = free_port()
    process = launch(kind, port)
    try:
        asyncio.run(pairs_per_second(port, 0.5, connections))  # warm-up
        return asyncio.run(pairs_per_second(port, seconds, connections))
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per side")
    parser.add_argument("--connections", type=int, default=64, help="concurrent keep-alive clients")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    bare, bare_errors = measure("bare", args.seconds, args.connections)
    print(f"bare starlette : {bare:8.0f} start+stop pairs/s")
    sandbox, sandbox_errors = measure("sandbox", args.seconds, args.connections)
    print(f"symbl sandbox  : {sandbox:8.0f} start+stop pairs/s")
    ratio = sandbox / bare if bare else 0.0
    print(f"ratio          : {ratio:8.2f} (goal >= 0.5)")
    result = {
        "bench": "sandbox",
        "bare_pairs_per_s": round(bare, 1),
        "sandbox_pairs_per_s": round(sandbox, 1),
        "ratio": round(ratio, 3),
        "goal_met": ratio >= 0.5,
        "errors": bare_errors + sandbox_errors,
        "seconds": args.seconds,
        "connections": args.connections,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
