"""Report tables (pandas) and figures (matplotlib, imported only here): `w2p-eval report`.

Entry point: :func:`w2p_eval.report.build.build_report`.
"""
