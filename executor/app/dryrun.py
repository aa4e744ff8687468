"""`job-executor render`: the pipeline's steps without a cluster or a state. Match the event,
plan each task, collect its files and render the Kubernetes objects it would create, in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from executor.backends.kubernetes.render import RenderOptions, render_task
from executor.concurrency import claim_for
from executor.config.model import JobConfig
from executor.matcher import matching_actions
from executor.model.events import Event
from executor.model.problems import FilesError
from executor.planner import PlanError, plan_action
from executor.policy import PolicyError
from executor.resolvers.local import collect_files
from executor.settings import Settings


class DryRunError(ValueError):
    """A task of a matching action was refused (policy, plan or files); says which action."""


def dry_run(
    config: JobConfig,
    event: Event,
    settings: Settings,
    *,
    files_source: str,
    files_root: Path,
) -> list[dict[str, Any]] | None:
    """The objects `event` would create under `config`; None when no action matches it."""
    actions = matching_actions(config, event)
    if not actions:
        return None
    options = RenderOptions(
        init_image=settings.jobs.init_image,
        files_source=files_source,
        keptn_api_url=settings.keptn.api_endpoint,
        keptn_token_secret=settings.keptn.api_token_secret,
        managed_by=settings.jobs.deployment_name,
    )
    objects: list[dict[str, Any]] = []
    for action in actions:
        try:
            for spec in plan_action(event, action, config, settings, level="file"):
                files = collect_files(spec.files, [files_root]) if files_source == "configmap" else None
                objects.extend(render_task(spec, options, files))
        except (PolicyError, PlanError, FilesError) as exc:
            raise DryRunError(f"action '{action.name}': {exc}") from None
    return objects


def concurrency_notes(config: JobConfig, event: Event) -> list[str]:
    """What `render` says on stderr of each matching action's `concurrency`: the key this event
    falls under, the limit and what a run beyond it does (no object shows it)."""
    notes = []
    for action in matching_actions(config, event):
        claim = claim_for(config, action, event)
        if claim is not None:
            notes.append(
                f"{claim.describe()}: at most {claim.rule.limit} run(s) at once, "
                f"onConflict: {claim.rule.on_conflict}"
            )
    return notes
