"""Settings.from_env: loopback defaults, one clear SettingsError per malformed value, secrets masked."""

from __future__ import annotations

import pytest

from sut.settings import Settings, SettingsError

SECRET = "s" * 32


def from_env(**env: str) -> Settings:
    return Settings.from_env({"JWT_SECRET": SECRET, **env})


def test_defaults_are_the_dataclass_defaults_on_loopback() -> None:
    settings = from_env()
    assert settings == Settings(jwt_secret=SECRET)
    assert (settings.host, settings.port) == ("127.0.0.1", 5240)
    assert settings.database_url.startswith("postgresql://postgres@127.0.0.1:5432/")
    assert settings.redis_url.startswith("redis://127.0.0.1:6379")
    assert (settings.rate_limit_per_second, settings.rate_limit_burst) == (10.0, 20)


def test_values_are_read_and_converted() -> None:
    settings = from_env(PORT="5241", LOG_LEVEL="debug", RATE_LIMIT_PER_SECOND="2.5", DB_POOL_MIN="3",
                        DB_POOL_MAX="3", DATABASE_URL="postgres://u@db:5433/x", REDIS_URL="rediss://r:6380/1",
                        S3_ENDPOINT_URL="")
    assert (settings.port, settings.log_level, settings.rate_limit_per_second) == (5241, "DEBUG", 2.5)
    assert (settings.db_pool_min, settings.db_pool_max) == (3, 3)
    assert settings.database_url == "postgres://u@db:5433/x" and settings.redis_url == "rediss://r:6380/1"
    assert settings.s3_endpoint_url is None  # empty: the real AWS endpoint


def test_the_connect_bucket_is_read_and_on_by_default() -> None:
    assert (from_env().connect_rate_per_second, from_env().connect_burst) == (1.0, 10)
    settings = from_env(CONNECT_RATE_PER_SECOND="0.25", CONNECT_BURST="3")
    assert (settings.connect_rate_per_second, settings.connect_burst) == (0.25, 3)


@pytest.mark.parametrize(("env", "variable"), [
    ({"PORT": "abc"}, "PORT"),
    ({"PORT": "0"}, "PORT"),
    ({"PORT": "65536"}, "PORT"),
    ({"DATABASE_URL": "foo"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://db:notaport/x"}, "DATABASE_URL"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({"RATE_LIMIT_PER_SECOND": "-1"}, "RATE_LIMIT_PER_SECOND"),
    ({"RATE_LIMIT_PER_SECOND": "nan"}, "RATE_LIMIT_PER_SECOND"),
    ({"RATE_LIMIT_BURST": "1.5"}, "RATE_LIMIT_BURST"),
    ({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, "DB_POOL_MIN"),
    ({"AWS_S3_BUCKET": " "}, "AWS_S3_BUCKET"),
    ({"CORS_ORIGIN": "*"}, "CORS_ORIGIN"),
    ({"UPLOAD_URL_TTL_SECONDS": "10"}, "UPLOAD_URL_TTL_SECONDS"),
    ({"CONNECT_RATE_PER_SECOND": "-0.5"}, "CONNECT_RATE_PER_SECOND"),
    ({"CONNECT_RATE_PER_SECOND": "inf"}, "CONNECT_RATE_PER_SECOND"),
    ({"CONNECT_BURST": "ten"}, "CONNECT_BURST"),
    ({"CONNECT_BURST": "-1"}, "CONNECT_BURST"),
    ({"GROUP_COMMIT": "maybe"}, "GROUP_COMMIT"),
    ({"GROUP_COMMIT_MAX_BATCH": "0"}, "GROUP_COMMIT_MAX_BATCH"),
    ({"GROUP_COMMIT_MAX_BATCH": "1001"}, "GROUP_COMMIT_MAX_BATCH"),
    ({"GROUP_COMMIT_MAX_INFLIGHT": "0"}, "GROUP_COMMIT_MAX_INFLIGHT"),
    ({"GROUP_COMMIT_MAX_INFLIGHT": "21"}, "GROUP_COMMIT_MAX_INFLIGHT"),
    ({"DB_POOL_MAX": "3", "GROUP_COMMIT_MAX_INFLIGHT": "4"}, "GROUP_COMMIT_MAX_INFLIGHT"),
    ({"GC_THRESHOLD": "50000,20"}, "GC_THRESHOLD"),
    ({"GC_THRESHOLD": "50000,-1,10"}, "GC_THRESHOLD"),
    ({"GC_THRESHOLD": "a,b,c"}, "GC_THRESHOLD"),
])
def test_a_malformed_value_is_refused_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as error:
        from_env(**env)
    message = str(error.value)
    assert variable in message and "\n" not in message


def test_group_commit_is_on_by_default_and_its_limits_are_read() -> None:
    defaults = from_env()
    assert (defaults.group_commit, defaults.group_commit_max_batch, defaults.group_commit_max_inflight) == (True, 64, 2)
    settings = from_env(GROUP_COMMIT="false", GROUP_COMMIT_MAX_BATCH="1000", GROUP_COMMIT_MAX_INFLIGHT="20")
    assert (settings.group_commit, settings.group_commit_max_batch, settings.group_commit_max_inflight) == \
        (False, 1000, 20)


def test_group_commit_in_flight_follows_a_pool_smaller_than_its_default() -> None:
    assert from_env(DB_POOL_MIN="1", DB_POOL_MAX="1").group_commit_max_inflight == 1


def test_db_pool_max_is_named_too_when_min_exceeds_it() -> None:
    with pytest.raises(SettingsError, match=r"DB_POOL_MIN.*DB_POOL_MAX"):
        from_env(DB_POOL_MIN="5", DB_POOL_MAX="2")


@pytest.mark.parametrize("env", [{}, {"JWT_SECRET": ""}, {"JWT_SECRET": "x" * 31}])
def test_a_missing_or_short_jwt_secret_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        Settings.from_env(env)


def test_commands_without_tokens_need_no_secret_but_a_short_one_is_still_wrong() -> None:
    assert Settings.from_env({}, require_secret=False).jwt_secret == ""
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        Settings.from_env({"JWT_SECRET": "short"}, require_secret=False)


def test_repr_masks_secrets() -> None:
    settings = from_env(AWS_SECRET_ACCESS_KEY="aws-very-secret-value", AWS_ACCESS_KEY_ID="AKIDVISIBLE")
    shown = repr(settings)
    assert SECRET not in shown and "aws-very-secret-value" not in shown
    assert "jwt_secret=***" in shown and "aws_secret_access_key=***" in shown
    assert "AKIDVISIBLE" in shown and "port=5240" in shown
    assert SECRET not in str(settings)


def test_repr_hides_passwords_in_urls() -> None:
    settings = Settings(database_url="postgresql://svc:hunter2-secret@db:5432/messaging",
                        redis_url="redis://:redis-pass@cache:6379/0", jwt_secret="x" * 40)
    shown = repr(settings)
    assert "hunter2-secret" not in shown and "redis-pass" not in shown
    assert "postgresql://svc:***@db:5432/messaging" in shown


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://svc@db/x?password=hunter2&sslmode=disable", "postgresql://svc@db/x?password=***&sslmode=disable"),
    ("postgresql://db/x?sslmode=require&sslpassword=k3y", "postgresql://db/x?sslmode=require&sslpassword=***"),
    ("postgresql://svc:p%40ss@db/x", "postgresql://svc:***@db/x"),
    ("redis://cache:6379/0?Password=pw", "redis://cache:6379/0?Password=***"),
    ("postgresql://svc@db/x?application_name=no_password_here", "postgresql://svc@db/x?application_name=no_password_here"),
])
def test_repr_hides_passwords_given_as_query_parameters_too(url: str, shown: str) -> None:
    assert f"database_url={shown!r}" in repr(Settings(database_url=url))


def test_the_connect_bucket_admits_its_burst_then_its_rate_and_says_how_long_to_wait() -> None:
    from sut.admission import ConnectBucket

    bucket = ConnectBucket(rate=10.0, burst=3, stamp=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take(100.0)
    assert wait == pytest.approx(0.1) and ConnectBucket.retry_after(wait) == 1
    assert bucket.take(100.05) == pytest.approx(0.05)   # half a token came back: nothing taken
    assert bucket.take(100.11) == 0.0
    assert bucket.take(200.0) == 0.0 and bucket.tokens == pytest.approx(2.0)   # refilled to the burst, not beyond
    assert ConnectBucket(rate=0.0, burst=0).take() == 0.0   # a zero rate admits everything
    assert ConnectBucket.retry_after(2.01) == 3


def test_the_collector_thresholds_are_read_as_three_integers() -> None:
    assert from_env(GC_THRESHOLD=" 50000, 20 ,10").gc_threshold == (50_000, 20, 10)
    assert from_env(GC_THRESHOLD="0,0,0").gc_threshold == (0, 0, 0)
