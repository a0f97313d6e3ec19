"""The committed schema.graphql is what `parley schema` prints (regenerate: `parley schema > schema.graphql`)."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from tests.servers import ROOT

if TYPE_CHECKING:
    from services.settings import Settings


def test_schema_file_is_current(settings: Settings) -> None:
    from resolvers.root import print_sdl

    committed = (ROOT / "schema.graphql").read_text()
    assert print_sdl(settings) == committed, "schema changed: run `parley schema > schema.graphql`"


def test_parley_schema_prints_the_same(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "parley", "schema"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "schema.graphql").read_text()
