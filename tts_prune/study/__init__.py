"""The study: a YAML grid of notebooks run with papermill, rendered for readers, and the notebooks' helpers.

Modules: ``grid`` (StudyConfig, load_study, expand into cells and their DAG), ``execute`` (one cell:
papermill, fingerprints, its marker), ``runner`` (the scheduler, resume), ``executors`` (local, and
``ray_executor``: Ray tasks), ``render`` (HTML, offline widget scripts, reports/index.html), ``cli``
(the ``study`` command), ``notebook`` (helpers the notebooks call), ``plots`` and ``explorer``
(figures, widgets).
"""
