"""Where the end-to-end tests find the CLI, the debug preset's relative paths and their server."""
import sys
from pathlib import Path

CRUCIBLE = str(Path(sys.executable).parent / "crucible")
ROOT = Path(__file__).resolve().parents[2]  # the debug preset's paths are relative to it
PORT = 4219  # not the default 4200, so a developer's own server is left alone
