"""Shared test set-up: the repository root as working directory (so preset paths resolve),
the services a session starts once (tests/services.py), and the session's debug pipeline run."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.services import CRUCIBLE, PipelineRun, Services

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--order",
        choices=("tiers", "random", "reverse"),
        default="tiers",
        help="tiers (default): the slow tiers first, longest first (root, e2e, integration), then the fast "
        "tier, each in pytest-randomly's order; random: pytest-randomly's order throughout; reverse: tiers, "
        "reversed (an order-dependence check)",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist: workers inherit this
        shared = config._tmp_path_factory.getbasetemp() / "shared"  # type: ignore[attr-defined]  # pytest's own
        shared.mkdir(exist_ok=True)
        os.environ[services.SHARED_ENV] = str(shared)
        # Every Prefect CLI and server the tests start: a home of the session's own.
        os.environ["PREFECT_HOME"] = str(shared / "prefect-home")
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        # Ray's token auth, with a token of the session's own: a Ray cluster joined by address
        # needs it (on a fresh machine there is no ~/.ray/auth_token yet), as on a real cluster.
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
        # Checkpoints are signed with a key of the session's own, not the user's ~/.config one.
        os.environ["CRUCIBLE_CHECKPOINT_KEY"] = str(shared / "checkpoint.key")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and services.SHARED_ENV in os.environ:
        services.stop_all(services.shared_dir())


TIERS = ("root", "e2e", "integration")  # the order they run in: the longest modules first


def _tier(item: pytest.Item) -> int:
    return next((i for i, t in enumerate(TIERS) if item.get_closest_marker(t)), len(TIERS))


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle, which this keeps within each tier
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # every tier is slow: `-m "not slow"` stays the fast tier
        if _tier(item) < len(TIERS) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    order = config.getoption("--order")
    if order != "random":
        # Two workers finish together when the long modules start first and the fast tier
        # fills the gaps at the end (pytest-xdist hands out whole files in this order).
        items.sort(key=_tier)
    if order == "reverse":
        items.reverse()


@pytest.fixture(autouse=True)
def _repo_root_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="session")
def prefect_server() -> dict:
    """The session's Prefect server: {"port", and "database" when it runs on PostgreSQL, else "why_not"}."""
    return services.once("prefect", services.start_prefect)


@pytest.fixture(scope="session")
def prefect_api(prefect_server: dict) -> str:
    return f"http://127.0.0.1:{prefect_server['port']}/api"


@pytest.fixture(scope="session")
def e2e(prefect_server: dict) -> Services:
    """The shared Prefect server and Ray head, for `crucible` commands run end to end."""
    ray = services.once("ray", services.start_ray)
    return Services(prefect_server["port"], ray["address"])


@pytest.fixture(scope="session")
def pipeline_run(e2e: Services) -> Iterator[PipelineRun]:
    """The debug pipeline run once, through the shared Prefect server, Ray head and real
    DeepSpeed. Tests read it or copy it; each worker checks at its end that none changed it."""

    def run() -> dict:
        runs = services.shared_dir() / "runs"
        done = subprocess.run(
            [CRUCIBLE, "run", "-c", "debug", "--run-id", "e2e", "--set", f"runs_dir={runs}", *e2e.runtime_sets()],
            capture_output=True, text=True, timeout=1200, cwd=ROOT,
        )  # fmt: skip
        (services.shared_dir() / "logs" / "pipeline-run.log").write_text(done.stdout + done.stderr)
        match = re.search(rf"flow run: {e2e.ui}/v2/runs/flow-run/([0-9a-f-]+)", done.stdout)
        if done.returncode != 0 or match is None:
            return {"error": (done.stdout[-3000:] + done.stderr[-3000:])}
        root = runs / "e2e"
        return {"root": str(root), "flow_run_id": match.group(1), "snapshot": services.snapshot(root)}

    info = services.once("pipeline-run", run)
    assert "error" not in info, info["error"]
    from infra.core.storage import RunDir

    root = Path(info["root"])
    yield PipelineRun(RunDir(root), uuid.UUID(info["flow_run_id"]))
    now = services.snapshot(root)
    changed = sorted(k for k in now.keys() | info["snapshot"].keys() if now.get(k) != info["snapshot"].get(k))
    assert not changed, f"a test changed the session's pipeline run (copy it instead): {changed[:20]}"


def _doc_texts(source: str, n: int) -> list[str]:
    """Distinct documents of varied length, so rows pack several of them and split some."""
    return [
        f"{source} document {i}: " + " ".join(f"{source[:3]}{(i * 7 + j) % 53}" for j in range(5 + (i * 13) % 40))
        for i in range(n)
    ]


def build_token_run(root: Path, docs_per_source: dict[str, int], files: int = 2, **cfg_kw) -> Path:
    """Curated Parquet shards with the given documents per source, a BPE and token shards,
    laid out as a run directory (`root/curated`, `root/tokenizer`, `root/shards`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from infra.core.storage import write_json
    from tasks.tokenization.bpe import prepare_tokenizer
    from tasks.tokenization.config import TokenizationConfig
    from tasks.tokenization.manifest import build_manifest
    from tasks.tokenization.shards import tokenize_shard

    cfg = TokenizationConfig(**{"vocab_size": 300, "seq_len": 16, "val_fraction": 0.2, **cfg_kw})
    rows = [
        {"id": f"{s}-{i}", "text": t, "source": s}
        for s, n in docs_per_source.items()
        for i, t in enumerate(_doc_texts(s, n))
    ]
    curated = []
    for f in range(files):
        path = root / "curated" / f"part-{f:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows[f::files]), path)
        curated.append(path)
    tok_path = root / "tokenizer" / "tokenizer.json"
    prepare_tokenizer(curated, cfg, tok_path)
    out = root / "shards"
    entries = [e for i, p in enumerate(curated) for e in tokenize_shard(p, i, tok_path, cfg, out)]
    write_json(out / "manifest.json", build_manifest(entries, tok_path, cfg))
    return out


@pytest.fixture()
def make_token_shards(tmp_path: Path):
    """Build curated Parquet shards with the given documents per source, a BPE and token shards."""

    def make(docs_per_source: dict[str, int], files: int = 2, name: str = "run", **cfg_kw):
        return build_token_run(tmp_path / name, docs_per_source, files, **cfg_kw)

    return make


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a module's browser tests (tests/browser.py)."""
    from tests.browser import chromium

    with chromium() as driver:
        yield driver


@pytest.fixture()
def shots(tmp_path) -> Path:
    """Where a test's screenshots go: $CRUCIBLE_SCREENSHOTS, or its temporary folder."""
    from tests.browser import screenshot_folder

    return screenshot_folder(tmp_path)
