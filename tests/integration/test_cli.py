"""The `wedsync-realtime` command as a user runs it: tokens, settings errors, serve and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import TEST_SECRET
from tests.support.phoenix import PhoenixClient

pytestmark = pytest.mark.integration

COMMAND = [sys.executable, "-m", "wedsync_realtime"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEDSYNC_")}
    return {**env, "WEDSYNC_JWT_SECRET": TEST_SECRET, **extra}


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_token_command_signs_claims() -> None:
    code, out, _ = await _run(
        "token",
        "--sub",
        "emma",
        "--claim",
        'app_metadata={"tier":"paid"}',
        "--ttl",
        "60",
        env=_env(),
    )
    assert code == 0
    claims = jwt.decode(out.strip(), TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "emma" and claims["role"] == "authenticated"
    assert claims["app_metadata"] == {"tier": "paid"}
    assert claims["exp"] - claims["iat"] == 60


async def test_bad_setting_fails_startup_naming_the_variable(tmp_path: object) -> None:
    code, _, err = await _run("serve", env=_env(WEDSYNC_IDLE_TIMEOUT_S="soon"))
    assert code == 2
    assert "WEDSYNC_IDLE_TIMEOUT_S" in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(tmp_path: object) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "serve",
        "--port",
        str(port),
        env=_env(WEDSYNC_DATA_DIR=str(tmp_path)),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while b"Uvicorn running" not in await process.stderr.readline():
            pass
    try:
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_sigterm_drains_channels_then_exits(
    served: tuple[asyncio.subprocess.Process, int],
) -> None:
    process, port = served
    from wedsync_realtime.auth.jwt import TokenVerifier

    token = TokenVerifier(TEST_SECRET).sign({"sub": "u1", "role": "authenticated", "exp": 2**40})
    client = await PhoenixClient.connect(f"ws://127.0.0.1:{port}", token)
    try:
        join_ref, reply = await client.join("room")
        assert reply.payload["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        system, close = await client.recv(), await client.recv()
        assert system.payload["message"] == "Server is shutting down"
        assert system.payload["status"] == "error"
        assert (close.event, close.ref) == ("phx_close", join_ref)
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    finally:
        await client.close()
    # After its graceful shutdown uvicorn re-raises the signal it caught, so a supervisor sees
    # the process end by SIGTERM, as it asked.
    assert await asyncio.wait_for(process.wait(), 15) == -signal.SIGTERM


async def test_demo_command_loads_the_store_and_prints_working_tokens(tmp_path: Path) -> None:
    env = _env(WEDSYNC_DATA_DIR=str(tmp_path))
    code, out, err = await _run("demo", "--json", env=env)
    assert code == 0, err
    demo = json.loads(out)
    assert (tmp_path / "wedsync.sqlite3").exists()
    assert {"james", "emma"} <= {user["user_id"] for user in demo["users"]}
    for user in demo["users"]:
        claims = jwt.decode(user["token"], TEST_SECRET, algorithms=["HS256"])
        assert claims["sub"] == user["user_id"] and claims["role"] == "authenticated"
    # Loading again is harmless.
    again, _, err = await _run("demo", "--json", env=env)
    assert again == 0, err
