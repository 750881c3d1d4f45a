"""The report's sections, in order (``SECTIONS``): each reads a :class:`ReportContext`, writes its tables and
figures, and returns its blocks for report.md and report.html, or [] to be left out.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from w2p_eval.data.manifest import load_info
from w2p_eval.errors import InputError
from w2p_eval.metrics.registry import SUITES, get_suite
from w2p_eval.report import agreement as A
from w2p_eval.report import judges as J
from w2p_eval.report import figures as F
from w2p_eval.report import reference
from w2p_eval.report.attributes import attributes_section
from w2p_eval.report.comparison import comparison_frame, describe
from w2p_eval.report.recent import TITLE as RECENT_TITLE, recent_section
from w2p_eval.report import render as R
from w2p_eval.report import tables as T
from w2p_eval.report.metrics_info import declared, info, sort_metrics
from w2p_eval.report.samples import sample_grid_figure
from w2p_eval.text import md_code, md_text
from w2p_eval.utils import git_commit

EPOCH_FIGURE_METRICS = ("identity_top1_fake", "landmark_detection_rate", "gallery_r1", "matching_1to2",
                        "retrieval_r1", "cosine_own_centroid", "frechet_face", "landmark_nme")
PROTOCOL_FIGURE_METRICS = ("identity_top1_fake", "gallery_r1", "matching_1to2", "paired_cosine")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


def _data_statement(data_dir, df: pd.DataFrame) -> list[str]:
    lines = []
    if data_dir is not None:
        try:
            meta = load_info(data_dir)
            lines.append(f"Data: {md_code(data_dir)} (kind {md_text(meta.get('kind'))}, "
                         f"{len(meta.get('identities', []))} identities, {md_text(meta.get('n_pairs'))} speech-face "
                         f"pairs, built with seed {md_text(meta.get('seed'))}).")
        except InputError as exc:
            lines.append(f"Data folder given but unreadable: {md_text(exc)}")
    hashes = sorted(set(df["data_hash"].astype(str)))
    lines.append(f"Manifest hash(es) of the evaluated data: {', '.join(md_code(h) for h in hashes)}.")
    for protocol in sorted(set(df["protocol"])):
        desc = ("seen speakers: the same identities in train and test, test faces from other source segments "
                "(no face copy and no overlapping audio across the split)" if protocol == "seen" else
                "unseen speakers: test identities never appear in training")
        splits = sorted(set(df.loc[df["protocol"] == protocol, "split"].astype(str)))
        lines.append(f"Split protocol {md_code(protocol)} ({desc}); evaluated split(s): "
                     f"{', '.join(md_text(s) for s in splits)}.")
    seeds = sorted(int(s) for s in set(df["seed"]))
    lines.append(f"Evaluation seeds: {', '.join(map(str, seeds))} (tables show mean ± std over these seeds "
                 f"where there are several).")
    evals = df.drop_duplicates(["evaluator", "evaluator_version"])
    lines.append("Judges: " + "; ".join(f"{md_code(e)} {md_text(v or '')}".strip() for e, v in
                                         zip(evals["evaluator"], evals["evaluator_version"])) + ".")
    judges = A.identity_judges(df)
    if len(judges) > 1:
        lines.append(f"Identity judges: {', '.join(md_code(j) for j in judges)}; every table but \"Judge agreement\" "
                     f"shows the primary judge {md_code(judges[0])}.")
    lines.append("Real test faces go through the same resolution pipeline as generated ones (resized to the "
                 "generator's output size before any judge sees them).")
    return lines


@dataclass


class ReportContext:
    """What every report section reads: the rows, the runs, where tables and figures go, the options."""

    df: pd.DataFrame
    runs: list
    data_dir: object
    seed: int
    command: str | None
    samples: bool
    store: Path
    compared: list
    tab_dir: Path
    fig_dir: Path
    all_rows: pd.DataFrame | None = None  # every row, all identity judges (``df``: the primary judge's view)

    @property
    def rows(self) -> pd.DataFrame:
        return self.df if self.all_rows is None else self.all_rows

    @property
    def judges(self) -> list[str]:
        """The identity judges of the rows, primary first (``report.agreement.identity_judges``)."""
        return A.identity_judges(self.rows)

    @property
    def fin(self) -> pd.DataFrame:
        return T.final_rows(self.df)

    @property
    def run_audio(self) -> dict:
        return {r.name: r.audio_seconds for r in self.runs if r.audio_seconds is not None}

    def table(self, frame: pd.DataFrame, name: str, caption: str) -> None:
        """Write ``frame`` as tables/NAME.{csv,md,tex}."""
        T.write_table(frame, self.tab_dir, name, caption)


def _n_identities(data_dir) -> int | None:
    if data_dir is None:
        return None

    try:  # dataset.json only: the report reads no manifest row (and reports no row skips)
        return len(load_info(data_dir)["identities"])
    except InputError:
        return None


def setup_section(ctx: ReportContext) -> list:
    blocks = [R.h2("Setup"), R.ul(_data_statement(ctx.data_dir, ctx.rows))]
    if ctx.command:
        blocks += [R.p("Command line:"), R.code(ctx.command)]
    return blocks + [R.p(f"Generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} by w2p-eval "
                         f"(git commit `{git_commit() or 'unknown'}`).")]


# The main table is shown in groups of the suites' metrics (one readable table each); suites not named here
# are a group of their own, titled by their name.
MAIN_GROUPS = {"identity": "identity", "retrieval": "protocols", "distances": "protocols", "matching": "protocols",
               "landmarks": "landmarks", "speaker": "speaker", "diversity": "recent", "consistency": "recent",
               "verification": "recent", "coverage": "recent", "inception": "recent", "vggface_score": "recent"}
GROUP_TITLES = {"identity": "Identity (the paper's judge) and face-space metrics",
                "protocols": "Retrieval, paired distances and matching", "landmarks": "Landmarks",
                "speaker": "Speech-only speaker ID", "recent": "Diversity, consistency, verification, coverage"}
# groups that have a section of their own further down (same cells, more context): a pointer, not a copy
GROUP_SECTIONS = {"protocols": "Retrieval, distances and matching", "landmarks": "Landmark detection",
                  "recent": RECENT_TITLE}


def _own_section(group: str, cols: list[str]) -> str | None:
    """The title of the later section that shows ``group``'s metrics, or None."""
    if group in GROUP_SECTIONS:
        return GROUP_SECTIONS[group]
    for name in SUITES:
        section = get_suite(name).report_section()
        if section is not None and set(cols) <= set(section.metrics):
            return section.title
    return None


def metric_groups(metrics) -> list[tuple[str, list[str]]]:
    """``metrics`` split by the suite that declares them (MAIN_GROUPS), in suite order; undeclared ones last."""
    wanted, groups = list(metrics), {}
    for name in SUITES:
        group = MAIN_GROUPS.get(name, name)
        for spec in get_suite(name).metrics:
            if spec.name in wanted:
                groups.setdefault(group, []).append(spec.name)
    seen = {m for ms in groups.values() for m in ms}
    rest = [m for m in wanted if m not in seen]
    if rest:
        groups["other"] = rest
    return [(g, [m for m in wanted if m in ms]) for g, ms in groups.items()]


def main_section(ctx: ReportContext) -> list:
    num, txt = T.main_table(ctx.df)
    ctx.table(num, "main_numeric", "Models and baselines x metrics (means, fractions).")
    judges = ctx.judges
    note = " Identity and protocol metrics: primary judge {} (the others under \"Judge agreement\")."
    judge_note = note.format(md_code(judges[0])) if len(judges) > 1 else ""
    ctx.table(txt, "main", "Models and baselines x metrics (final checkpoint; value [95 % CI], or mean ± std over "
                           "seeds)." + (note.format(judges[0]) if len(judges) > 1 else ""))
    blocks = [R.h2("Models and baselines"),
              R.p("Each run's final checkpoint, one table per group of metrics (the whole table: "
                  "`tables/main.csv`). Rates in %. One evaluation seed: value [95 % interval] (seeded cluster "
                  "bootstrap over test faces); several seeds: mean ± std over them. '–': no value." + judge_note)]
    metrics = [c for c in txt.columns if c not in ("model", "epoch")]
    elsewhere = []
    for group, cols in metric_groups(metrics):
        title = GROUP_TITLES.get(group, group.replace("_", " ").capitalize())
        sub = txt[["model", "epoch", *cols]]
        sub = sub[(sub[cols] != "–").any(axis=1)].rename(columns={m: info(m).label for m in cols})
        if sub.empty:
            continue
        section = _own_section(group, cols)
        if section:
            elsewhere.append(f"{title}: \"{section}\"")
        else:
            blocks += [R.h3(title), R.table(sub)]
    if elsewhere:
        blocks.append(R.p("In their own sections below: " + "; ".join(elsewhere) + "."))
    return blocks


def protocols_section(ctx: ReportContext) -> list:
    proto = T.protocol_table(ctx.df)
    if proto.empty:
        return []
    ctx.table(proto, "protocols", "Gallery retrieval, paired distances and 1:N matching, 95 % CIs.")
    blocks = [R.h2("Retrieval, distances and matching"),
              R.p("The field's protocols in the identity judge's face space: SF2F gallery recall@K (galleries "
                  "of G identities' mean real embeddings, chance K/G), paired cosine/L1/L2 between each "
                  "generated face and its own real face, and 1:N matching (chance 1/N) beside its real-vs-real "
                  "ceiling. Brackets: 95 % intervals (cluster bootstrap over faces)."), R.table(proto)]
    bars = F.metric_bars(ctx.fin, list(PROTOCOL_FIGURE_METRICS), ctx.fig_dir, "protocols",
                         "final checkpoints: value with 95 % interval (dotted: chance)")
    if bars:
        blocks.append(R.figure(bars, "Each run's final value with its 95 % interval as error bars."))
    return blocks


def comparison_section(ctx: ReportContext) -> list:
    blocks = []
    for k, result in enumerate(ctx.compared):
        cmp = comparison_frame(result)
        ctx.table(cmp, f"compare_{k + 1}", describe(result))
        if k == 0:
            blocks.append(R.h2("Paired comparisons"))
        blocks += [R.p(md_text(describe(result))),
                   R.table(cmp, "A − B: paired cluster-bootstrap 95 % interval (rates in percentage points); McNemar: "
                                "exact test on discordant items (b = A right & B wrong, c = A wrong & B right).")]
    return blocks


def reference_section(ctx: ReportContext) -> list:
    ref = T.reference_table(ctx.df, ctx.run_audio, _n_identities(ctx.data_dir))
    ctx.table(ref, "paper_reference", f"Paper-reported numbers ({reference.CITATION}) beside ours.")
    return [R.h2("Paper reference numbers (reported, not reproduced)"),
            R.p(f"Numbers reported by {reference.CITATION} on their 10-identity Youtubers data with a fine-tuned "
                "VGG-Face judge, shown beside ours; the data, identity count and judges differ, so compare "
                "each against its own chance level and ceiling, not against each other."),
            R.table(ref)]


def ablation_section(ctx: ReportContext) -> list:
    df, run_audio = ctx.df, ctx.run_audio
    if len({round(s, 6) for r, s in run_audio.items() if r in set(df.loc[df.model == "wav2pix", "run"])}) <= 1:
        return []
    abl = T.ablation_table(df, run_audio)
    ctx.table(abl, "ablation_audio", "Audio-length ablation (WAV2PIX).")
    return [R.h2("Audio-length ablation"), R.table(abl, "Paper column: reported landmark detection rate.")]


def landmark_section(ctx: ReportContext) -> list:
    lmk = T.landmark_table(ctx.df)
    if lmk.empty:
        return []
    ctx.table(lmk, "landmarks", "Landmark detection rate and NME with 95 % intervals.")
    return [R.h2("Landmark detection"),
            R.p("Share of faces on which all 68 landmarks are found, with its 95 % interval, beside "
                "the same rate on the real test faces at the generator's resolution."), R.table(lmk)]


def suite_sections(ctx: ReportContext) -> list:
    """Sections the metric suites contribute (``MetricSuite.report_section``): their metrics as a table."""
    blocks = []
    for name in SUITES:
        section = get_suite(name).report_section()
        if section is None:
            continue
        sub = ctx.df[ctx.df["metric"].isin(section.metrics)]
        if sub.empty:
            continue
        _, txt = T.main_table(sub)
        ctx.table(txt, section.name, section.title)
        blocks += [R.h2(section.title), R.p(section.intro), R.table(txt)]
    return blocks


def per_identity_section(ctx: ReportContext) -> list:
    per_id = T.per_identity_table(ctx.df)
    if per_id.empty:
        return []
    ctx.table(per_id, "per_identity", "Per-identity top-1 accuracy on generated faces.")
    return [R.h2("Per-identity accuracy"), R.table(per_id, "Top-1 identity accuracy per speaker.")]


def epochs_section(ctx: ReportContext) -> list:
    df = ctx.df
    blocks = [R.h2("Metrics vs epoch")]
    for run in sorted(df["run"].unique()):
        if df.loc[df["run"] == run, "epoch"].nunique() > 1:
            et = T.epoch_table(df, run)
            ctx.table(et, f"epochs_{_slug(run)}", f"{run}: metrics per checkpoint.")
            blocks.append(R.table(et, f"{run}: every metric per checkpoint."))
    for metric in EPOCH_FIGURE_METRICS:
        path = F.metric_vs_epoch(df, metric, ctx.fig_dir)
        if path:
            blocks.append(R.figure(path, f"{info(metric).label} per checkpoint; dashed lines: baselines."))
    return blocks


def samples_section(ctx: ReportContext) -> list:
    if not ctx.samples:
        return []
    protocol = ctx.df["protocol"].mode().iloc[0]
    grid, notes = sample_grid_figure(ctx.df, ctx.store, ctx.data_dir, ctx.fig_dir, protocol, ctx.seed)
    blocks = [R.h2("Samples")]
    if grid:
        blocks.append(R.figure(grid, "Rows: test speakers (first test pair each). Columns: the real face, then "
                                     "each model/checkpoint's face generated from that speech."))
    return blocks + [R.p(f"Not drawn: {md_text(n)}") for n in notes]


def overlays_section(ctx: ReportContext) -> list:
    fin = ctx.fin
    overlays = fin[fin["metric"] == "landmark_detection_rate"].sort_values("seed").drop_duplicates("run")
    blocks = []
    for _, row in overlays.iterrows():
        src = row["extra"].get("overlay") if isinstance(row["extra"], dict) else None
        for k, path in enumerate(src if isinstance(src, list) else [src] if src else []):
            fig = F.image_figure(path, f"{row['run']} (epoch {T.epoch_text(row['epoch'])}): detected landmarks",
                                 ctx.fig_dir, f"landmarks_{_slug(row['run'])}_{k}")
            if fig:
                blocks.append(R.figure(fig, f"{row['run']}: rows alternate its generated faces and, below each row, "
                                            f"the paired real faces; green points: the 68 landmarks found; a red "
                                            f"frame: no face found."))
    return [R.h2("Landmark overlays")] + blocks if blocks else []


def confusion_section(ctx: ReportContext) -> list:
    fin = ctx.fin
    conf_rows = fin[fin["metric"].isin(["identity_top1_fake", "identity_top1_real"])].sort_values("seed")
    blocks = []
    real_drawn = False
    for _, row in conf_rows.drop_duplicates(["run", "metric"]).iterrows():
        extra = row["extra"] if isinstance(row["extra"], dict) else {}
        mat, labels = extra.get("confusion"), extra.get("confusion_labels") or []
        generated = row["metric"].endswith("fake")
        if not generated:
            if real_drawn:
                continue  # one real-face matrix is enough: the judge and the real faces are the same for every run
            real_drawn = True
        fig_title = f"{row['run']} (generated faces)" if generated else "real test faces (judge ceiling)"
        fig_name = f"confusion_{_slug(row['run'])}_generated" if generated else "confusion_real_test_faces"
        fig = F.confusion_matrix(mat, labels, fig_title, ctx.fig_dir, fig_name) if mat is not None else None
        if fig:
            blocks.append(R.figure(fig, f"{row['run']}: identity confusion on generated faces." if generated else
                                   "The judge's confusion on the real test faces (ceiling)."))
    return [R.h2("Confusion matrices")] + blocks if blocks else []


def losses_section(ctx: ReportContext) -> list:
    loss_fig = F.loss_curves({r.name: r.losses for r in ctx.runs}, ctx.fig_dir)
    if not loss_fig:
        return []
    return [R.h2("Training losses"), R.figure(loss_fig, "Per-epoch training loss terms (RUN/losses.jsonl).")]


def legend_section(ctx: ReportContext) -> list:
    present = sort_metrics(ctx.df["metric"].unique())
    return [R.h2("What each metric means"),
            R.ul([f"**{info(m).label}** (`{m}`, {'higher' if info(m).higher_is_better else 'lower'} is better): "
                  f"{info(m).meaning}" for m in present if declared(m)] +
                 [f"`{m}`: see the module that produced it." for m in present if not declared(m)])]


# The report, in order: each builder returns its blocks (and writes its tables/figures), or [] to be left out.
SECTIONS = [setup_section, J.judges_section, main_section, protocols_section, A.agreement_section,
            A.landmark_agreement_section, comparison_section, reference_section,
            ablation_section, landmark_section, suite_sections, attributes_section, recent_section,
            per_identity_section, epochs_section, samples_section,
            overlays_section, confusion_section, losses_section, legend_section]
