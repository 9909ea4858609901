"""The scenario schema (pydantic) and the loader of `scenarios/*.yaml`.

Every model forbids unknown fields and takes numbers strictly (no strings or booleans where a number is expected), so
a typo in a scenario file is an error, not a silently ignored key. Durations are a number of seconds or a string
with a unit (`250ms`, `30s`, `5m`, `1.5h`) and are stored as float seconds. Problems surface as `ScenarioError`,
whose text is one line per problem: `<file>: <dotted location>: <message>`.
"""

from __future__ import annotations

import difflib
import math
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Self, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

SCENARIO_DIR = Path(__file__).parent

CHECKER_COUNTERS = ("lost", "duplicated", "out_of_order", "redelivered")
DELIVERY = "delivery"
"""The `request` of a latency SLO on delivery: the WS `message:new` entry, measured at the receiver."""

REST_ROUTES = (
    "GET /messaging/conversations",
    "POST /messaging/conversations",
    "GET /messaging/conversations/{id}",
    "GET /messaging/conversations/{id}/messages",
    "POST /messaging/conversations/{id}/messages",
    "POST /messaging/conversations/{id}/read",
    "POST /messaging/conversations/{id}/archive",
    "POST /messaging/conversations/{id}/unarchive",
    "GET /messaging/unread-count",
    "POST /messaging/uploads",
)
WS_EVENTS = ("connect", "reconnect", "message:send", "message:new", "conversation:read", "typing", "sync")
KNOWN_REQUESTS = frozenset((*REST_ROUTES, *WS_EVENTS, "PUT {upload_url}", DELIVERY))
"""Request names the load generator records (docs/loadtests.md, "Request names"), plus `delivery`."""

Loc = tuple[str | int, ...]


class ScenarioError(Exception):
    """A scenario that cannot be used; `str()` is one line per problem, `<file>: <location>: <message>`."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines: tuple[str, ...] = lines


# --- durations ------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str | float) -> float:
    """Seconds from a number of seconds or a string with a unit: `250ms`, `30s`, `5m`, `1.5h` (a bare number in a
    string is seconds too). Raises ValueError for anything else, negative and non-finite values included."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a duration (seconds, or a string such as 250ms, 30s, 5m, 1h), got {value!r}")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use seconds, or a number with ms, s, m or h: 250ms, 30s, "
                             "5m, 1.5h)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"must be a finite duration, got {value!r}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Compact: milliseconds under one second, seconds from one second up (`250ms`, `1.5s`, `90s`)."""
    if seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    return f"{round(seconds, 3):g}s"


def _duration(value: object) -> float:
    return parse_duration(value)  # type: ignore[arg-type]  # parse_duration rejects other types with ValueError


def _wait(value: object) -> tuple[float, float]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise ValueError(f"must be one duration or a list [min, max], got {len(value)} items")
        low, high = parse_duration(value[0]), parse_duration(value[1])
        if low > high:
            raise ValueError(f"min ({format_duration(low)}) must not exceed max ({format_duration(high)})")
        return low, high
    fixed = _duration(value)
    return fixed, fixed


def _between(low: float, high: float) -> AfterValidator:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return AfterValidator(check)


_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def _scenario_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r}: use lowercase letters, digits, '-' and '_' (it names files and run folders)")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
"""Float seconds; accepts a number of seconds or a string with a unit."""
Wait = Annotated[tuple[float, float], BeforeValidator(_wait)]
"""(min, max) seconds between tasks, uniform; one duration means a fixed wait."""
RequestName = Annotated[str, AfterValidator(_not_blank)]

_PROBLEMS = "scenario_problems"


def _raise_problems(problems: list[tuple[Loc, str]]) -> NoReturn:
    """Fail validation with problems at locations below the current model's (pydantic gives a model-level error
    only the model's own location; the formatter in this module appends each problem's own)."""
    summary = "; ".join(f"{_dotted(loc)}: {message}" if loc else message for loc, message in problems)
    raise PydanticCustomError(_PROBLEMS, "{summary}", {"summary": summary, "problems": problems})


# --- models ---------------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class DataVolume(_Model):
    """Background volume the runner seeds when the target holds less."""

    conversations: int = Field(ge=0)
    messages: int = Field(ge=0)

    @model_validator(mode="after")
    def _messages_need_conversations(self) -> Self:
        if self.messages > 0 and self.conversations == 0:
            _raise_problems([(("messages",), "needs conversations > 0 to hold them")])
        return self


class ChatPersona(_Model):
    """Pairs of socket.io users (customer <-> artist), both ends in one process. Sized in pairs, or in connected
    `users` (two per pair); with `send_every`, each user sends once per that time and a stage without
    messages_per_second sends users / send_every (docs/loadtests.md#connected-users)."""

    pairs: int | None = Field(default=None, ge=0)
    users: int | None = Field(default=None, ge=0)
    send_every: Duration | None = Field(default=None, gt=0)
    connect_rate: float | None = Field(default=None, gt=0)
    """Users a second the generator first connects at (each process paces its share; every user is spawned
    before the run's clock starts); unset: as fast as Locust spawns them (everyone in about 5 s)."""
    typing_ratio: Annotated[float, _between(0, 1)] = 0.1
    read_every: int = Field(default=5, ge=0)

    @model_validator(mode="after")
    def _one_size(self) -> Self:
        if (self.pairs is None) == (self.users is None):
            _raise_problems([((), "give exactly one of pairs and users")])
        return self

    @property
    def size_in_pairs(self) -> int:
        return self.pairs if self.pairs is not None else _pairs_of(self.users or 0)


def _pairs_of(users: int) -> int:
    """Pairs holding `users` connected users (an odd count rounds up)."""
    return (users + 1) // 2


class RestPersona(_Model):
    """The REST query persona: inbox, history pages, unread count, read, archive."""

    users: int = Field(ge=0)
    conversations: Annotated[int, _between(1, 100)] = 10
    wait: Wait = (0.5, 1.5)


class UploadPersona(_Model):
    """Presign, PUT to S3, send an image message."""

    users: int = Field(ge=0)
    wait: Wait = (2.0, 4.0)


class Personas(_Model):
    """How many of each Locust user; an absent persona is not used."""

    chat: ChatPersona | None = None
    rest: RestPersona | None = None
    upload: UploadPersona | None = None


class Stage(_Model):
    """One step of the open-model send schedule; unset user counts take the personas' numbers."""

    duration: Duration = Field(gt=0)
    messages_per_second: float | None = Field(default=None, ge=0)
    """Unset: the chat persona's users / send_every."""
    pairs: int | None = Field(default=None, ge=0)
    users: int | None = Field(default=None, ge=0)
    """Connected chat users: pairs = users / 2 (give one of the two)."""
    rest_users: int | None = Field(default=None, ge=0)
    upload_users: int | None = Field(default=None, ge=0)
    settle: Duration = 0.0
    """Seconds at the stage's start excluded from its plateau evaluation."""

    @model_validator(mode="after")
    def _settle_fits(self) -> Self:
        if self.pairs is not None and self.users is not None:
            _raise_problems([(("users",), "give pairs or users, not both")])
        if self.settle >= self.duration:
            _raise_problems([(("settle",), f"must be shorter than the stage's duration "
                                           f"({format_duration(self.settle)} >= {format_duration(self.duration)})")])
        return self


class Load(_Model):
    stages: list[Stage] = Field(min_length=1)


class _Slo(_Model):
    name: str | None = None
    stage: int | None = Field(default=None, ge=0)
    """Judged on this stage's plateau only (0-based); unset: over the run's evaluation window."""

    @property
    def display_name(self) -> str:
        """`name` when set, else a name built from the fields (`message:send p99 <= 250ms`, `... (stage 2)`)."""
        if self.name is not None:
            return self.name
        return self._default_name() + (f" (stage {self.stage})" if self.stage is not None else "")

    def _default_name(self) -> str:
        raise NotImplementedError

    @property
    def whole_stage(self) -> bool:
        """Judged over a stage's whole span, its settle included, instead of its plateau."""
        return False


class LatencySlo(_Slo):
    """`percentile` of `request`'s latency (`delivery`: the WS message:new entry) at most `max` seconds."""

    kind: Literal["latency"]
    request: RequestName
    percentile: Annotated[float, _between(50, 99.99)]
    max: Duration = Field(gt=0)

    def _default_name(self) -> str:
        return f"{self.request} p{self.percentile:g} <= {format_duration(self.max)}"

    @property
    def whole_stage(self) -> bool:
        """Judged over a stage's whole span, its settle included: a stage's new users connect in its settle, so
        its plateau may hold no connect at all."""
        return self.request == "connect"


class ErrorRatioSlo(_Slo):
    """Failures / requests of `request` (every request name when unset) at most `max`."""

    kind: Literal["error_ratio"]
    request: RequestName | None = None
    max: Annotated[float, _between(0, 1)]

    def _default_name(self) -> str:
        prefix = f"{self.request} " if self.request is not None else ""
        return f"{prefix}error ratio <= {round(self.max * 100, 4):g}%"


class CheckerSlo(_Slo):
    """A delivery checker counter (checker.json) at most `max`."""

    kind: Literal["checker"]
    counter: Literal["lost", "duplicated", "out_of_order", "redelivered"]
    max: int = Field(ge=0)

    def _default_name(self) -> str:
        return f"{self.counter} <= {self.max}"


class ThroughputSlo(_Slo):
    """`request`'s achieved rate: at least `min_rps` requests/s, or at least `min_ratio` of the target send rate."""

    kind: Literal["throughput"]
    request: RequestName
    min_rps: float | None = Field(default=None, gt=0)
    min_ratio: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if (self.min_rps is None) == (self.min_ratio is None):
            _raise_problems([((), "give exactly one of min_rps and min_ratio")])
        return self

    def _default_name(self) -> str:
        if self.min_ratio is not None:
            return f"{self.request} >= {round(self.min_ratio * 100, 4):g}% of target rate"
        return f"{self.request} >= {self.min_rps:g} req/s"


class RecoverySlo(_Slo):
    """Every injected fault: the clients recovered (no failed request for a while, sends succeeding again) within
    `max` seconds of the fault's start (faults.json, docs/chaos.md)."""

    kind: Literal["recovery"]
    max: Duration = Field(gt=0)

    def _default_name(self) -> str:
        return f"recovery <= {format_duration(self.max)}"


class NotificationSlo(_Slo):
    """The alert sink received a firing notification of `alert` at `receiver` during the run
    (notifications.json, written when the run had an alert sink: docs/chaos.md)."""

    kind: Literal["notification"]
    alert: Annotated[str, AfterValidator(_not_blank)]
    receiver: Annotated[str, AfterValidator(_not_blank)]

    def _default_name(self) -> str:
        return f"{self.alert} notified to {self.receiver}"


class ConnectedSlo(_Slo):
    """The fewest socket.io connections the generator held at any sample of the window (about every 3 s), at least
    `min_ratio` of the connected users the stage asks for (generator.jsonl)."""

    kind: Literal["connected"]
    min_ratio: float = Field(gt=0, le=1)

    def _default_name(self) -> str:
        return f"connected >= {round(self.min_ratio * 100, 4):g}% of users"


Slo = Annotated[LatencySlo | ErrorRatioSlo | CheckerSlo | ThroughputSlo | RecoverySlo | NotificationSlo
                | ConnectedSlo, Field(discriminator="kind")]
_SLO_BY_KIND: dict[str, type[_Slo]] = {"latency": LatencySlo, "error_ratio": ErrorRatioSlo, "checker": CheckerSlo,
                                       "throughput": ThroughputSlo, "recovery": RecoverySlo,
                                       "notification": NotificationSlo, "connected": ConnectedSlo}

FAULT_ACTIONS = ("kill-instance", "restart-redis", "stop-postgres")


class Fault(_Model):
    """A fault injected while the run sends: `action` begins `at` seconds after the run's start and is undone
    `duration` later (the killed instance started again, Redis or PostgreSQL back)."""

    action: Literal["kill-instance", "restart-redis", "stop-postgres"]
    at: Duration = Field(gt=0)
    duration: Duration = Field(ge=0)
    instance: int = Field(default=2, ge=1)
    """kill-instance: which instance (1-based, as the local stack numbers them)."""


class Capacity(_Model):
    """Step-load evaluation: each stage on its plateau."""

    stop_on_breach: bool = False


@dataclass(frozen=True)
class ResolvedStage:
    """A stage with its place in the run and every user count filled in."""

    index: int
    offset: float
    """Start, seconds from the start of the run."""
    duration: float
    settle: float
    messages_per_second: float
    pairs: int
    rest_users: int
    upload_users: int

    @property
    def users(self) -> int:
        """Connected chat users: two per pair."""
        return 2 * self.pairs

    @property
    def end(self) -> float:
        """End, seconds from the start of the run."""
        return self.offset + self.duration


class Scenario(_Model):
    """One scenario file."""

    name: Annotated[str, AfterValidator(_scenario_name)]
    description: Annotated[str, AfterValidator(_not_blank)]
    data: DataVolume | None = None
    warmup: Duration = 0.0
    grace: Duration = 5.0
    personas: Personas = Personas()
    load: Load
    slos: list[Slo] = Field(default_factory=list)
    capacity: Capacity | None = None
    faults: list[Fault] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        personas = self.personas
        for stage, resolved in zip(self.load.stages, self.resolved_stages(), strict=True):
            at: Loc = ("load", "stages", resolved.index)
            for field, persona, key in (("pairs", personas.chat, "chat"), ("users", personas.chat, "chat"),
                                        ("rest_users", personas.rest, "rest"),
                                        ("upload_users", personas.upload, "upload")):
                if (getattr(stage, field) or 0) > 0 and persona is None:
                    problems.append(((*at, field), f"needs personas.{key}"))
            if stage.messages_per_second is None and (personas.chat is None or personas.chat.send_every is None):
                problems.append(((*at, "messages_per_second"), "required unless personas.chat.send_every says how "
                                                               "often each user sends"))
            elif resolved.messages_per_second > 0 and personas.chat is not None and resolved.pairs == 0:
                problems.append(((*at, "messages_per_second"), "sending needs pairs > 0 (personas.chat.pairs or "
                                                               "users, or the stage's)"))
            elif resolved.messages_per_second > 0 and personas.chat is None and not stage.pairs:
                problems.append(((*at, "messages_per_second"), "sending needs personas.chat"))
        if self.warmup >= self.send_duration:
            problems.append((("warmup",), f"must be shorter than the stages ({format_duration(self.warmup)} >= "
                                          f"{format_duration(self.send_duration)}): nothing would be evaluated"))
        sends = any(stage.messages_per_second > 0 for stage in self.resolved_stages())
        seen: dict[str, int] = {}
        for index, slo in enumerate(self.slos):
            if isinstance(slo, ThroughputSlo) and slo.min_ratio is not None and not sends:
                problems.append((("slos", index, "min_ratio"), "needs a stage with messages_per_second > 0"))
            name = slo.display_name
            if name in seen:
                problems.append((("slos", index), f"same name as slos.{seen[name]} ({name!r}): set a distinct name"))
            seen.setdefault(name, index)
        for index, fault in enumerate(self.faults):
            if fault.at + fault.duration >= self.send_duration:
                problems.append((("faults", index), f"must be over before the sends end ({format_duration(fault.at)} "
                                                    f"+ {format_duration(fault.duration)} >= "
                                                    f"{format_duration(self.send_duration)})"))
        for index, slo in enumerate(self.slos):
            if slo.stage is None:
                continue
            if isinstance(slo, CheckerSlo | RecoverySlo | NotificationSlo):
                problems.append((("slos", index, "stage"), f"a {slo.kind} SLO is judged over the whole run"))
            elif slo.stage >= len(self.load.stages):
                problems.append((("slos", index, "stage"), f"no stage {slo.stage}: the stages are 0.."
                                                           f"{len(self.load.stages) - 1}"))
        if any(isinstance(slo, RecoverySlo) for slo in self.slos) and not self.faults:
            problems.append((("slos",), "a recovery SLO needs faults"))
        if self.capacity is not None and len(self.load.stages) < 2:
            problems.append((("capacity",), "needs at least 2 load stages"))
        if problems:
            _raise_problems(problems)
        return self

    @property
    def send_duration(self) -> float:
        """Seconds of sending: the sum of the stage durations."""
        return sum(stage.duration for stage in self.load.stages)

    @property
    def peak_users(self) -> int:
        """The most connected chat users a stage asks for."""
        return max((stage.users for stage in self.resolved_stages()), default=0)

    @property
    def peak_messages_per_second(self) -> float:
        return max(stage.messages_per_second for stage in self.resolved_stages())

    def resolved_stages(self) -> list[ResolvedStage]:
        """The stages with their offsets and user counts (the personas' numbers where a stage leaves them unset,
        0 for an absent persona)."""
        chat, rest, upload = self.personas.chat, self.personas.rest, self.personas.upload
        defaults = (chat.size_in_pairs if chat else 0, rest.users if rest else 0, upload.users if upload else 0)
        resolved: list[ResolvedStage] = []
        offset = 0.0
        for index, stage in enumerate(self.load.stages):
            pairs = stage.pairs if stage.users is None else _pairs_of(stage.users)
            counts = [default if value is None else value
                      for value, default in zip((pairs, stage.rest_users, stage.upload_users), defaults,
                                                strict=True)]
            rate = stage.messages_per_second
            if rate is None:   # each connected user sends once every send_every
                every = chat.send_every if chat is not None else None
                rate = round(2 * counts[0] / every, 3) if every else 0.0
            resolved.append(ResolvedStage(index=index, offset=offset, duration=stage.duration, settle=stage.settle,
                                          messages_per_second=rate, pairs=counts[0],
                                          rest_users=counts[1], upload_users=counts[2]))
            offset += stage.duration
        return resolved

    def with_duration(self, seconds: float) -> Scenario:
        """A copy whose stages are scaled to sum to `seconds` (rounded to milliseconds, the last stage takes the
        remainder). Settle times and the warm-up keep their length when they still fit, else scale the same way."""
        if not math.isfinite(seconds) or seconds <= 0:
            raise ScenarioError(f"{self.name}: duration: must be > 0 seconds, got {seconds:g}")
        factor = seconds / self.send_duration
        stages: list[dict[str, Any]] = []
        elapsed = 0.0
        for index, stage in enumerate(self.load.stages):
            last = index == len(self.load.stages) - 1
            duration = round(seconds - elapsed if last else stage.duration * factor, 3)
            elapsed += duration
            settle = stage.settle if stage.settle < duration else round(stage.settle * factor, 3)
            stages.append(stage.model_dump() | {"duration": duration, "settle": settle})
        warmup = self.warmup if self.warmup < seconds else round(self.warmup * factor, 3)
        # a fault keeps its length when it still fits; its start moves with the stages
        faults = [fault.model_dump() | {"at": round(fault.at * factor, 3),
                                        "duration": fault.duration if fault.at * factor + fault.duration < seconds
                                        else round(fault.duration * factor, 3)} for fault in self.faults]
        data = self.model_dump() | {"warmup": warmup, "load": {"stages": stages}, "faults": faults}
        try:
            return Scenario.model_validate(data)
        except ValidationError as exc:
            raise ScenarioError(*_error_lines(f"{self.name} (duration {format_duration(seconds)})", exc)) from None

    def to_yaml(self) -> str:
        """The scenario as YAML that `load_scenario` reads back to an equal model (durations in seconds)."""
        return yaml.dump(self.model_dump(mode="json", exclude_none=True), Dumper=_Dumper, sort_keys=False,
                         allow_unicode=True, width=120)


# --- loading --------------------------------------------------------------------------------------------------


def scenario_paths() -> list[Path]:
    """The scenario files shipped in SCENARIO_DIR, sorted."""
    return sorted(SCENARIO_DIR.glob("*.yaml"))


def scenario_names() -> list[str]:
    return [path.stem for path in scenario_paths()]


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A Path, or a string with a `/` or ending in .yaml/.yml, is a file path; any other string names a file in
    SCENARIO_DIR (ScenarioError listing the known names when there is none)."""
    if isinstance(name_or_path, Path):
        return name_or_path
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return Path(name_or_path)
    path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(scenario_names()) or "none"
        raise ScenarioError(f"{display_path(path)}: unknown scenario {name_or_path!r} (known: {known})")
    return path


def display_path(path: Path) -> str:
    """The path relative to the working directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def load_scenario(name_or_path: str | Path, *, check_name: bool = True) -> Scenario:
    """Read and validate a scenario by name (SCENARIO_DIR/<name>.yaml) or path. `name` must equal the file's stem
    unless `check_name` is false (a run folder's `scenario.yaml`). Raises ScenarioError."""
    path = resolve_scenario_path(name_or_path)
    source = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{source}: no such file") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{source}: not UTF-8 text") from None
    except OSError as exc:
        raise ScenarioError(f"{source}: cannot read: {exc.strerror or exc}") from None
    return parse_scenario(text, source, expected_name=path.stem if check_name else None)


def parse_scenario(text: str, source: str = "<string>", *, expected_name: str | None = None) -> Scenario:
    """Validate a scenario from YAML text; `source` prefixes the error lines. Raises ScenarioError."""
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise ScenarioError(f"{source}: {where}{problem}{context}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: invalid YAML: {exc}") from None
    if data is None:
        raise ScenarioError(f"{source}: empty file")
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: must be a mapping of the scenario's fields, got {type(data).__name__}")
    lines: list[str] = []
    if expected_name is not None and isinstance(data.get("name"), str) and data["name"] != expected_name:
        lines.append(f"{source}: name: {data['name']!r} does not match the file name ({expected_name!r})")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        lines.extend(_error_lines(source, exc))
    if lines:
        raise ScenarioError(*lines)
    return scenario


class _Loader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys (PyYAML would keep the last one silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Dumper(yaml.SafeDumper):
    """A SafeDumper that writes multi-line strings as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


# --- error lines ----------------------------------------------------------------------------------------------


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _error_lines(source: str, exc: ValidationError) -> list[str]:
    """One `<source>: <location>: <message>` line per pydantic error, the locations without the SLO kind tags
    pydantic inserts and the messages in the scenario's terms."""
    lines: list[str] = []
    for error in exc.errors():
        loc, model = _walk(tuple(error["loc"]))
        if error["type"] == _PROBLEMS:
            problems: list[tuple[Loc, str]] = error["ctx"]["problems"]
            lines.extend(_line(source, (*loc, *sub), message) for sub, message in problems)
            continue
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        lines.append(_line(source, loc, _message(error, model)))
    return lines


def _line(source: str, loc: Loc, message: str) -> str:
    return f"{source}: {_dotted(loc)}: {message}" if loc else f"{source}: {message}"


def _message(error: Any, parent: type[BaseModel] | None) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "extra_forbidden":
        fields = list(parent.model_fields) if parent is not None else []
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, fields, n=1)
        if close:
            return f"unknown field (did you mean {close[0]}?)"
        return f"unknown field (expected one of: {', '.join(fields)})" if fields else "unknown field"
    simple = {
        "missing": "field required",
        "int_type": "must be an integer",
        "float_type": "must be a number",
        "finite_number": "must be a finite number",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "tuple_type": "must be a list",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "dict_type": "must be a mapping",
    }
    if kind in simple:
        return simple[kind]
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        shown = f"{limit:g}" if isinstance(limit, int | float) else limit
        return f"must be {bounds[kind]} {shown}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}, got {error['input']!r}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "union_tag_invalid":
        return f"unknown SLO kind {ctx.get('tag')!r} (one of {', '.join(_SLO_BY_KIND)})"
    if kind == "union_tag_not_found":
        return f"field required (one of {', '.join(_SLO_BY_KIND)})"
    return str(error["msg"])


def _walk(loc: Loc) -> tuple[Loc, type[BaseModel] | None]:
    """Follow a pydantic error location through the Scenario model: the location without the discriminated
    union's tags, and the model holding its last part (None when not a model field)."""
    shown: list[str | int] = []
    current: Any = Scenario
    parent: type[BaseModel] | None = None
    for part in loc:
        current = _unwrap(current)
        parent = current if isinstance(current, type) and issubclass(current, BaseModel) else None
        if isinstance(part, int):
            args = get_args(current)
            current = args[0] if get_origin(current) in (list, tuple) and args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = field.annotation if field is not None else None
        elif _is_union(current) and part in _SLO_BY_KIND:
            current = _SLO_BY_KIND[part]
            continue  # the tag pydantic inserts: not a location in the file
        else:
            current = None
        shown.append(part)
    return tuple(shown), parent


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and the None of an optional."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif _is_union(tp):
            args = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp
