"""`orchestr8 eval`: a paired A/B test of two prompt templates or models on a dataset.

The spec comes from a file (`orchestr8 eval spec.json`) or from flags for the common case
(`--a A.json --b B.json --model M --dataset D.jsonl`); `_llm/_eval_arms.evaluate` calls both
arms through the provider catalog (`--providers`) and the output cache (`--cache`), and the report
(`_llm/_eval_report`) is printed as tables or, with `--json`, as one document. Exit codes: 0 when
B is not significantly worse on any dimension, 2 when it is (for CI), 1 for bad input or calls
that failed, 130 when SIGINT or SIGTERM stopped it (see `docs/eval.md`). The first signal
cancels the calls in flight and says how many outputs this run cached (a rerun carries on from
them); a second one exits at once. Progress goes to stderr. Heavy imports wait until it runs.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING

import asyncclick as click

from .._shell._options import providers_option

if TYPE_CHECKING:
    from .._llm._catalog import ProviderCatalog
    from .._llm._eval_report import EvalReport

__all__ = ["eval_command"]


@click.command("eval")
@click.argument("spec_file", metavar="[SPEC]", required=False)
@click.option("--a", "template_a", metavar="TEMPLATE", help="Arm A's prompt template file.")
@click.option(
    "--b",
    "template_b",
    metavar="TEMPLATE",
    help="Arm B's template (default: A's, to compare models).",
)
@click.option("--model", metavar="PROVIDER:MODEL", help="The model of both arms (or of A).")
@click.option("--model-b", metavar="PROVIDER:MODEL", help="Arm B's model (default: --model).")
@click.option("--dataset", metavar="FILE", help="The inputs: JSON Lines, one object per line.")
@providers_option
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Seed of the call order and the bootstrap.",
)
@click.option(
    "--cache",
    "cache_directory",
    metavar="DIR",
    default=None,
    help="Where outputs are cached (default: ./.orchestr8-eval-cache).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="How many calls at once (default: the spec's, else 4).",
)
@click.option(
    "--allow-small", is_flag=True, help="Accept a dataset of fewer than 20 inputs (low power)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
async def eval_command(
    spec_file: str | None,
    template_a: str | None,
    template_b: str | None,
    model: str | None,
    model_b: str | None,
    dataset: str | None,
    providers_file: str | None,
    seed: int | None,
    cache_directory: str | None,
    concurrency: int | None,
    allow_small: bool,
    as_json: bool,
) -> int:
    """Compare two prompt templates or models on a dataset: paired, seeded, cached.

    Give an eval spec file (SPEC), or the flags --a, --b, --model (--model-b) and --dataset.
    Every input goes to both arms; each output is scored against the expectations (structure,
    constraints, completeness) and the report says per dimension whether B is better, worse or
    not distinguishable, with a 95% interval, a p-value, the effect size and the smallest effect
    the dataset could detect. Exit 2 when B is significantly worse on any dimension.
    """
    from ._support import CommandError, guard

    async def action() -> int:
        from pathlib import Path

        import attrs
        import trio

        from .._llm._eval_arms import evaluate
        from .._llm._eval_cache import DEFAULT_CACHE_DIRECTORY, EvalCache
        from .._llm._eval_spec import eval_spec_from_options, load_eval_spec
        from .._shell._process import ExitCode, open_shutdown_signals, watch_shutdown_signals

        flags = (template_a, template_b, model, model_b, dataset)
        if spec_file is not None and any(flag is not None for flag in flags):
            raise CommandError(
                "give either a spec file or --a/--b/--model/--model-b/--dataset, not both"
            )
        if spec_file is not None:
            spec = load_eval_spec(spec_file)
        else:
            spec = eval_spec_from_options(
                template_a=template_a,
                template_b=template_b,
                model=model,
                model_b=model_b,
                dataset=dataset,
            )
        if seed is not None:
            spec = attrs.evolve(spec, seed=seed)
        catalog = _catalog(providers_file)
        cache = EvalCache(Path(cache_directory or DEFAULT_CACHE_DIRECTORY))
        stop = trio.CancelScope()
        interrupted: list[str] = []

        def graceful(name: str) -> None:
            interrupted.append(name)
            click.echo(f"interrupted ({name}): stopping; interrupt again to exit at once", err=True)
            stop.cancel()

        async def forced(name: str) -> None:
            click.echo(f"interrupted again ({name}): exiting now", err=True)

        report = None
        with open_shutdown_signals() as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(watch_shutdown_signals, signals, graceful=graceful, forced=forced)
                )
                try:
                    with stop:
                        report = await evaluate(
                            spec,
                            catalog=catalog,
                            cache=cache,
                            concurrency=concurrency,
                            allow_small=allow_small,
                            progress=_Progress(),
                        )
                finally:
                    nursery.cancel_scope.cancel()
                    await catalog.aclose()
        if report is None:
            click.echo(
                f"stopped by {interrupted[0]}: {cache.stored} outputs were made and cached by "
                "this run; run the same command again to carry on from them",
                err=True,
            )
            return ExitCode.INTERRUPTED
        _show(report, as_json=as_json)
        # 2, as a failed step is for `run`: the comparison ran, and B failed it.
        return ExitCode.STEP_FAILED if report.b_significantly_worse else ExitCode.OK

    return await guard(action)


def _catalog(providers_file: str | None) -> ProviderCatalog:
    """The provider catalog: the built-ins, then `--providers` (or `$ORCHESTR8_PROVIDERS`)."""
    from .._execution._secrets import Secrets
    from .._llm._catalog import ProviderCatalog
    from ._support import load_providers

    return ProviderCatalog(load_providers(providers_file), secrets=Secrets().lookup)


class _Progress:
    """Progress on stderr: how many outputs need a call, then every tenth of them done."""

    def __init__(self) -> None:
        self._step = 1

    def calls_planned(self, total: int, from_cache: int) -> None:
        click.echo(f"{from_cache} of {total} outputs from the cache", err=True)
        self._step = max((total - from_cache) // 10, 1)

    def call_finished(self, done: int, to_call: int) -> None:
        if done % self._step == 0 or done == to_call:
            click.echo(f"called {done} of {to_call}", err=True)


def _show(report: EvalReport, *, as_json: bool) -> None:
    """Print the report: one JSON document, or the two tables and the verdict line."""
    from .._llm._eval_report import ARM_HEADERS, DIMENSION_HEADERS, arm_rows, dimension_rows
    from ._views import Cell, dump_json, render_table, wants_color

    if as_json:
        click.echo(dump_json(report.to_json()))
        return
    color = wants_color(sys.stdout)
    colours = {"B better": "green", "B worse": "red"}
    rows: list[list[Cell]] = [
        [*row[:-1], (row[-1], colours.get(row[-1]))] for row in dimension_rows(report)
    ]
    click.echo(
        f"{report.inputs} inputs, seed {report.seed}; "
        f"{report.from_cache} of {2 * report.inputs} outputs from the cache"
    )
    click.echo(render_table(DIMENSION_HEADERS, rows, color=color))
    click.echo()
    click.echo(render_table(ARM_HEADERS, arm_rows(report), color=color))
    worse = [result.name for result in report.dimensions if result.verdict == "b_worse"]
    click.echo()
    if worse:
        click.echo(f"B is significantly worse on: {', '.join(worse)}")
    else:
        click.echo("B is not significantly worse on any dimension")
