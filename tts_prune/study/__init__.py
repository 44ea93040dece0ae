"""The study runner: a YAML grid of notebooks run with papermill and rendered for readers.

Modules: ``config`` (StudyConfig, load_study: the YAML file, checked), ``grid`` (expand into cells and their DAG), ``execute`` (one cell:
papermill, fingerprints, its marker), ``runner`` (the scheduler, resume), ``executors`` (local, and
``ray_executor``: Ray tasks), ``devices`` (one cell per device), ``render`` (HTML, offline widget scripts,
reports/index.html), ``cli`` (the ``study`` command), ``plan`` with ``steps``, ``workload``, ``shapes``,
``hardware``, ``plan_report`` and ``plan_cli`` (``tts-prune plan``), ``notebook`` and ``selection`` (helpers the notebooks
call). What the report computes and draws lives in ``tts_prune.report``.
"""
