"""Versioned prompt templates: files templates/<task>/<version>.md with a front-matter header.

Templates use {{name}} placeholders (the syntax MLflow's prompt registry uses). The hash of
the template text identifies a prompt across runs, whatever its file is called.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nova_mlflow.errors import InputError
from nova_mlflow.schemas import Task

DEFAULT_VERSION = "v1"
_VAR = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class Prompt:
    task: Task | str  # a Task, or "judge" for the diagnosis judge
    name: str
    version: str
    template: str
    meta: dict[str, str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()[:16]

    @property
    def variables(self) -> set[str]:
        return set(_VAR.findall(self.template))

    def render(self, **values: object) -> str:
        missing = self.variables - values.keys()
        if missing:
            raise KeyError(f"prompt {self.name}@{self.version} needs {sorted(missing)}")
        return _VAR.sub(lambda m: str(values[m.group(1)]), self.template)


#: The templates shipped with the package: templates/<task>/<version>.md (package data).
PACKAGED = Path(__file__).resolve().parent / "templates"


def prompts_dirs() -> list[Path]:
    """Where prompt versions are looked up, first hit wins: $NOVA_MLFLOW_PROMPTS (your own
    versions, e.g. my_prompts/diagnosis/v3.md), then the packaged templates."""
    env = os.environ.get("NOVA_MLFLOW_PROMPTS")
    return ([Path(env).expanduser()] if env else []) + [PACKAGED]


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    if not text.startswith("---"):
        return {}, text.strip()
    _, head, body = text.split("---", 2)
    meta = {}
    for line in head.strip().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            meta[k.strip()] = v.strip()
    return meta, body.strip()


@lru_cache(maxsize=64)
def load_prompt(task: Task | str, version: str = DEFAULT_VERSION, root: Path | None = None) -> Prompt:
    name = task.value if isinstance(task, Task) else task
    bases = [root] if root is not None else prompts_dirs()
    path = next((b / name / f"{version}.md" for b in bases
                 if (b / name / f"{version}.md").is_file()), None)
    if path is None:
        available = sorted({p.stem for b in bases for p in (b / name).glob("*.md")})
        raise InputError(f"no prompt version {version!r} for {name} "
                         f"(available: {', '.join(available) or 'none'})",
                         file=bases[0] / name / f"{version}.md")
    meta, body = _split_front_matter(path.read_text(encoding="utf-8"))
    return Prompt(task=task, name=meta.get("name", f"nova-{name}"),
                  version=meta.get("version", version), template=body, meta=meta)


def parse_prompt_flags(flags: list[str] | tuple[str, ...]) -> dict[Task, str]:
    """`--prompt TASK=VERSION[,TASK=VERSION]` values -> {task: version}; bad ones are InputErrors."""
    out: dict[Task, str] = {}
    items = [part.strip() for flag in flags for part in flag.split(",") if part.strip()]
    for flag in items:
        task, sep, version = flag.partition("=")
        try:
            t = Task(task.strip())
        except ValueError:
            raise InputError(f"--prompt {flag!r}: unknown task {task!r} "
                             f"(use one of {', '.join(t.value for t in Task)})") from None
        if not sep or not version.strip():
            raise InputError(f"--prompt {flag!r}: expected TASK=VERSION, e.g. localization=v2")
        out[t] = version.strip()
    return out


def render_case(prompt: Prompt, *, width: int, height: int, clinical_history: str | None,
                caption: str | None) -> str:
    """The text sent for one case: the one place a template meets a case's fields.

    A template uses the fields it names; a missing history or caption reads "(not given)".
    """
    values = {"width": width, "height": height,
              "clinical_history": clinical_history or "(not given)",
              "caption": caption or "(not given)"}
    return prompt.render(**{k: v for k, v in values.items() if k in prompt.variables})
