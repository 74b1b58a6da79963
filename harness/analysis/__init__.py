"""Quality versus diversity of a study's proposals, from its run directories (nothing
regenerated). The command is `python -m harness.analyze DIR` (harness/analyze.py).

    quality.py   quality measures: per-item power mean, K-Norm, Centered-1/K-Norm (formulas)
    measure.py   run directories -> Points (one configuration of one benchmark), per item
    fits.py      Table 4 regression and the Table 5 comparison of quality measures
    compare.py   Self-MoA vs Mixed-MoA, t against k, compute-matched table with Pareto front
    plots.py     the PNG figures
    report.py    report.md
    mirror.py    the W&B mirror (tables, native charts, PNGs)
    pipeline.py  one analysis from directory to report
"""
