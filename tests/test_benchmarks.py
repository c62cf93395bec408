"""The shared pieces every benchmark writes its tables with, and the README's results section built from them."""


def test_numbers_in_tables_keep_four_decimals_below_ten_one_above():
    from benchmarks.common import markdown_table

    table = markdown_table([{"a": 0.12345, "b": -12.34, "c": 123.45, "d": 7, "e": "x"}], list("abcdef"))
    assert table.splitlines() == ["| a | b | c | d | e | f |", "|---|---|---|---|---|---|",
                                  "| 0.1235 | -12.3 | 123.5 | 7 | x |  |"]


def test_the_readme_gets_the_tables_a_level_down_with_their_relative_links_rebased(tmp_path, monkeypatch):
    import benchmarks.__main__ as bench

    results = tmp_path / "results"
    results.mkdir()
    (results / "backbones.md").write_text("## Backbones\n\n![chart](backbones.png) see [RecBole](https://recbole.io)\n")
    (results / "mixrec.md").write_text("## MixRec\n\n| a |\n|---|\n| 1 |\n")
    (tmp_path / "README.md").write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")
    monkeypatch.setenv("STEERREC_RESULTS", str(results))
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    bench.update_readme()
    assert (tmp_path / "README.md").read_text() == (
        "intro\n<!-- results:start -->\n### Backbones\n\n![chart](benchmarks/results/backbones.png) see "
        "[RecBole](https://recbole.io)\n\n### MixRec\n\n| a |\n|---|\n| 1 |\n<!-- results:end -->\nafter\n")
