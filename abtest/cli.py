"""``searchsage abtest ...``: simulate an experiment, aggregate its logs, analyse it.

    searchsage abtest simulate --data DATASET_DIR --out LOGS_DIR [--users N --days D --pre-days P --seed S
                               --effect E --srm S --control-strategy bm25 --treatment-strategy embedding|blend|bm25
                               --treatment-bundle BUNDLE | --treatment-run RUN_DIR
                               --judged-fraction F --model-noise SD --model-bias B --unjudged-relevance zero|sampled]
    searchsage abtest aggregate LOGS_DIR --out DIR [--experiment NAME --arms A,B --long-click-s 35 ...]
    searchsage abtest label --served SERVED --data DATASET_DIR (--student S | --teacher T) --out MODEL_LABELS
    searchsage abtest analyze LOGS_OR_USER_TABLE --control NAME --out DIR [--metrics m1,m2 --experiment NAME
                              --allow-srm --no-cuped --sequential --n-tune N --weights a=1,b=1 --model-labels PATH
                              --test welch|student|z --proportion-test z|welch|student|fisher
                              --variance unpooled|pooled --continuity --relative log|delta|fieller
                              --cuped-baseline adjusted|unadjusted --srm chi2|chi2-yates|binomial
                              --cap METRIC=Q[,METRIC=Q] --cap-quantile Q --cap-ignore-zeros
                              --engine frequentist|bayesian|both --bayes-effect relative|absolute
                              --prior-mean M --prior-stddev S --prior-proper ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from encoders.cli_support import CLIError, command_group, positive_int


def _number(text: str, ok: Callable[[float], bool], expected: str) -> float:
    """``argparse`` type body: ``text`` as a float satisfying ``ok``, else an error saying ``expected``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def _share(text: str) -> float:
    return _number(text, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _fraction(text: str) -> float:
    return _number(text, lambda v: 0 < v <= 1, "a number in (0, 1]")


def _non_negative(text: str) -> float:
    return _number(text, lambda v: v >= 0, "a number >= 0")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value}")
    return value


def _weights(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected ARM=WEIGHT[,ARM=WEIGHT...], got {text!r}") from None
    return out


def _quantile(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a quantile in (0, 1), e.g. 0.999, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a quantile in (0, 1), e.g. 0.999, got {value}")
    return value


def _caps(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, sep, q = part.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected METRIC=QUANTILE[,METRIC=QUANTILE...], got {text!r}")
        out[name.strip()] = _quantile(q)
    return out


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``abtest`` command group."""
    sub = command_group(subparsers, "abtest", "A/B experiments: simulate, aggregate logs, analyse")

    sim = sub.add_parser(
        "simulate", help="simulate an experiment between two retrieval strategies and write event logs",
        description="Precompute each arm's top-K results per judged query, then simulate users (position-"
        "biased clicks driven by judged relevance, dwell times, related searches when results disappoint, a "
        "pre-period for CUPED) and write production-shaped event logs plus served.parquet and judgments.parquet.",
    )
    sim.add_argument("--data", type=Path, help="dataset directory (pins/judgments[/engagements].parquet)")
    sim.add_argument("--synthetic-arena", action="store_true",
                     help="no dataset: random queries/relevance (treatment relevance + --arena-gain)")
    sim.add_argument("--arena-gain", type=float, default=0.0, help="synthetic arena: treatment relevance gain")
    sim.add_argument("--out", required=True, type=Path, help="logs directory to write")
    sim.add_argument("--users", type=positive_int, default=10_000, help="users (default 10000)")
    sim.add_argument("--days", type=positive_int, default=14, help="experiment days (default 14)")
    sim.add_argument("--pre-days", type=int, default=7, help="pre-period days for CUPED (default 7)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--effect", type=float, default=0.0,
                     help="injected relative lift of click probability in treatment (e.g. 0.05)")
    sim.add_argument("--srm", type=_share, default=0.0,
                     help="share of treatment exposures lost from the log, to inject an SRM (e.g. 0.05)")
    sim.add_argument("--experiment", default="searchsage", help="experiment name (default searchsage)")
    sim.add_argument("--control-strategy", default="bm25", choices=["bm25", "embedding", "blend"])
    sim.add_argument("--treatment-strategy", default="embedding", choices=["bm25", "embedding", "blend"],
                     help="bm25 gives an A/A test")
    enc = sim.add_mutually_exclusive_group()
    enc.add_argument("--treatment-bundle", type=Path, help="exported bundle whose query tower embeds the queries")
    enc.add_argument("--treatment-run", type=Path, help="training run dir (tower.pt; needs torch)")
    enc.add_argument("--rankings", type=Path,
                     help="precomputed rankings per arm (parquet: arm, query, pin_ids) with arms control/treatment")
    sim.add_argument("--k", type=positive_int, default=20, help="results per query page (default 20)")
    sim.add_argument("--judged-fraction", type=_fraction, default=1.0,
                     help="share of queries whose served results (all of both arms) are judged with the true grade "
                     "into judgments.parquet (default 1.0: copy the dataset's judgments, as before)")
    sim.add_argument("--model-noise", type=_non_negative, default=0.3,
                     help="stand-in relevance model: Gaussian noise SD in grade units (default 0.3)")
    sim.add_argument("--model-bias", type=_share, default=0.2,
                     help="stand-in relevance model: shrinkage toward the middle of the scale and offset against "
                     "results new in the treatment, in [0, 1) (default 0.2; see docs/abtest.md)")
    sim.add_argument("--unjudged-relevance", choices=["zero", "sampled"], default="zero",
                     help="true relevance of pins the dataset never judged: zero (default, as before) or sampled "
                     "(a random judged grade of the query)")
    sim.set_defaults(func=_cmd_simulate)

    agg = sub.add_parser(
        "aggregate", help="aggregate event logs into the per-user tables (streamed)",
        description="Validate the logs and write users.parquet (per user × segment) and user_days.parquet.",
    )
    agg.add_argument("logs", type=Path, help="logs directory")
    agg.add_argument("--out", required=True, type=Path, help="directory for users.parquet / user_days.parquet")
    _aggregate_flags(agg)
    agg.set_defaults(func=_cmd_aggregate)

    an = sub.add_parser(
        "analyze", help="analyse an experiment and write the results directory",
        description="Test every metric (CUPED, delta method, Holm/BH, guardrails, SRM) and write "
        "OUT/<experiment>/ (summary.json, results.*, timeseries.parquet, relevance_*). Exits 3 on SRM.",
    )
    an.add_argument("source", type=Path, help="logs directory, or users.parquet / a directory holding it")
    an.add_argument("--control", required=True, help="name of the control arm")
    an.add_argument("--out", required=True, type=Path, help="results root; results go to OUT/<experiment>/")
    an.add_argument("--metrics", type=_csv, help="comma-separated metric names (default: the whole catalogue)")
    an.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    an.add_argument("--no-cuped", action="store_true", help="do not use pre-period covariates")
    an.add_argument("--no-segments", action="store_true", help="skip head/torso/tail slices")
    an.add_argument("--sequential", action="store_true", help="add always-valid (sequential) intervals")
    an.add_argument("--n-tune", type=_positive_float,
                    help="planned total users (both arms) where the sequential boundary is tightest; fix it "
                    "before the first look and keep it (default 5000, GrowthBook's default; recorded in summary.json)")
    an.add_argument("--test", choices=["welch", "student", "z"], default="welch",
                    help="mean and ratio metrics: Welch t (default), Student t (pooled variance) or z")
    an.add_argument("--proportion-test", choices=["z", "welch", "student", "fisher"], default="z",
                    help="proportion metrics: z (default), Welch t on p(1-p) (GrowthBook), Student t, "
                    "or Fisher's exact p-value")
    an.add_argument("--variance", choices=["unpooled", "pooled"], default="unpooled",
                    help="proportion variance for the test and CI (default unpooled; pooled = tea-tasting)")
    an.add_argument("--continuity", action="store_true",
                    help="continuity (Yates) correction for proportions (tea-tasting's default)")
    an.add_argument("--relative", choices=["log", "delta", "fieller"], default="log",
                    help="relative-lift CI: log scale (default), symmetric delta method (GrowthBook), Fieller")
    an.add_argument("--cuped-baseline", choices=["adjusted", "unadjusted"], default="adjusted",
                    help="CUPED lift over the adjusted (default) or unadjusted control mean (GrowthBook)")
    an.add_argument("--srm", dest="srm_method", choices=["chi2", "chi2-yates", "binomial"], default="chi2",
                    help="SRM test: chi-square (default), with Yates correction, or exact binomial (two arms)")
    an.add_argument("--cap", dest="caps", type=_caps, action="append",
                    help="percentile capping of a mean/ratio metric's per-user values at a quantile of all users, "
                    "e.g. impressions_per_user=0.999 (repeatable; ratios cap numerator and denominator)")
    an.add_argument("--cap-quantile", type=_quantile,
                    help="cap every mean and ratio metric at this quantile (e.g. 0.999, Statsig's default); "
                    "--cap overrides it per metric (default: no capping)")
    an.add_argument("--cap-ignore-zeros", action="store_true",
                    help="compute the cap quantile over non-zero per-user values only (Statsig)")
    an.add_argument("--engine", choices=["frequentist", "bayesian", "both"], default="frequentist",
                    help="add GrowthBook's Bayesian results (chance to beat control, credible interval, risk) "
                    "beside the frequentist ones (default frequentist)")
    an.add_argument("--bayes-effect", choices=["relative", "absolute"], default="relative",
                    help="Bayesian engine: effect on the relative (default) or absolute scale")
    an.add_argument("--prior-mean", type=float, default=0.0, help="Bayesian prior mean of the relative effect (0)")
    an.add_argument("--prior-stddev", type=_positive_float, default=0.3,
                    help="Bayesian prior stddev of the relative effect (0.3; used with --prior-proper)")
    an.add_argument("--prior-proper", action="store_true",
                    help="use the normal prior (default: improper flat prior, GrowthBook's default)")
    an.add_argument("--weights", type=_weights, help="configured split, e.g. control=1,treatment=1 (default equal)")
    an.add_argument("--allow-srm", action="store_true", help="write results flagged as blocked despite an SRM")
    an.add_argument("--served", type=Path, help="served.parquet (default: next to the input)")
    an.add_argument("--judgments", type=Path, help="judgments.parquet (default: next to the input)")
    an.add_argument("--model-labels", type=Path,
                    help="model_labels.parquet: a relevance model's grade for every served result (query, pin_id, "
                    "grade on the judgments' scale; default: next to the input) → PPI relevance estimates")
    _aggregate_flags(an)
    an.set_defaults(func=_cmd_analyze)

    lab = sub.add_parser(
        "label", help="grade every served result with the relevance student (or teacher) → model_labels.parquet",
        description="Grade every distinct (query, pin) that any arm served (served.parquet) with the distilled "
        "student (features read through Feast, or the source it was trained with) or the teacher, and write "
        "model_labels.parquet (query, pin_id, grade) for `abtest analyze --model-labels`.",
    )
    lab.add_argument("--served", required=True, type=Path, help="served.parquet (arm, query, pin_ids)")
    lab.add_argument("--data", required=True, type=Path, help="dataset directory (pins.parquet: the pin texts)")
    who = lab.add_mutually_exclusive_group(required=True)
    who.add_argument("--student", type=Path, help="student directory (searchsage relevance train-student)")
    who.add_argument("--teacher", type=Path, help="teacher directory (searchsage relevance train-teacher)")
    lab.add_argument("--out", required=True, type=Path, help="model_labels.parquet to write")
    lab.add_argument("--threads", type=positive_int, default=2, help="threads (default 2)")
    lab.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    lab.set_defaults(func=_cmd_label)


def _aggregate_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", help="experiment name (needed when the logs hold several)")
    if p.prog.endswith("aggregate"):
        p.add_argument("--arms", type=_csv, help="expected arms, e.g. control,treatment (others are an error)")
    p.add_argument("--long-click-s", type=float, default=35.0, help="dwell seconds of a long click (default 35)")
    p.add_argument("--pre-days", dest="pre_period_days", type=int, default=14,
                   help="pre-period days before the start used for CUPED (default 14)")
    p.add_argument("--memory-limit", default="1GB", help="memory limit of DuckDB and of the numpy engine's counters (default 1GB)")
    p.add_argument("--threads", type=positive_int, default=2, help="DuckDB threads (default 2)")
    p.add_argument("--aggregate-engine", choices=("auto", "numpy", "duckdb"), default="auto",
                   help="aggregation engine: numpy (streamed record batches, dense per-user counters), duckdb "
                        "(SQL, spills to disk), auto = numpy unless its counters exceed half the memory limit")


def _agg_config(args: argparse.Namespace):
    from abtest.aggregate import AggregateConfig

    return AggregateConfig(
        experiment=args.experiment, arms=getattr(args, "arms", None), long_click_s=args.long_click_s,
        pre_period_days=args.pre_period_days, memory_limit=args.memory_limit, threads=args.threads,
        engine=args.aggregate_engine,
    )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from abtest.simulate.engine import SimConfig, synthetic_arena
    from abtest.simulate.rankings import write_served
    from abtest.simulate.writer import write_simulated_logs

    t0 = time.perf_counter()
    cfg = SimConfig(n_users=args.users, days=args.days, pre_days=args.pre_days, seed=args.seed,
                    effect=args.effect, srm=args.srm, experiment=args.experiment)
    if args.synthetic_arena:
        arena = synthetic_arena(seed=args.seed, k=args.k, treatment_gain=args.arena_gain)
        rankings = None
    elif args.data is None:
        raise CLIError("give --data DATASET_DIR (or --synthetic-arena for a dataset-free run)")
    else:
        from abtest.simulate.dataset import SimulationSetupError, build_dataset_arena
        from abtest.simulate.rankings import bundle_query_encoder, read_served, run_query_encoder

        encoder = None
        if args.treatment_bundle:
            encoder = bundle_query_encoder(args.treatment_bundle)
        elif args.treatment_run:
            encoder = run_query_encoder(args.treatment_run)
        pre = read_served(args.rankings) if args.rankings else None
        if pre is not None and not {"control", "treatment"} <= set(pre):
            raise CLIError(f"file {args.rankings}, column 'arm': expected arms control and treatment, "
                           f"found {sorted(pre)}")
        try:
            built = build_dataset_arena(args.data, args.control_strategy, args.treatment_strategy, k=args.k,
                                        seed=args.seed, query_encoder=encoder, precomputed=pre,
                                        unjudged=args.unjudged_relevance)
        except SimulationSetupError as exc:
            raise CLIError(str(exc)) from None
        arena, rankings = built.arena, built.rankings
    counts = write_simulated_logs(arena, cfg, args.out)
    labels = None
    if rankings is not None:
        labels = _write_labels(args, arena, built.judgments)
        write_served(rankings, args.out / "served.parquet")
    sim_json = args.out / "simulation.json"
    info = json.loads(sim_json.read_text())
    if labels is not None:
        info["labels"] = labels
    info["arms"] = {"control": args.control_strategy, "treatment": args.treatment_strategy,
                    "treatment_encoder": str(args.treatment_bundle or args.treatment_run or args.rankings
                                             or "engagement-centroid")}
    sim_json.write_text(json.dumps(info, indent=2))
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
          + f" in {time.perf_counter() - t0:.1f}s")
    return 0


def _write_labels(args: argparse.Namespace, arena, judgments: dict[str, dict[str, float]]) -> dict:
    """judgments.parquet (the dataset's, or a judged sample), model_labels.parquet, true_grades.parquet."""
    import pyarrow.parquet as pq

    from abtest.simulate.labels import LabelConfig, simulate_labels

    grades = [g for qj in judgments.values() for g in qj.values()]
    lo, hi = (min(grades), max(grades)) if grades else (0.0, 1.0)
    cfg = LabelConfig(judged_fraction=args.judged_fraction, model_noise=args.model_noise,
                      model_bias=args.model_bias, seed=args.seed)
    tables = simulate_labels(arena, lo, hi, cfg)
    if tables["judgments"] is None:
        shutil.copyfile(args.data / "judgments.parquet", args.out / "judgments.parquet")
    else:
        pq.write_table(tables["judgments"], args.out / "judgments.parquet")
    pq.write_table(tables["model_labels"], args.out / "model_labels.parquet")
    pq.write_table(tables["true_grades"], args.out / "true_grades.parquet")
    return {"judged_fraction": cfg.judged_fraction, "model_noise": cfg.model_noise, "model_bias": cfg.model_bias,
            "unjudged_relevance": args.unjudged_relevance, "grade_min": lo, "grade_max": hi}


def _cmd_aggregate(args: argparse.Namespace) -> int:
    from abtest.aggregate import aggregate_logs

    res = aggregate_logs(args.logs, args.out, _agg_config(args))
    summary = {"experiment": res.experiment, "arms": res.arms, "start": res.start, "end": res.end,
               "running_days": res.running_days, "multi_arm_users_excluded": res.multi_arm_users_excluded,
               "seconds": round(res.seconds, 2), "engine": res.engine, "config": res.config}
    (Path(args.out) / "aggregate.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {res.users_path} and {res.user_days_path} ({sum(res.arms.values()):,} users, "
          f"{res.seconds:.1f}s)")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from abtest.analysis import AnalysisConfig, SRMFailed
    from abtest.metrics import UnknownMetricError
    from abtest.pipeline import analyze_path
    from abtest.stats.errors import StatsInputError

    cfg = AnalysisConfig(
        control=args.control, metrics=args.metrics, alpha=args.alpha, cuped=not args.no_cuped,
        segments=not args.no_segments, sequential=args.sequential, weights=args.weights,
        allow_srm=args.allow_srm, memory_limit=args.memory_limit, threads=args.threads, test=args.test,
        proportion_test=args.proportion_test, variance=args.variance, continuity=args.continuity,
        relative=args.relative, cuped_baseline=args.cuped_baseline, srm_method=args.srm_method,
        caps={k: v for d in (args.caps or []) for k, v in d.items()} or None, cap_quantile=args.cap_quantile,
        cap_ignore_zeros=args.cap_ignore_zeros, engine=args.engine, bayes_effect=args.bayes_effect,
        prior_mean=args.prior_mean, prior_stddev=args.prior_stddev, prior_proper=args.prior_proper,
        **({"n_tune": args.n_tune} if args.n_tune is not None else {}),
    )
    try:
        out = analyze_path(args.source, args.out, cfg, experiment=args.experiment, aggregate_config=_agg_config(args),
                           served=args.served, judgments=args.judgments, model_labels=args.model_labels)
    except SRMFailed as exc:
        print(f"searchsage: error: {exc}", file=sys.stderr)
        return 3
    except (UnknownMetricError, StatsInputError) as exc:
        raise CLIError(str(exc)) from None
    res = out.analysis
    if res.blocked:
        print(f"WARNING: sample ratio mismatch (p={res.srm.p_value:.3g}); results written flagged as BLOCKED",
              file=sys.stderr)
    print((out.out_dir / "results.md").read_text())
    print(f"wrote {out.out_dir}")
    return 0


def _cmd_label(args: argparse.Namespace) -> int:
    from abtest.model_labels import label_served
    from encoders.data.schema import DatasetPaths
    from encoders.relevance.scorers import student_scorer, teacher_scorer

    if not args.served.is_file():
        raise CLIError(f"--served {args.served}: file not found (served.parquet: arm, query, pin_ids)")
    scorer = student_scorer(args.student, args.threads) if args.student else teacher_scorer(args.teacher, args.threads)
    table = label_served(args.served, DatasetPaths(args.data).pins, scorer, args.out, progress=not args.no_progress)
    print(f"wrote {args.out}: {table.num_rows} served (query, pin) pairs graded by "
          f"{'student ' + str(args.student) if args.student else 'teacher ' + str(args.teacher)}")
    return 0
