"""diagnose on a table of texts names the drifting features by their words (they were 'feature 527')."""

from __future__ import annotations

from transferkit.cli import main


def test_diagnose_names_the_drifting_words_of_a_text_table(tmp_path, capsys):
    rows = ["domain,text,label"]
    for dom in ("books", "films"):
        for i in range(40):
            mood = ("dull plot", "great story")[i % 2]
            rows.append(
                f"{dom},{mood} this {dom} {'again' if dom == 'films' else 'once'},{('neg', 'pos')[i % 2]}"
            )
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    code = main(["diagnose", "--dataset", str(tmp_path / "t.csv"), "--source", "books", "--target", "films",
                 "--permutations", "10"])  # fmt: skip
    assert code == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("most drifting"))
    assert "'books' (KS 1.00)" in line and "'films' (KS 1.00)" in line and "feature " not in line
