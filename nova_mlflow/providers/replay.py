"""Replay: answers from a JSONL file (the `evaluate` format) served as if a model gave them.

`--model replay:PATH` re-runs the whole pipeline (prompts, runner, scoring, logging) on stored
answers; since the file's model is unknown here, pass its box frame with --frame.
The file is read under the outputs-file rules (data/answers.py), and its filenames must be
in the dataset. A case without a line in the file, or with text null, ends as `missing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nova_mlflow.data.answers import read_answers
from nova_mlflow.providers import register
from nova_mlflow.providers.base import NoAnswer, Request, Response
from nova_mlflow.schemas import Case


class ReplayedFailure(RuntimeError):
    """The stored line records a call that failed: replayed as a failure, never as an empty
    answer (not retried: base.classify sees nothing transient in it)."""


class ReplayProvider:
    name = "replay"
    cacheable = False  # answers depend on local inputs, and cost nothing

    def __init__(self, model: str, cases: Sequence[Case] = (), **_: object) -> None:
        self.model = model
        self.path = Path(model.split(":", 1)[1])
        self._answers = read_answers(self.path, {c.filename for c in cases} if cases else None)

    async def generate(self, request: Request) -> Response:
        a = self._answers.get((request.filename, request.task))
        if a is None or (a.text is None and a.status == "answered"):
            raise NoAnswer(f"{self.path.name} has no {request.task.value} answer for {request.filename}")
        if a.status == "api_error":
            raise ReplayedFailure(a.error or "the stored call failed")
        return Response(text=a.text or "", refused=a.status == "refused",
                        input_tokens=a.input_tokens, output_tokens=a.output_tokens)


@register("replay")
def _factory(model: str, cases: Sequence[Case] = (), **_: object) -> ReplayProvider:
    return ReplayProvider(model, cases)
