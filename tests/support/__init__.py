"""The parts the tests share, one module per thing they own.

* :mod:`tests.support.paths` — where the repository, its examples and test data are;
* :mod:`tests.support.gitrepo` — a real git repository in ``tmp_path`` (:class:`GitRepo`);
* :mod:`tests.support.manifests` — the request files tests commit (``definition``, ``job``,
  ``envelope``);
* :mod:`tests.support.controllers` — a controller under test: its ``Settings``, adapter,
  ledger and daemon (``make_settings``, ``make_controller``, ``make_daemon``);
* :mod:`tests.support.stores` — the ledger's two stores (a SQLite file, a DynamoDB
  table on moto) for tests that run on both;
* :mod:`tests.support.aws` — AWS as an auditor sees it (jobs by name, managed jobs), the
  write counter, and the moto shims tests drive jobs with;
* :mod:`tests.support.cli` — ``batch-gitops`` as a separate process (``run_cli``,
  ``start_cli``, ``stop``) and its environment (``controller_env``);
* :mod:`tests.support.waiting` — ``wait_until``: every wait polls with a deadline;
* :mod:`tests.support.clock` — a clock the test moves by hand;
* :mod:`tests.support.ports` — ``free_port`` on 127.0.0.1;
* :mod:`tests.support.fault_proxy` — an HTTP proxy in front of moto that injects faults;
* :mod:`tests.support.no_skips` — the hook that fails a test which skips.

``tests/conftest.py`` exposes the fixtures built on them.
"""
