"""A real MCP client (the `mcp` package from PyPI) driving `procs mcp` over stdio.

Run by tests/integration/mcp.rs as: mcp_client.py PROCS_BINARY PROJECT_DIR PROCESS
It initializes, lists the tools and resources, calls `status`, `restart` on PROCESS and
`status` again, reads the config resource, calls a tool with a bad name of a process, and
prints one JSON object with what it saw (the Rust test checks it).
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def attr(obj, snake, camel):
    """The field under its 2.x (snake_case) or 1.x (camelCase) name."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


def is_error(result):
    return attr(result, "is_error", "isError")


def text_of(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def pid_of(status_text, name):
    status = json.loads(status_text)
    for p in status["processes"]:
        if p["name"] == name:
            return p["pid"], p["state"]
    raise SystemExit(f"{name} not in status: {status_text}")


async def main():
    procs, project_dir, process = sys.argv[1], sys.argv[2], sys.argv[3]
    params = StdioServerParameters(
        command=procs, args=["mcp"], cwd=project_dir, env=dict(os.environ)
    )
    seen = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            seen["protocol_version"] = attr(init, "protocol_version", "protocolVersion")
            seen["server"] = attr(init, "server_info", "serverInfo").name
            tools = await session.list_tools()
            seen["tools"] = [t.name for t in tools.tools]

            before = await session.call_tool("status", {})
            seen["status_is_error"] = is_error(before)
            seen["pid_before"], seen["state_before"] = pid_of(text_of(before), process)

            restart = await session.call_tool("restart", {"names": [process]})
            seen["restart_is_error"] = is_error(restart)
            seen["restart_text"] = text_of(restart)

            after = await session.call_tool("status", {"name": process})
            seen["pid_after"], seen["state_after"] = pid_of(text_of(after), process)

            logs = await session.call_tool("logs", {"name": process, "n": 5})
            seen["logs_text"] = text_of(logs)

            wrong = await session.call_tool("stop", {"names": ["no-such-process"]})
            seen["wrong_is_error"] = is_error(wrong)
            seen["wrong_text"] = text_of(wrong)

            resources = await session.list_resources()
            seen["resources"] = [str(r.uri) for r in resources.resources]
            config = await session.read_resource("procs://config")
            seen["config_text"] = config.contents[0].text
    print(json.dumps(seen))


asyncio.run(main())
