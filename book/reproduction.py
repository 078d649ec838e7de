# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %%

# %% [markdown]
# # Reproduction tables
#
# The paper's numbers beside ours. Every "ours" cell is read from the JSON record that a
# chapter of this book wrote when it ran, and names the preset it ran at: `cpu` means the
# scaled-down settings of this project's 2-core CPU (smaller DM, fewer DDIM steps, smaller
# batches, fewer steps; see the departures below), never the paper's setting. The
# paper's numbers come from its GPU-scale models and are not expected to match a
# `cpu` run; what can be compared is the direction of each effect.

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"
results = ""  # default: results/<dataset>-<preset> (chapter records)
models = ""  # default: models/<dataset>-<preset> (train_dm.json, train.json)

# %%
from hdisc.chapter import typed_parameters

typed_parameters("reproduction", globals())

# %%
import json

from IPython.display import Markdown, display

from hdisc.files import project_path, shown_path
from hdisc.report import benchmark_table, load_records, markdown_table, reproduction_tables

name = f"{dataset}-{preset}"
records = {**load_records(project_path(models or f"models/{name}")),
           **load_records(project_path(results or f"results/{name}"))}
print("records found:", ", ".join(sorted(records)) or "none")
for title, table in reproduction_tables(records, dataset).items():
    display(Markdown(f"**{title}**\n\n{table}"))

# %% [markdown]
# The same benchmark at the paper's own preset (its UNet, batch 128, untrained weights:
# memory and time do not depend on them), measured where a GPU was at hand and not rerun
# here. On a GPU the benchmark chapter repeats it: `papermill experiments/benchmark.ipynb
# out.ipynb -p preset paper -p batch 128 -p device cuda -p memory_budget_mb 70000 -p out_dir
# results/mnist32-paper`.

# %%
paper_bench = project_path(f"results/{dataset}-paper/benchmark.json")
if paper_bench.is_file():
    title, table = benchmark_table(json.loads(paper_bench.read_text()))
    display(Markdown(f"**{title}** (`{shown_path(paper_bench)}`)\n\n{table}"))
else:
    print(f"no paper-preset benchmark in {shown_path(paper_bench)}")

# %% [markdown]
# ## Where our settings depart from the paper's

# %%
if "train" in records:
    rows = [[field, v["paper"], v["ours"]] for field, v in records["train"]["departures_from_paper"].items()]
    display(Markdown(markdown_table(["setting", "paper", "ours"], rows) if rows else "none"))
