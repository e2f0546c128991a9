"""Job states (Sky Port's one-letter codes), the one table of allowed transitions, the one table of
what each user action does from each state, and history."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import InvalidTransition


class JobState(str, enum.Enum):
    """A job's state; the value is the readable name, ``code`` the Sky Port letter."""

    QUEUED = "queued"
    HELD = "held"
    WAITING = "waiting"
    TRANSFERRING = "transferring"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    CANCELED = "canceled"

    @property
    def code(self) -> str:
        """The Sky Port one-letter code (Q H W T R F E C)."""
        return _CODES[self]

    @property
    def final(self) -> bool:
        """True for states a job never leaves by itself (F, E, C)."""
        return self in FINAL_STATES

    @classmethod
    def parse(cls, text: str) -> JobState:
        """Return the state named by ``text``: a readable name or a one-letter code."""
        low = text.strip().lower()
        for state in cls:
            if low == state.value or low == state.code.lower():
                return state
        raise ValueError(f"unknown state {text!r}; use one of {', '.join(s.value for s in cls)}")


_CODES = {
    JobState.QUEUED: "Q",
    JobState.HELD: "H",
    JobState.WAITING: "W",
    JobState.TRANSFERRING: "T",
    JobState.RUNNING: "R",
    JobState.FINISHED: "F",
    JobState.ERROR: "E",
    JobState.CANCELED: "C",
}

FINAL_STATES = frozenset({JobState.FINISHED, JobState.ERROR, JobState.CANCELED})

#: The filter word (``GET /jobs?state=failed``, ``swm jobs --state failed``) for jobs that failed.
FAILED = "failed"


def is_failed(state: str, exit_code: int | None, signal: int | None = None) -> bool:
    """True for a job that failed: ended in ``error``, or ``finished`` with a non-zero exit code or a signal.

    ``state`` is a state name (or a :class:`JobState`). The store's listing filter (``failed_sql`` in
    ``core/store.py``) says the same in SQL.
    """
    name = JobState(state).value if not isinstance(state, JobState) else state.value
    if name == JobState.ERROR.value:
        return True
    return name == JobState.FINISHED.value and (bool(exit_code) or bool(signal))


ACTIVE_STATES = frozenset({JobState.WAITING, JobState.TRANSFERRING, JobState.RUNNING})

Q, H, W, T, R, F, E, C = (
    JobState.QUEUED,
    JobState.HELD,
    JobState.WAITING,
    JobState.TRANSFERRING,
    JobState.RUNNING,
    JobState.FINISHED,
    JobState.ERROR,
    JobState.CANCELED,
)

#: Every allowed move. Requeue (a final state back to Q) is the only way out of F, E and C.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    Q: frozenset({H, W, T, R, F, E, C}),
    H: frozenset({Q, W, E, C}),  # W: released while it waits in the site's own queue
    W: frozenset({Q, H, T, R, F, E, C}),
    T: frozenset({W, R, F, E, C}),
    R: frozenset({Q, T, F, E, C}),
    F: frozenset({Q}),
    E: frozenset({Q}),
    C: frozenset({Q}),
}


class Action(str, enum.Enum):
    """What a user may ask of a job."""

    CANCEL = "cancel"
    HOLD = "hold"
    RELEASE = "release"
    REQUEUE = "requeue"


#: Every user action, the states it is allowed from, and the state it leads to there. An action
#: from a state not listed is refused (409) before anything changes. Cancel from T stops collecting
#: outputs; hold from W holds the job in the site's own queue (if the site can); release of a job
#: held in the site's queue leads to W (the site still has it); requeue from W or R stops the run
#: on the site first. Requeue from T is refused: the run's outputs are being collected.
ACTIONS: dict[Action, dict[JobState, JobState]] = {
    Action.CANCEL: {Q: C, H: C, W: C, T: C, R: C},
    Action.HOLD: {Q: H, W: H},
    Action.RELEASE: {H: Q},
    Action.REQUEUE: {W: Q, R: Q, F: Q, E: Q, C: Q},
}


def check_action(state: JobState, action: Action) -> JobState:
    """The state ``action`` leads to from ``state``; :class:`InvalidTransition` (409) if not allowed."""
    allowed = ACTIONS[action]
    if state in allowed:
        return allowed[state]
    what = {
        Action.CANCEL: "canceled",
        Action.HOLD: "held",
        Action.RELEASE: "released",
        Action.REQUEUE: "requeued",
    }[action]
    why = "it already ended" if action is Action.CANCEL and state.final else ""
    raise InvalidTransition(
        f"a job that is {state.value} cannot be {what}" + (f": {why}" if why else ""),
        [
            {
                "field": "state",
                "message": f"{action.value} is allowed from: " + ", ".join(s.value for s in allowed),
            }
        ],
    )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One state change: when, into which state, and why."""

    time: float
    state: JobState
    details: str = ""

    def to_dict(self) -> dict[str, object]:
        """The JSON form used by the API and the store."""
        return {"time": self.time, "state": self.state.value, "code": self.state.code, "details": self.details}


def check_transition(current: JobState, new: JobState) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> new`` is in :data:`TRANSITIONS`.

    Staying in the same state is always allowed (it only updates the details).
    """
    if new is current or new in TRANSITIONS[current]:
        return
    raise InvalidTransition(
        f"a job that is {current.value} cannot become {new.value}",
        [
            {
                "field": "state",
                "message": f"allowed from {current.value}: " + ", ".join(sorted(s.value for s in TRANSITIONS[current])),
            }
        ],
    )
