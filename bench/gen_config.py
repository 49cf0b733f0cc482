#!/usr/bin/env python3
"""Writes a procs.yaml with N processes (default 500) for timing config loading, e.g.
    python3 bench/gen_config.py 500 > /tmp/big500.yaml
    procs -f /tmp/big500.yaml config
(see docs/performance.md, "Config loading").

Default: one dependency chain of `sleep` processes, each with one env var.
`--rich`: what real stacks write — shared defaults merged from an `x-` anchor, shell
commands with `${VAR:-default}` interpolation, env maps, ports, exec/tcp/http health
checks, dependency conditions, restart and log policies, oneshot setup tasks, block-scalar
scripts and comments.
"""
import sys


def simple(count: int) -> str:
    lines = ["processes:"]
    for i in range(count):
        lines.append(f"  p{i}:\n    command: [sleep, '1000']\n    env: {{ INDEX: '{i}' }}")
        if i > 0:
            lines.append(f"    depends_on: [p{i-1}]")
    return "\n".join(lines) + "\n"


def rich(count: int) -> str:
    out = [
        "# yaml-language-server: $schema=./schemas/procs.schema.json",
        "name: big",
        "x-defaults: &defaults",
        "  restart: on-failure",
        "  stop_timeout: 5s",
        "  backoff: { initial: 100ms, max: 10s }",
        "env:",
        "  LOG_LEVEL: ${LOG_LEVEL:-info}",
        "  REGION: eu-west-1",
        "logs: { max_size: 10MiB, keep: 3 }",
        "processes:",
    ]
    for i in range(count):
        port = 20000 + i
        out.append(f"  svc-{i}:")
        out.append("    <<: *defaults")
        if i % 50 == 0:
            out += [
                "    oneshot: true",
                "    command: |",
                f"      echo migrating shard {i}",
                "      sleep 0.1",
            ]
        else:
            out.append(
                f"    command: python3 -m http.server ${{PORT_{i}:-{port}}} --bind 127.0.0.1"
            )
            out.append(f"    ports: [{port}]")
        out += [
            "    env:",
            f"      SERVICE_NAME: svc-{i}",
            f'      DATABASE_URL: "postgres://app:secret@127.0.0.1:5432/db{i % 7}"',
            f"      WORKERS: '{1 + i % 4}'",
        ]
        if i % 50 != 0:
            kind = i % 3
            if kind == 0:
                out.append(f'    healthcheck: {{ http: "http://127.0.0.1:{port}/", interval: 1s, retries: 3 }}')
            elif kind == 1:
                out.append(f"    healthcheck: {{ tcp: 127.0.0.1:{port}, start_timeout: 30s }}")
            else:
                out.append(f'    healthcheck: {{ exec: "curl -fsS http://127.0.0.1:{port}/", interval: 2s }}')
        if i > 0:
            base = (i // 50) * 50
            dep = i - 1 if (i - 1) % 50 != 0 else base
            condition = "completed_successfully" if dep % 50 == 0 else "healthy"
            out += ["    depends_on:", f"      svc-{dep}: {condition}"]
        if i % 10 == 0:
            out.append("    # keep a few more lines of logs for the busy ones")
            out.append("    logs: { max_size: 50MiB }")
    return "\n".join(out) + "\n"


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 500
    sys.stdout.write(rich(count) if "--rich" in sys.argv else simple(count))


if __name__ == "__main__":
    main()
