"""`w2p-eval testlist`: freeze the retrieval galleries and matching tuples of a dataset's split in one JSON file."""

from __future__ import annotations

import click

from w2p_eval.cli import options as O


def _settings(items: tuple[str, ...]) -> dict:
    import yaml

    from w2p_eval.errors import InputError

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"expected --judge-setting KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:  # a parse error, or a tag safe_load refuses (!!python/...)
            why = " ".join(str(getattr(exc, "problem", None) or exc).split())
            raise InputError(f"expected --judge-setting KEY=VALUE with a plain YAML value (number, text, list), "
                             f"got {item!r} ({why})") from None
    return out


@click.command("testlist")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), metavar="DATA",
              help="Dataset folder made by `w2p-eval prepare`.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE", help="Test list to write (JSON).")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--protocol", type=click.Choice(["seen", "unseen"]), default="seen", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, metavar="INT",
              help="Seed of the gallery and tuple draws.")
@click.option("--gallery-size", type=int, default=None, metavar="G", show_default="min(100, test identities)",
              callback=O.check_gallery_size,
              help="Identities per retrieval gallery.")
@click.option("--n-galleries", type=int, default=10, show_default=True, metavar="N", callback=O.check_n_galleries,
              help="Galleries drawn (one when G equals the number of identities).")
@click.option("--ks", default="1,2,5,10", show_default=True, metavar="K,K", help="Recall cut-offs (K <= G kept).")
@click.option("--matching", default=None, metavar="N,N", show_default="the N of 2,5,10 the split allows",
              help="1:N matching sizes.")
@click.option("--judge", default="dlib_resnet", show_default=True, metavar="NAME",
              help="Face-embedding judge the numbers are to be computed with.")
@click.option("--judge-setting", multiple=True, metavar="KEY=VALUE", help="Judge setting recorded in the list.")
@click.option("--protocol-preset", type=click.Choice(["sf2f"]), default=None,
              help="Freeze a peer's galleries: sf2f = the first 300 test identities in meta order, 3 galleries of "
                   "100, K 1,2,5,10,20,50 (unseen protocol unless --protocol is given).")
def testlist(data_dir, out, split, protocol, seed, gallery_size, n_galleries, ks, matching, judge, judge_setting,
             protocol_preset):
    """Write a frozen test list (dataset hash, galleries, matching tuples, seeds). Prints its id and path."""
    from w2p_eval.metrics.testlist import FORMAT, build_testlist, write_testlist
    from w2p_eval.outdir import claim_file, dataset_inputs, json_of_format

    ks, matching, settings = O.int_list(ks, "--ks"), O.int_list(matching, "--matching"), _settings(judge_setting)
    protocol = "unseen" if protocol_preset and not O.given("protocol") else protocol
    claim_file(out, "testlist", ours=json_of_format(FORMAT), inputs=dataset_inputs(data_dir))
    content = build_testlist(data_dir, split=split, protocol=protocol, seed=seed, gallery_size=gallery_size,
                             n_galleries=n_galleries, ks=ks, matching=matching, judge=judge, judge_settings=settings)
    if protocol_preset:  # metrics/sf2f_preset.py: SF2F's galleries replace the drawn ones
        from w2p_eval.metrics.sf2f_preset import preset_testlist

        content = preset_testlist(content, data_dir)
    path = write_testlist(content, out)
    r = content["retrieval"]
    tuples = ", ".join(f"1:{n} {len(rows)} tuples" for n, rows in sorted(content["matching"].items(),
                                                                          key=lambda kv: int(kv[0])))
    click.echo(f"test list {content['id']}: {content['dataset']['n_pairs']} {split} pairs ({protocol}), "
               f"{r['n_galleries']} galleries of {r['gallery_size']} identities, {tuples or 'no matching'} -> {path}")
