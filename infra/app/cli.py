"""The `crucible` command line: the whole pipeline or one stage, on a run directory."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from flows.config import RUN_ID, PipelineConfig
from flows.stage import PIPELINE, skips, stage_names
from infra.app.config import PRESETS, ConfigError, load_config
from infra.core.logging_setup import setup_logging
from infra.core.storage import RunDir

log = logging.getLogger("crucible")


TRUST_HELP = (
    "a checkpoint folder (stepN) written with another checkpoint key, to accept: its manifest is re-signed "
    "with this installation's key once its files match it (repeatable)"
)


def _trust_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--trust-checkpoint", dest="trust", action="append", default=[], type=Path, metavar="PATH",
                   help=TRUST_HELP)  # fmt: skip


def _set_option(s: argparse.ArgumentParser, help: str) -> None:
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _config_options(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--config",
        "-c",
        default=None,
        help=f"YAML file or preset ({', '.join(PRESETS)}); default: the run's saved config, else 'demo'",
    )
    _set_option(s, "override a config value, e.g. --set training.max_steps=50 (repeatable)")
    s.add_argument("--run-id", default=None, help="run directory name under runs_dir")


def _stage_parsers(sub: argparse._SubParsersAction) -> None:
    """`crucible run` and one verb per stage (flows/stage.py), with the same options."""
    verbs = {"run": f"run the whole pipeline ({', '.join(stage_names())}); resumes an existing --run-id"}
    verbs |= {stage.name: stage.help for stage in PIPELINE}
    verbs["sweep"] = (
        "curate and tokenize once, train a grid of model shapes and budgets (the sweep section) on the same "
        "shards, and fit scaling laws to their losses"
    )
    trusting = {"run"} | {stage.name for stage in PIPELINE if stage.takes_trust}
    for name, text in verbs.items():
        s = sub.add_parser(name, help=text, description=text)
        _config_options(s)
        if name in trusting:
            _trust_option(s)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crucible", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    _stage_parsers(sub)
    _plan_parser(sub)
    _tool_parsers(sub)
    _operations_parsers(sub)
    _evaluation_parsers(sub)
    return p


def _plan_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("plan", help="compute-optimal tokens, training FLOPs, GPU-hours, cost and energy")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--preset", help="a model preset (exact FLOPs of its shape, attention included)")
    what.add_argument("--params", type=float, help="a bare parameter count (6N FLOPs per token)")
    what.add_argument("--budget", type=float, help="a compute budget in FLOPs (compute-optimal split)")
    s.add_argument(
        "--tokens", type=float, default=None, help="training tokens (default: 20 per parameter, or the fit's optimum)"
    )
    s.add_argument(
        "--fit",
        type=Path,
        default=None,
        metavar="SWEEP_RUN",
        help="size with the scaling law fitted by `crucible sweep` in this run directory instead of the "
        "20-tokens-per-parameter rule",
    )
    s.add_argument(
        "--extrapolation-warning",
        type=float,
        default=10.0,
        metavar="FACTOR",
        help="with --fit: warn when N or D lies more than this many times beyond what the sweep trained (default 10)",
    )
    s.add_argument("--vocab-size", type=int, default=None, help="override the preset's vocabulary")
    s.add_argument("--seq-len", type=int, default=None, help="override the preset's context length")
    s.add_argument("--mfu", type=float, default=0.45, help="model-FLOPs utilisation (default 0.45)")
    s.add_argument("--price-per-gpu-hour", type=float, default=2.0, help="USD (default 2.0)")
    s.add_argument("--price-per-mwh", type=float, default=100.0, help="USD per MWh (default 100)")
    s.add_argument("--pue", type=float, default=1.1, help="data-centre power usage effectiveness")
    s.add_argument(
        "--gpus", type=int, default=None, help="also pick the pipeline/tensor/data-parallel layout for this many GPUs"
    )
    s.add_argument("--gpu-memory", type=float, default=80, help="GB per GPU for --gpus (default 80)")
    s.add_argument("--gpu", default="A100", help="A100 or H100: peak FLOP/s and link speeds for --gpus")
    s.add_argument("--gpus-per-node", type=int, default=8, help="GPUs joined by NVLink (default 8)")
    s.add_argument(
        "--global-batch", type=int, default=None, help="sequences per step for --gpus (default: about 4M tokens)"
    )


def _tool_parsers(sub: argparse._SubParsersAction) -> None:
    """Commands on a run's files or on documents, without the Prefect/Ray runtime."""
    s = sub.add_parser("export", help="write a run's trained model as a Hugging Face folder")
    s.add_argument("run_dir", type=Path, help="e.g. runs/<run-id>")
    s.add_argument("--out", type=Path, default=None, help="destination (default: RUN_DIR/hf)")
    s.add_argument(
        "--force", action="store_true", help="replace --out even if it is a non-empty folder that is not an export"
    )
    s = sub.add_parser("quality-model", help="train the fastText quality classifier from two document sets")
    s.add_argument("--hq", required=True, help="high-quality reference documents (JSONL/Parquet file or folder)")
    s.add_argument(
        "--lq", default=None, help="low-quality documents (default: spam made from --hq by the noise injector)"
    )
    s.add_argument("--out", type=Path, required=True, help="model file to write (.bin); metrics go beside it")
    s.add_argument("--config", "-c", default=None, help="YAML or preset for curation.quality_classifier settings")
    _set_option(s, "override a config value, e.g. --set curation.quality_classifier.epoch=10 (repeatable)")
    s = sub.add_parser("noise", help="copy documents with labelled duplicates, PII and spam planted in them")
    s.add_argument("--input", required=True, help="JSONL/Parquet file or folder of real documents")
    s.add_argument("--out", type=Path, required=True, help="folder for part-*.jsonl and labels.jsonl")
    s.add_argument(
        "--force", action="store_true", help="write into --out even if it holds files that are not a noisy corpus"
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the copies, edits and plants (default 0)")


def _operations_parsers(sub: argparse._SubParsersAction) -> None:
    """Resuming, serving and the Prefect server."""
    s = sub.add_parser(
        "resume",
        help="continue a failed, crashed or interrupted run from where it stopped "
        "(its own flow run, retried; training from its newest valid checkpoint)",
    )
    s.add_argument("run", help="a run id under runs_dir, or a run directory")
    s.add_argument("--runs-dir", default=None, help="where run ids are looked up (default: the demo preset's)")
    _set_option(s, "override a value of the run's saved config (a change under a trained model is refused)")
    _trust_option(s)
    s = sub.add_parser(
        "serve",
        help="serve the pipeline as a Prefect deployment: scheduled (--cron/--interval) "
        "or on demand from the UI; each run gets its own run directory",
    )
    s.add_argument("--config", "-c", default=None, help=f"YAML file or preset ({', '.join(PRESETS)})")
    _set_option(s, "override a config value of every run, e.g. --set training.max_steps=50 (repeatable)")
    s.add_argument("--name", default="scheduled", help="deployment name (default: scheduled)")
    when = s.add_mutually_exclusive_group()
    when.add_argument("--cron", default=None, help="cron schedule, e.g. '0 3 * * 1' (Mondays at 03:00)")
    when.add_argument("--interval", type=float, default=None, help="seconds between runs")
    s.add_argument("--limit", type=int, default=1, help="flow runs at a time (default 1: they share the machine)")
    s.add_argument(
        "--allow-any-run-dir",
        action="store_true",
        help="let a flow run's parameters (run_dir, cfg.runs_dir) name a folder outside runs_dir",
    )
    s = sub.add_parser("server", help="start the Prefect server and UI in the foreground")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=4200, help="port of the API and UI (default 4200)")


def _evaluation_parsers(sub: argparse._SubParsersAction) -> None:
    """Evaluation outside a run, comparisons, human review and the report."""
    s = sub.add_parser(
        "evaluate-model",
        help="evaluate any model (a run or a Hugging Face folder) without a run, e.g. a baseline to compare with",
    )
    s.add_argument("model", type=Path, help="a run directory or a Hugging Face causal-LM folder")
    s.add_argument("--out", type=Path, required=True, help="results JSON to write (samples go beside it)")
    s.add_argument("--config", "-c", default=None, help="YAML or preset for the evaluation settings")
    _set_option(s, "override a config value, e.g. --set evaluation.limit=50 (repeatable)")
    s = sub.add_parser("compare", help="print runs' and baselines' evaluation results side by side")
    s.add_argument("results", nargs="+", help="run directories or results JSON files")
    s = sub.add_parser(
        "eval-sheet", help="write a review sheet (CSV and offline HTML) of a run's generations for people to rate"
    )
    s.add_argument("results", type=Path, help="a run directory or a results JSON file")
    s.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for sheet.csv and sheet.html (default: eval/review/ beside the results)",
    )
    s = sub.add_parser(
        "eval-ratings",
        help="fold a filled-in review sheet into the results: human-rated "
        "truthfulness and each judge's agreement with people (Cohen's kappa)",
    )
    s.add_argument("results", type=Path, help="the run directory or results JSON file the sheet was made from")
    s.add_argument("sheet", type=Path, help="the filled-in sheet.csv")
    s.add_argument(
        "--partial",
        action="store_true",
        help="accept blank ratings and missing rows (counted as unrated in the results)",
    )
    s = sub.add_parser("report", help="rewrite report.md and the loss curve of a run (and refit a sweep's laws)")
    s.add_argument("run_dir", type=Path, help="e.g. runs/<run-id>")


def _runs_dir(overrides: list[str]) -> Path:
    """The runs folder, from a `runs_dir=` override or the default preset, before full validation."""
    for item in reversed(overrides):
        key, _, value = item.partition("=")
        if key.strip() == "runs_dir":
            return Path(value.strip())
    return Path(load_config("demo").runs_dir)


def _resolve(args: argparse.Namespace) -> tuple[PipelineConfig, RunDir]:
    overrides = list(args.overrides)
    if args.run_id is not None and not RUN_ID.fullmatch(args.run_id):
        raise ConfigError(
            f"--run-id {args.run_id[:120]!r} is not a run name: use letters, digits, '.', '_' and '-' "
            f"(starting with a letter or digit)"
        )
    source = args.config
    if source is None and args.run_id:
        # A stage or a resume on an existing run uses the configuration that run was started with.
        saved = _runs_dir(overrides) / args.run_id / "config.yaml"
        source = str(saved) if saved.is_file() else None
    cfg = load_config(source, overrides, args.run_id)
    run_id = cfg.resolved_run_id()
    cfg = cfg.model_copy(update={"run_id": run_id})
    run = RunDir((Path(cfg.runs_dir) / run_id).resolve())
    starters = [stage.name for stage in PIPELINE if stage.starts_run]
    if args.command not in ("run", "sweep") and args.command not in starters and not run.root.exists():
        raise ConfigError(
            f"run directory {run.root} does not exist; run "
            + "".join(f"`crucible {name}` or " for name in starters)
            + "`crucible run` first, or pass the --run-id of an existing run"
        )
    return cfg, run


def run_command(args: argparse.Namespace) -> int:
    from flows.run_lock import check_free
    from infra.app.execute import execute, preflight
    from infra.app.flow_retry import trust_checkpoints

    cfg, run = _resolve(args)
    trust_checkpoints(getattr(args, "trust", []))
    actions = preflight(args.command, cfg, run)
    if args.command == "run" and all(map(skips, actions.values())) and actions and run.report.is_file():
        # Nothing to do: no server, Ray or flow run is started for it.
        kept = [f"{stage}, {action.removeprefix('skip (kept: ').removesuffix(')')}" for stage, action in actions.items()
                if action != "skip"]  # fmt: skip
        print(
            f"run {run.root.name}: every stage is unchanged since it finished (same inputs, config and code"
            + (f"; kept: {'; '.join(kept)}" if kept else "")
            + f"); nothing to do.\nreport: {run.report}\nto redo one stage anyway: crucible <stage> --run-id "
            f"{run.root.name}"
        )
        return 0
    check_free(run)
    log.info("run directory: %s", run.root)
    return execute(args.command, cfg, run, actions=actions)


def export_command(args: argparse.Namespace) -> str:
    from infra.core.output_folder import claim
    from models.export import EXPORT_MARKER, export_hf
    from tasks.tokenization.bpe import check_vocab
    from tasks.tracking.registry import register_export
    from tasks.training.checkpoint import FINAL, load_model

    run = RunDir(args.run_dir)
    claim(args.out or run.root / "hf", EXPORT_MARKER, "exported model", args.force)  # before loading
    model, meta = load_model(run.checkpoints / FINAL)
    if not run.tokenizer.is_file():
        raise ConfigError(f"{run.tokenizer} not found; is {run.root} a Crucible run directory?")
    check_vocab(run.tokenizer, meta["vocab_size"])
    dest = args.out or run.root / "hf"
    cls = export_hf(model, run.tokenizer, dest, force=args.force)
    registered = register_export(run.root, Path(dest))  # None when the run is not tracked in MLflow
    return f"wrote {dest} ({cls}); load it with transformers.AutoModelForCausalLM.from_pretrained" + (
        f"\n{registered}" if registered else ""
    )


def plan_command(args: argparse.Namespace) -> str:
    from models.presets import get_preset
    from models.sizing import describe, plan_budget, plan_model, plan_parameters

    if not 0 < args.mfu <= 1:
        raise ConfigError(f"--mfu must be in (0, 1], got {args.mfu}")
    if args.fit is not None:
        return fitted_plan_text(args)
    if args.preset:
        p = get_preset(args.preset)
        plan = plan_model(p.model, args.vocab_size or p.vocab_size, args.seq_len or p.seq_len, args.tokens)
        head = f"model preset {args.preset} ({p.note})"
    elif args.params:
        plan, head = plan_parameters(args.params, args.tokens), f"{args.params:,.0f} parameters"
    else:
        plan, head = plan_budget(args.budget), f"compute budget {args.budget:.3e} FLOPs"
    out = head + "\n" + describe(plan, args.mfu, args.price_per_gpu_hour, args.price_per_mwh, args.pue)
    if args.gpus:
        out += "\n\n" + layout_text(args)
    return out


def fitted_plan_text(args: argparse.Namespace) -> str:
    """`plan --fit`: N and D from a sweep's fitted law, then the same cost lines as the rule's plan."""
    from models.flops import embedding_parameters
    from models.presets import get_preset
    from models.sizing import describe, plan_model, plan_parameters
    from tasks.scaling.planning import fitted_plan, load_fit

    fit, counted = load_fit(args.fit)
    if args.budget:
        fp = fitted_plan(fit, counted, budget=args.budget, factor=args.extrapolation_warning)
        head = f"compute budget {args.budget:.3e} FLOPs, sized by the law fitted in {args.fit}"
        plan = plan_parameters(fp.parameters, fp.tokens)
    elif args.params:
        fp = fitted_plan(fit, counted, parameters=args.params, tokens=args.tokens, factor=args.extrapolation_warning)
        head = f"{args.params:,.0f} parameters ({counted.replace('_', '-')}), law fitted in {args.fit}"
        plan = plan_parameters(fp.parameters, fp.tokens)
    else:
        p = get_preset(args.preset)
        vocab, seq = args.vocab_size or p.vocab_size, args.seq_len or p.seq_len
        n = plan_model(p.model, vocab, seq).parameters
        if counted == "non_embedding":
            n -= embedding_parameters(p.model, vocab, seq)
        fp = fitted_plan(fit, counted, parameters=n, tokens=args.tokens, factor=args.extrapolation_warning)
        head = (
            f"model preset {args.preset} ({p.note}; {n:,} {counted.replace('_', '-')} parameters), "
            f"law fitted in {args.fit}"
        )
        plan = plan_model(p.model, vocab, seq, fp.tokens)
    return "\n".join([head, *fp.lines, describe(plan, args.mfu, args.price_per_gpu_hour, args.price_per_mwh, args.pue)])


def layout_text(args: argparse.Namespace) -> str:
    from models.presets import get_preset
    from tasks.training.parallel.layout_search import (
        Shape,
        cluster,
        default_global_batch,
        describe_layout,
        plan_layout,
        shape_for_parameters,
    )

    if args.gpus < 1 or args.gpu_memory <= 0:
        raise ConfigError(f"--gpus must be at least 1 and --gpu-memory positive, got {args.gpus} and {args.gpu_memory}")
    if args.preset:
        p = get_preset(args.preset)
        shape = Shape(p.model, args.vocab_size or p.vocab_size, args.seq_len or p.seq_len)
        what = f"preset {args.preset}"
    elif args.params:
        shape = shape_for_parameters(args.params, args.vocab_size or 50257, args.seq_len or 2048)
        m = shape.model
        what = f"a GPT-3-like shape: {m.n_layer} layers, d_model {m.d_model}, {m.n_head} heads"
    else:
        raise ConfigError("--gpus needs a model: give --preset or --params")
    try:
        cl = cluster(args.gpus, args.gpu_memory, args.gpu, args.gpus_per_node)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    batch = args.global_batch or default_global_batch(shape.seq_len)
    return f"layout ({what}):\n" + describe_layout(plan_layout(shape, cl, batch))


def quality_model_command(args: argparse.Namespace) -> str:
    from tasks.curation.output_files import CurationPaths
    from tasks.curation.training_sets import train_quality

    cfg = load_config(args.config, args.overrides).curation
    qc = cfg.quality_classifier.model_copy(update={"hq_path": args.hq, "lq_path": args.lq})
    cfg = cfg.model_copy(update={"quality_classifier": qc})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = train_quality(Path(args.hq), cfg, CurationPaths(args.out.parent), model_path=args.out)
    m = result["metrics"]
    return (
        f"wrote {args.out}: held-out precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
        f"f1 {m['f1']:.3f}; use it with --set curation.quality_classifier.enabled=true "
        f"--set curation.quality_classifier.model_path={args.out}"
    )


def noise_command(args: argparse.Namespace) -> str:
    from infra.core.output_folder import claim
    from tasks.curation.config import CurationConfig
    from tasks.curation.noise import NOISE_MARKER, NoiseConfig, write_noisy_corpus
    from tasks.curation.training_sets import iter_documents

    cfg = CurationConfig()
    claim(args.out, NOISE_MARKER, "noisy corpus", args.force)  # before reading the input
    docs = [{"id": d.id, "text": d.text, "source": d.source} for d in iter_documents(Path(args.input), cfg)]
    counts = write_noisy_corpus(docs, args.out, NoiseConfig(seed=args.seed), force=args.force)
    # Beside the corpus, not in it: a labels.jsonl inside would be read as input documents.
    labels = args.out.parent / f"{args.out.name}-labels.jsonl"
    (args.out / "labels.jsonl").replace(labels)
    return f"wrote {args.out} ({len(docs)} input documents): {counts}; ground truth in {labels}"


def evaluate_model_command(args: argparse.Namespace) -> str:
    from tasks.evaluation.evaluate import evaluate_model
    from tasks.evaluation.summary import compare_table

    cfg = load_config(args.config, args.overrides).evaluation
    evaluate_model(args.model, cfg, args.out)
    return (
        compare_table([args.out])
        + f"\n\nwrote {args.out}; compare it with a run: crucible compare runs/<run-id> {args.out}"
    )


def eval_sheet_command(args: argparse.Namespace) -> str:
    from tasks.evaluation.review import write_sheet

    csv_path, html_path, n = write_sheet(args.results, args.out)
    return (
        f"wrote {n} generations to rate: {csv_path} (any spreadsheet) and {html_path} (a form that works "
        f"offline and saves ratings.csv); fold them in with: crucible eval-ratings {args.results} <filled.csv>"
    )


def eval_ratings_command(args: argparse.Namespace) -> str:
    from tasks.evaluation.review import fold_ratings, results_file
    from tasks.evaluation.summary import compare_table

    summary = fold_ratings(args.results, args.sheet, args.partial)
    if args.results.is_dir() and (args.results / "checkpoints").is_dir():  # a run: its report shows them too
        from tasks.report import write_report

        write_report(args.results)
    lines = [
        f"{task}: " + ", ".join(f"{k} {v if not isinstance(v, float) else round(v, 4)}" for k, v in t.items())
        for task, t in summary["tasks"].items()
    ]
    return compare_table([results_file(args.results)]) + "\n\n" + "\n".join(lines)


def compare_command(args: argparse.Namespace) -> str:
    from tasks.evaluation.summary import compare_table

    return compare_table(args.results)


def main(argv: list[str] | None = None) -> int:
    from flows.run_lock import RunLocked  # light: stdlib and infra.core only
    from infra.app import startup
    from tasks.corpus.demo import CorpusUnavailable  # light: stdlib, tqdm and infra only

    # A command that starts a runtime says at its end where its start-up time went; counted
    # from the process's start when the command is the process.
    clock = startup.begin(from_process_start=argv is None)
    if argv is None:  # the interpreter's start-up and the CLI's imports
        clock.add("imports", time.monotonic() - clock.start)
    clock.checks_from = time.monotonic()  # config, preflight and the run's lock, until the runtime starts
    args = _parser().parse_args(argv)
    setup_logging()
    try:
        if args.command == "server":
            from infra.app.prefect_server import check_bind, server_command, server_env

            check_bind(args.host)
            env = server_env(args.host, args.port)
            command = server_command(args.host, args.port)
            print(f"Prefect UI: {env['PREFECT_UI_API_URL'].removesuffix('/api')}", flush=True)
            os.execve(command[0], command, env)
        # Commands that run without the Prefect/Ray runtime and print one result.
        direct = {
            "plan": plan_command,
            "export": export_command,
            "quality-model": quality_model_command,
            "noise": noise_command,
            "evaluate-model": evaluate_model_command,
            "compare": compare_command,
            "eval-sheet": eval_sheet_command,
            "eval-ratings": eval_ratings_command,
        }
        if args.command in direct:
            print(direct[args.command](args))
            return 0
        if args.command == "resume":
            from infra.app.flow_retry import resume_command

            return resume_command(args.run, args.runs_dir, args.overrides, args.trust)
        if args.command == "serve":
            from infra.app.serve import serve_command

            return serve_command(
                load_config(args.config, args.overrides),
                args.name,
                args.cron,
                args.interval,
                args.limit,
                args.allow_any_run_dir,
            )
        if args.command == "report":
            from tasks.report import write_report
            from tasks.scaling.records import SWEEP_FILE

            if (args.run_dir / SWEEP_FILE).is_file():
                from tasks.scaling.report import write_sweep_report

                print(write_sweep_report(args.run_dir))
                return 0
            print(write_report(args.run_dir))
            return 0
        return run_command(args)
    # Problems the user fixes (config, input, missing stage output): the message, no traceback.
    # ConfigError and InputError are ValueErrors.
    except (ValueError, FileNotFoundError, CorpusUnavailable, RunLocked) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run with the same --run-id to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
