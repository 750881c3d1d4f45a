"""`w2p-eval prepare`: build a dataset folder (videos, the WAV2PIX release, a generic folder, demo)."""

from __future__ import annotations

import click

from w2p_eval.names import unknown
from w2p_eval.registry import Entry, Registry

# the prepare modes (their commands are below, each registered on the group): `prepare --help` and the docs' table
# list them from here; a test checks that every mode here is a sub-command and every sub-command is here
PREPARE_MODES = Registry("prepare mode", None, [
    Entry("videos", "w2p_eval.cli.prepare:videos", "Talking-head videos -> pairs (ffmpeg + Haar face detection)."),
    Entry("wav2pix-release", "w2p_eval.cli.prepare:wav2pix_release", "The WAV2PIX authors' released subset."),
    Entry("folder", "w2p_eval.cli.prepare:folder", "Generic SRC/<identity>/<stem>.{png,jpg} + <stem>.wav."),
    Entry("demo", "w2p_eval.cli.prepare:demo", "The embedded synthetic demo dataset (no download)."),
    Entry("voxceleb", "w2p_eval.cli.prepare:voxceleb", "VoxCeleb speakers + VGGFace / HQ-VoxCeleb / frame faces, the "
          "field's splits (docs/voxceleb.md)."),
])


class _Modes(click.Group):
    """The sub-commands of `prepare`, read from :data:`PREPARE_MODES` (one line per mode)."""

    def list_commands(self, ctx):
        return PREPARE_MODES.names()

    def resolve_command(self, ctx, args):
        if args and args[0] not in PREPARE_MODES and not args[0].startswith("-"):
            raise click.UsageError(unknown("prepare mode", args[0], PREPARE_MODES.names()))
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(e.name, e.help) for e in PREPARE_MODES.entries()])

_out = click.option("--out", "out", required=True, metavar="DATA", type=click.Path(file_okay=False),
                    help="New (or empty) dataset folder to create; written atomically.")
_seed = click.option("--seed", default=0, show_default=True, metavar="INT", type=int,
                     help="Seed for audio crops and split choices.")
_frac = click.option("--test-fraction", default=0.2, show_default=True, metavar="F",
                     type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
                     help="Share of each identity's segments (seen) and of identities (unseen) put in test.")


_meta = click.option("--identity-meta", "identity_meta", metavar="CSV", type=click.Path(), default=None,
                     help="Per-identity labels: CSV with column identity and any of gender (f/m), age (years), "
                          "...; <attr>_source columns say where a label came from. Every identity needs a row.")


def _done(out: str, line: str) -> None:
    click.echo(f"{out}: {line}")


@click.group("prepare", cls=_Modes)
def prepare() -> None:
    """Build a dataset folder: manifest.csv + dataset.json + faces/ + audio/ + prepare.log."""


@prepare.command("videos")
@click.argument("src", metavar="SRC", type=click.Path())
@_out
@_seed
@click.option("--mapping", metavar="CSV", type=click.Path(), default=None,
              help="CSV with columns file,identity (file relative to SRC or a bare name). Default: the "
                   "sub-folder name, or the file stem for videos directly in SRC.")
@click.option("--k", default=5, show_default=True, metavar="N", type=click.IntRange(1), help="Random audio crops per face.")
@click.option("--min-confidence", default=4.0, show_default=True, metavar="W", type=float,
              help="Minimum Haar level weight of the kept face box.")
@click.option("--margin", default=0.2, show_default=True, metavar="F", type=click.FloatRange(0.0),
              help="Crop margin on each side, as a fraction of the face box.")
@click.option("--window", default=2.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Audio kept around each face: +-S seconds (clipped to the source segment).")
@click.option("--every", default=1.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Run the face detector once every S seconds.")
@click.option("--crop-seconds", default=1.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Length of each audio crop.")
@click.option("--segment", default=10.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Approximate length of the disjoint source segments the seen split moves as wholes.")
@click.option("--image-size", default=128, show_default=True, metavar="PX", type=click.IntRange(16, 1024),
              help="Side of the saved square face crops.")
@_frac
@_meta
def videos(src, out, seed, mapping, k, min_confidence, margin, window, every, crop_seconds, segment,
           image_size, test_fraction, identity_meta):
    """Talking-head videos (SRC/<identity>/*.mp4 ...) -> pairs via ffmpeg + Haar face detection."""
    from w2p_eval.data.prepare_videos import prepare_videos

    _done(out, prepare_videos(
        src, out, seed=seed, mapping=mapping, k=k, min_confidence=min_confidence, margin=margin, window=window,
        every=every, crop_seconds=crop_seconds, segment=segment, image_size=image_size, test_fraction=test_fraction,
        identity_meta=identity_meta,
    ))


@prepare.command("wav2pix-release")
@click.argument("src", metavar="SRC", type=click.Path())
@_out
@_seed
@click.option("--guard", default=4, show_default=True, metavar="N", type=click.IntRange(0),
              help="Faces dropped before the seen test tail when the release has a single split.")
@click.option("--min-seconds", default=1.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Shortest usable wav.")
@_frac
@_meta
def wav2pix_release(src, out, seed, guard, min_seconds, test_fraction, identity_meta):
    """The authors' release ({train,test}/<name>/cropped_face_frame_N.png + .wav, or pickled path lists)."""
    from w2p_eval.data.prepare_release import prepare_release

    _done(out, prepare_release(src, out, seed=seed, test_fraction=test_fraction, guard=guard, min_seconds=min_seconds,
                               identity_meta=identity_meta))


@prepare.command("folder")
@click.argument("src", metavar="SRC", type=click.Path())
@_out
@_seed
@click.option("--min-seconds", default=1.0, show_default=True, metavar="S", type=click.FloatRange(0.0, min_open=True),
              help="Shortest usable wav.")
@_frac
@_meta
def folder(src, out, seed, min_seconds, test_fraction, identity_meta):
    """Generic SRC/<identity>/<stem>.{png,jpg} + <stem>.wav."""
    from w2p_eval.data.prepare_folder import prepare_folder

    _done(out, prepare_folder(src, out, seed=seed, test_fraction=test_fraction, min_seconds=min_seconds,
                              identity_meta=identity_meta))


@prepare.command("demo")
@_out
@_seed
@click.option("--identities", "n_identities", default=8, show_default=True, metavar="N", type=click.IntRange(2, 1000),
              help="Number of synthetic identities.")
@click.option("--pairs", "pairs_per_identity", default=24, show_default=True, metavar="N", type=click.IntRange(2, 1000),
              help="Pairs per identity.")
@_frac
def demo(out, seed, n_identities, pairs_per_identity, test_fraction):
    """The embedded synthetic demo dataset (warped portraits + formant voices; no download)."""
    from w2p_eval.data.prepare_common import read_summary
    from w2p_eval.data.prepare_demo import build_demo

    path = build_demo(out, seed=seed, n_identities=n_identities, pairs_per_identity=pairs_per_identity,
                      test_fraction=test_fraction)
    _done(out, read_summary(path))


@prepare.command("voxceleb")
@click.option("--audio", required=True, metavar="ROOT", type=click.Path(),
              help="VoxCeleb audio: ROOT/<VoxCeleb id>/<YouTube id>/<utterance>.wav (VoxCeleb1) or .m4a (VoxCeleb2).")
@click.option("--faces", required=True, metavar="ROOT", type=click.Path(),
              help="Faces: <VGGFace1 name>/<n>.jpg, <n00xxxx>/<n>.jpg (VGGFace2), <name>/<n>.jpg (HQ-VoxCeleb) or "
                   "<name>/1.6/<YouTube id>/<frame>.jpg (VoxCeleb frames).")
@click.option("--meta", "meta", required=True, multiple=True, metavar="CSV", type=click.Path(),
              help="VoxCeleb meta file (vox1_meta.csv, full_vox2_meta.csv); repeatable. Joins ids and names, gives "
                   "gender and nationality.")
@click.option("--split", "split", required=True, type=click.Choice(["official", "wen", "sf2f"]),
              help="Identity split: official (the Set column), wen (names F-Z train, A-E test), sf2f (row i of each "
                   "meta file: test when i mod 10 = 8, val when 9, else train).")
@click.option("--faces-layout", default=None, type=click.Choice(["vggface1", "vggface2", "hq", "frames"]),
              help="Faces layout (default: recognised from the folder; name-keyed photos read as vggface1, pass hq "
                   "for HQ-VoxCeleb's aligned faces).")
@_out
@_seed
@click.option("--max-utterances", default=10, show_default=True, metavar="N", type=click.IntRange(1),
              help="Utterances per identity (a seeded choice when there are more); each 1 s window is one pair.")
@click.option("--max-faces", default=10, show_default=True, metavar="N", type=click.IntRange(1),
              help="Faces per identity (a seeded choice when there are more).")
@click.option("--image-size", default=128, show_default=True, metavar="PX", type=click.IntRange(16, 1024),
              help="Side of the saved square face crops.")
@click.option("--allow-other-meta", is_flag=True,
              help="Accept meta files whose sha256 is not the published one with --split sf2f (row order = split).")
@_frac
@click.option("--workers", default=2, show_default=True, metavar="N", type=click.IntRange(1),
              help="Decoding threads (ffmpeg, face detection).")
def voxceleb(audio, faces, meta, split, faces_layout, out, seed, max_utterances, max_faces, image_size,
             allow_other_meta, test_fraction, workers):
    """VoxCeleb1/2 speakers + VGGFace / HQ-VoxCeleb / frame faces on the field's identity splits."""
    from w2p_eval.data.prepare_voxceleb import prepare_voxceleb

    _done(out, prepare_voxceleb(audio, faces, list(meta), split, out, faces_layout=faces_layout, seed=seed,
                                max_utterances=max_utterances, max_faces=max_faces, image_size=image_size,
                                test_fraction=test_fraction, allow_other_meta=allow_other_meta, workers=workers))
