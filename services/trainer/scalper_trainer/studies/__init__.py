"""Optuna studies run by the trainer workers: a trial per RQ job (``trial``), the study's end
(``finalise``: lost trials marked, best model registered, report) and the HTML report (``report``).
The study storage, search space and views live in ``scalper_shared.studies``."""
