"""What every command needs, opened lazily so `--help` and config errors cost nothing."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from newsletter.cli.output import SafeConsole, json_text

from newsletter import config as config_module
from newsletter.config import Config
from newsletter.store import open_store


@dataclass
class Context:
    config_path: Path
    _engine: sa.Engine | None = field(default=None, repr=False)
    # False where the DKIM keys were proved by the process this one replaced (`send`'s hand-over).
    probe_keys: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Context":
        return cls(config_path=config_module.config_path(args.config))

    @cached_property
    def config(self) -> Config:
        return config_module.load(self.config_path, probe_keys=self.probe_keys)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = open_store(self.config.store_url)
        return self._engine

    @cached_property
    def console(self) -> SafeConsole:
        """Progress and tables for people, on stderr so stdout stays clean for --json."""
        return SafeConsole(stderr=True)

    @cached_property
    def out(self) -> SafeConsole:
        return SafeConsole(soft_wrap=True)

    def print_json(self, data: Any) -> None:
        sys.stdout.write(json_text(data) + "\n")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
