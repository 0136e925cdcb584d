"""Replay: answers from a JSONL file (the `evaluate` format) served as if a model gave them.

`--model replay:PATH` re-runs the whole pipeline (prompts, runner, scoring, logging) on stored
answers; since the file's model is unknown here, pass its box frame with --frame.
A case without a line in the file ends as `missing`, not as an error.
"""

from __future__ import annotations

from pathlib import Path

from nova_mlflow.data.answers import read_answers
from nova_mlflow.providers import register
from nova_mlflow.providers.base import NoAnswer, Request, Response


class ReplayProvider:
    name = "replay"
    cacheable = False  # answers depend on local inputs, and cost nothing

    def __init__(self, model: str, **_: object) -> None:
        self.model = model
        self.path = Path(model.split(":", 1)[1])
        self._answers = read_answers(self.path)

    async def generate(self, request: Request) -> Response:
        a = self._answers.get((request.filename, request.task))
        if a is None:
            raise NoAnswer(f"{self.path.name} has no {request.task.value} answer for {request.filename}")
        return Response(text=a.text or "", refused=a.status == "refused",
                        input_tokens=a.input_tokens, output_tokens=a.output_tokens)


@register("replay")
def _factory(model: str, **_: object) -> ReplayProvider:
    return ReplayProvider(model)
