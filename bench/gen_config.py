#!/usr/bin/env python3
"""Writes a procs.yaml with N processes in one dependency chain (default 500).

Used to time config loading, e.g.
    python3 bench/gen_config.py > /tmp/big500.yaml
    procs -f /tmp/big500.yaml config
(see docs/performance.md, "Config loading").
"""
import sys


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    lines = ["processes:"]
    for i in range(count):
        lines.append(f"  p{i}:\n    command: [sleep, '1000']\n    env: {{ INDEX: '{i}' }}")
        if i > 0:
            lines.append(f"    depends_on: [p{i-1}]")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
