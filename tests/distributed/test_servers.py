"""The distributed tests' servers are real and usable: a fresh PostgreSQL database per test
that holds an Optuna study, and an MLflow tracking server that records a run."""

from __future__ import annotations

import uuid

import optuna
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url


def test_a_fresh_database_is_empty_and_holds_an_optuna_study(postgres_url: str) -> None:
    import psycopg  # in the dev extra; the fixture skips (fails under CI) without it

    url = make_url(postgres_url)
    assert url.database != "dnc_test" and url.password
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert tables == []

    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        study = optuna.create_study(storage=storage, study_name="servers")
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 0.5},
                distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
                value=0.25,
            )
        )
        again = optuna.load_study(study_name="servers", storage=postgres_url)
        assert [t.params for t in again.trials] == [{"x": 0.5}]
        assert again.best_value == 0.25
    finally:
        storage.engine.dispose()


def test_postgres_wants_the_password(postgres_url: str) -> None:
    import psycopg

    wrong = make_url(postgres_url).set(password="wrong" + uuid.uuid4().hex)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(wrong.render_as_string(hide_password=False), connect_timeout=10)


def test_the_mlflow_server_records_a_run(mlflow_uri: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.create_experiment(f"dnc-test-servers-{uuid.uuid4().hex}")
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "width", "64")
    client.log_metric(run.info.run_id, "loss", 0.5, step=1)
    client.log_text(run.info.run_id, "hello", "note.txt")
    client.set_terminated(run.info.run_id)

    got = client.get_run(run.info.run_id)
    assert got.data.params == {"width": "64"} and got.data.metrics == {"loss": 0.5}
    assert got.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["note.txt"]
