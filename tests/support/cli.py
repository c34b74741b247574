"""Run the real `newsletter` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_cli(*args: str, config: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl", **(env or {})}
    cmd = [sys.executable, "-m", "newsletter"]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def run_json(*args: str, config: Path | None = None, **kw: Any) -> tuple[int, Any]:
    proc = run_cli(*args, "--json", config=config, **kw)
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not JSON: {proc.stdout!r}\nstderr: {proc.stderr}") from exc
    return proc.returncode, data
