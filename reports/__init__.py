"""Turn a run folder into `summary.json` (the SLO verdict) and `report.html` (see docs/loadtests.md).

    python -m reports build RUN_DIR
"""
