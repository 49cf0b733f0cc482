"""A real MCP client (the `mcp` package from PyPI) checking that `procs mcp` answers `status`
from the supervisor's event stream, not from the registry.

Run by tests/integration/mcp.rs as:
    mcp_stream_client.py PROCS_BINARY PROJECT_DIR PROCESS STATE_FILE
With the stack up, it calls `status` (which opens the subscription) and subscribes to the
resource procs://status, restarts PROCESS with `procs restart` from outside, waits for a
`notifications/resources/updated` of procs://status (deadline 10 s), reads that resource, notes the new pid `procs status --json` reports, then replaces
STATE_FILE (.procs/state.json) with a non-empty directory so nothing can read the registry,
and calls `status` until it shows the new pid (deadline 10 s), then the `restart` and `logs`
tools. It puts the registry back,
runs `procs down` from outside and calls `status` (the registry fallback), then `procs up`
and `status` again (a new subscription). It prints one JSON object with what it saw.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

DEADLINE_SECS = 10
STATUS_URI = "procs://status"


def text_of(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def is_error(result):
    return getattr(result, "is_error", getattr(result, "isError", None))


def entry(status, name):
    for p in status.get("processes", []):
        if p["name"] == name:
            return p
    return {}


def outside(procs, project_dir, *args):
    done = subprocess.run(
        [procs, *args], cwd=project_dir, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"procs {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


async def status(session):
    result = await session.call_tool("status", {})
    if is_error(result):
        return {"is_error": True, "text": text_of(result)}
    return json.loads(text_of(result))


async def main():
    procs, project_dir, process, state_file = sys.argv[1:5]
    params = StdioServerParameters(
        command=procs, args=["mcp"], cwd=project_dir, env=dict(os.environ)
    )
    seen = {}
    updates = []
    updated = asyncio.Event()

    async def on_message(message):
        if getattr(message, "method", "") == "notifications/resources/updated":
            updates.append(str(message.params.uri))
            updated.set()

    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()
            first = await status(session)
            seen["first"] = first
            seen["pid_before"] = entry(first, process).get("pid")
            await session.subscribe_resource(STATUS_URI)
            seen["updates_before_restart"] = list(updates)

            outside(procs, project_dir, "restart", process)
            try:
                await asyncio.wait_for(updated.wait(), DEADLINE_SECS)
            except asyncio.TimeoutError:
                pass
            seen["updates_after_restart"] = list(updates)
            resource = await session.read_resource(STATUS_URI)
            seen["status_resource"] = json.loads(resource.contents[0].text)
            truth = json.loads(outside(procs, project_dir, "status", "--json"))
            seen["pid_outside"] = entry(truth, process).get("pid")

            # Nothing can read the registry now: a directory (with a file in it, so
            # the supervisor cannot rename a new registry over it) is in its place.
            away = state_file + ".away"
            os.rename(state_file, away)
            os.mkdir(state_file)
            with open(os.path.join(state_file, "not-a-registry"), "w") as f:
                f.write("x")
            deadline = time.monotonic() + DEADLINE_SECS
            calls = 0
            while True:
                calls += 1
                now = await status(session)
                pid = entry(now, process).get("pid")
                if pid == seen["pid_outside"] or time.monotonic() > deadline:
                    break
            seen["after_restart"] = now
            seen["after_restart_calls"] = calls
            # Actions and logs need no registry either while the supervisor runs.
            restart = await session.call_tool("restart", {"names": [process]})
            seen["restart_without_registry_is_error"] = is_error(restart)
            seen["restart_without_registry_text"] = text_of(restart)
            logs = await session.call_tool("logs", {"name": process, "n": 20})
            seen["logs_without_registry_is_error"] = is_error(logs)
            seen["logs_without_registry_text"] = text_of(logs)
            seen["registry_was_unreadable"] = os.path.isdir(state_file)
            shutil.rmtree(state_file)
            os.rename(away, state_file)

            outside(procs, project_dir, "down")
            seen["after_down"] = await status(session)

            outside(procs, project_dir, "up")
            seen["after_up"] = await status(session)
    print(json.dumps(seen))


asyncio.run(main())
