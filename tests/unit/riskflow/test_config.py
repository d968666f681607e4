from __future__ import annotations

from pathlib import Path

import pytest

from riskflow.config import load_config
from riskflow.errors import ConfigError


def test_defaults_are_a_local_broker() -> None:
    cfg = load_config(env={})
    assert cfg.kafka.bootstrap == "localhost:9092"
    assert cfg.topics.policy.cleanup_policy == "compact"
    assert cfg.kafka.security.kafka_python_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_file_then_env_override(tmp_path: Path) -> None:
    f = tmp_path / "riskflow.toml"
    f.write_text(
        '[kafka]\nbootstrap_servers = ["a:1"]\n[topics.decisions]\nname = "dec"\npartitions = 3\n'
        "[stream]\nmax_batch_size = 64\n"
    )
    cfg = load_config(f, env={"RISKFLOW_STREAM__MAX_BATCH_SIZE": "256"})
    assert cfg.kafka.bootstrap_servers == ("a:1",)
    assert cfg.topics.decisions.name == "dec" and cfg.topics.decisions.partitions == 3
    assert cfg.stream.max_batch_size == 256


def test_config_is_frozen() -> None:
    cfg = load_config(env={})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is an implementation detail
        cfg.stream.max_batch_size = 3  # type: ignore[misc]


def test_sasl_ssl(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = load_config(
        env={
            "RISKFLOW_KAFKA__SECURITY__PROTOCOL": "SASL_SSL",
            "RISKFLOW_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-512",
            "RISKFLOW_KAFKA__SECURITY__SASL_USERNAME": "svc",
            "RISKFLOW_KAFKA__SECURITY__SASL_PASSWORD": "s3cret",
            "RISKFLOW_KAFKA__SECURITY__SSL_CAFILE": str(ca),
        }
    )
    kw = cfg.kafka.security.kafka_python_kwargs()
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_password"] == "s3cret"
    assert kw["ssl_cafile"] == str(ca)
    assert "s3cret" not in repr(cfg)  # secrets stay out of logs


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        (
            {"RISKFLOW_KAFKA__BOOTSTRAP_SERVERS": "nohost"},
            ["kafka.bootstrap_servers", "host:port", "nohost"],
        ),
        (
            {"RISKFLOW_STREAM__MAX_BATCH_SIZE": "0"},
            ["stream.max_batch_size", "RISKFLOW_STREAM__MAX_BATCH_SIZE"],
        ),
        ({"RISKFLOW_KAFKA__SECURITY__PROTOCOL": "SASL_SSL"}, ["sasl_mechanism"]),
        ({"RISKFLOW_KAFKA__SECURITY__SSL_CAFILE": "/no/such/ca.pem"}, ["not a readable file"]),
        ({"RISKFLOW_POLICY__T_REVIEW": "0.99"}, ["must not exceed t_decline"]),
        ({"RISKFLOW_TOPICS__DECISIONS__NAME": "bad topic!"}, ["legal Kafka topic name"]),
        ({"RISKFLOW_STREAM__PROCESSING_GUARANTEE": "maybe"}, ["exactly_once", "at_least_once"]),
    ],
)
def test_bad_config_says_what_to_fix(env: dict, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    for needle in needles:
        assert needle in str(info.value)


def test_unknown_setting_and_bad_toml(tmp_path: Path) -> None:
    f = tmp_path / "riskflow.toml"
    f.write_text("[kafka]\nbootstrap_server = 'x:1'\n")
    with pytest.raises(ConfigError, match="not a known setting"):
        load_config(f, env={})
    f.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})


def test_cli_rejects_bad_config_clearly(tmp_path: Path) -> None:
    import click
    from click.testing import CliRunner

    from riskflow.cli import load_ctx_config, main

    @main.command("_probe", hidden=True)
    @click.pass_context
    def probe(ctx: click.Context) -> None:
        load_ctx_config(ctx)

    f = tmp_path / "riskflow.toml"
    f.write_text("[stream]\nmax_batch_size = -5\n")
    try:
        result = CliRunner().invoke(main, ["--config", str(f), "_probe"])
    finally:
        main.commands.pop("_probe")
    assert result.exit_code != 0
    assert "stream.max_batch_size" in result.output and "Traceback" not in result.output


def test_num_threads_auto_is_the_usable_cpus(tmp_path: Path) -> None:
    from riskflow.cpus import usable_cpus

    assert load_config(env={}).model.num_threads == usable_cpus()
    assert (
        load_config(env={"RISKFLOW_MODEL__NUM_THREADS": "AUTO"}).model.num_threads == usable_cpus()
    )
    assert load_config(env={"RISKFLOW_MODEL__NUM_THREADS": "3"}).model.num_threads == 3
    cfg = tmp_path / "riskflow.toml"
    cfg.write_text('[model]\nnum_threads = "auto"\n')
    assert load_config(cfg, env={}).model.num_threads == usable_cpus()
    with pytest.raises(ConfigError, match="'auto' or a number of threads"):
        load_config(env={"RISKFLOW_MODEL__NUM_THREADS": "many"})
    with pytest.raises(ConfigError, match="model.num_threads"):
        load_config(env={"RISKFLOW_MODEL__NUM_THREADS": "0"})
