"""The README's headline table quotes the committed records, not numbers typed from memory."""

import json

from hdisc.files import project_path


def _record(name):
    return json.loads(project_path(f"results/mnist32-cpu/{name}").read_text())


def _headline_rows():
    text = project_path("README.md").read_text()
    start = text.index("| mnist32, `cpu` preset, committed model")
    return text[start:text.index("\n\n", start)].splitlines()


def test_the_readme_headline_table_quotes_the_committed_records():
    rows = _headline_rows()
    rca = _record("rca_mos.json")
    interp = _record("directions.json")["interpretability"]["summary"]
    fd = _record("fid.json")["rows"][0]
    assert any(r.startswith(f"| RCA, {rca['rca_n']:,} fresh pairs") and f"| {rca['rca']:.3f} |" in r for r in rows)
    assert any(r.startswith("| directions a person can name") and f"| {len(interp['interpretable'])} of {interp['K']}"
               in r for r in rows)
    assert any(r.startswith("| FD-MnistNet") and f"| {fd['shifted']:.1f} / {fd['raw']:.1f} = "
               f"{fd['shifted'] / fd['raw']:.2f} |" in r for r in rows)
