"""glasslog.audit: model audits with and without the weights.

Each function takes a model (or a prediction function, for black-box access)
plus frames, and returns a result object with ``findings`` (``Finding``:
check, statistic, value, threshold, verdict, severity, evidence) and
``to_dict()``; reports are written separately (``report.build_report``).

- ``group``: error rates by group (fairlearn ``MetricFrame``, bootstrap intervals, ratios).
- ``blackbox``: query-counted counterfactual flips, perturbation sensitivity, audit-set performance.
- ``whitebox``: weights through the registry and the disclosure policy; permutation importance and SHAP; training-data fingerprint.
- ``shortcut``: features relied upon whose relation to the outcome is weak, unstable, vanished, shifted or dormant.
- ``leakage``: label proxies, train/test duplicates, batch-dependent predictions, inconsistent logged outputs.
- ``site``: does the model know the site (Zech et al. 2018).
- ``claims``: claimed vs realised metrics, from frames or from the log.
- ``logdata``: a model's logged decisions, outcomes and inputs as one role may see them.
- ``run``: everything one role's access allows on a logged model (``audit_logged_model``).
- ``recording``: ``finding`` entries on the log and suspension citing a finding.

The data sets are in ``glasslog.datasets``; the deceptive-accuracy demonstration, which writes decisions through the
SDK, is a scenario (``glasslog.scenarios.deceptive``); the command line is ``glasslog.cli.audit``.
"""
