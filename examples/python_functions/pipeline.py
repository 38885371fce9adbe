"""Lead scoring with in-process Python function blocks, built with the Python builder.

Function blocks can run code written in the workflow (``config.code``, in a worker
process) or call a function of your own package in-process with
``config.python: "package.module:function"``. The second form is what you want when the
logic lives in your code base and is unit-tested there.

Run it::

    python -m examples.python_functions.pipeline
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from engine import Engine, Workflow

MODULE = "examples.python_functions.pipeline"

FREE_MAIL = {"gmail.com", "yahoo.com", "outlook.com", "hotmail.com"}


def score_lead(lead: Any) -> dict[str, Any]:
    """Score a lead from its company size and e-mail domain (0-100)."""
    domain = lead.email.rsplit("@", 1)[-1].lower()
    score = min(60, lead.employees // 10)
    score += 0 if domain in FREE_MAIL else 30
    score += 10 if lead.country in {"FR", "DE", "NL"} else 0
    return {"name": lead.name, "email": lead.email, "score": score}


def assign_owner(scored: Any) -> dict[str, Any]:
    """Hot leads go to sales, the rest to the nurture campaign."""
    owner = "sales" if scored.score >= 60 else "nurture"
    return {"lead": scored.name, "owner": owner, "score": scored.score}


LEAD_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "email": {"type": "string"},
        "employees": {"type": "integer"},
        "country": {"type": "string"},
    },
    "required": ["name", "email", "employees", "country"],
}


def build_workflow() -> Workflow:
    """start_json -> score -> assign -> end."""
    return (
        Workflow.builder("Lead scoring")
        .block("lead", "start_json", config={"json_schema": LEAD_SCHEMA})
        .block("score", "function", label="Score lead", config={
            "python": f"{MODULE}:score_lead",
            "output_schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string"},
                               "score": {"type": "integer"}},
                "required": ["name", "score"],
            },
        })
        .block("assign", "function", label="Assign owner", config={
            "python": f"{MODULE}:assign_owner",
            "output_schema": {
                "type": "object",
                "properties": {"owner": {"enum": ["sales", "nurture"]}},
                "required": ["owner"],
            },
        })
        .block("done", "end")
        .edge("lead", "score")
        .edge("score", "assign")
        .edge("assign", "done")
        .build()
    )


SAMPLE_LEAD = {"name": "Ada Martin", "email": "ada@factory.example", "employees": 450,
               "country": "FR"}


#: Where ``main()`` keeps its runs by default: a temporary folder, not the current one.
DEFAULT_DB = Path(tempfile.gettempdir()) / "stepwell-examples" / "python_functions.db"


def main(db: str | Path | None = None, lead: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the workflow once and return what reached the end block.

    Args:
        db: the database (default :data:`DEFAULT_DB`, in the temporary folder).
        lead: the lead to score (default: a sample).
    """
    db = db or DEFAULT_DB
    print(f"database: {db}")
    with Engine(db) as engine:
        result = engine.run(build_workflow(), {"lead": lead or SAMPLE_LEAD})
        print(f"run {result.run_id}: {result.status.value}")
        for step in engine.client.workflows.steps.list(result.run_id).data:
            print(f"  {step.step_id:<8} {step.lifecycle.status}")
        if not result.ok:
            raise SystemExit(f"run failed at {result.failing_step_id}: {result.error}")
        assigned = result.outputs["done"]["input-json-0"]["data"]
        print(f"owner: {assigned['owner']} (score {assigned['score']})")
        return assigned


if __name__ == "__main__":
    main(*sys.argv[1:2])
