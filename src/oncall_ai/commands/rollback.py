"""`oncall-ai rollback-prompt` and `oncall-ai rollback-pin`: plan, show, confirm, apply, push, record."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from typer.core import TyperCommand

from oncall_ai.commands import JsonOpt, get_context

# Options of these two commands that take a value (for the --push [REMOTE] parsing below).
_VALUE_OPTIONS = {"--to", "--branch", "--incident", "--message", "-m", "--file", "--change"}


class _OptionalPushCommand(TyperCommand):
    """Gives `--push` an optional value: `--push` alone means `--push origin`.

    typer has no optional-value options, so the arguments are rewritten before parsing: a `--push`
    followed by nothing, by another option, or by the only word that could be TARGET/KEY becomes
    `--push=origin`; `--push NAME` and `--push=NAME` name the remote."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, _expand_push(list(args)))


def _expand_push(args: list[str]) -> list[str]:
    out: list[str] = []
    positionals = 0
    i = 0
    push_at = []
    while i < len(args):
        a = args[i]
        if a == "--":
            out.extend(args[i:])
            positionals += len(args) - i - 1
            break
        if a == "--push":
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is None or nxt.startswith("-"):
                out.append("--push=origin")
                i += 1
                continue
            push_at.append(len(out))
            out += ["--push", nxt]
            i += 2
            continue
        out.append(a)
        if a in _VALUE_OPTIONS:
            if i + 1 < len(args):
                out.append(args[i + 1])
            i += 2
            continue
        if not a.startswith("-"):
            positionals += 1
        i += 1
    if positionals == 0 and push_at:
        # `rollback-prompt --push 1a2b3c4 --yes`: the word after --push is the target, not a remote
        k = push_at[-1]
        out[k:k + 2] = [out[k + 1], "--push=origin"]
    return out


def register(app: typer.Typer) -> None:
    app.command("rollback-prompt", cls=_OptionalPushCommand)(rollback_prompt)
    app.command("rollback-pin", cls=_OptionalPushCommand)(rollback_pin)


ToRevOpt = Annotated[str | None, typer.Option("--to", metavar="REV",
                                              help="Restore the target's files to their content at REV (sha, tag, branch) instead of undoing one commit.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", "-n", help="Print the plan and stop; change nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking (required when there is no terminal).")]
PushOpt = Annotated[str | None, typer.Option("--push", metavar="[REMOTE]",
                                             help="Push the branch to REMOTE (default origin) after committing; never forced.")]
BranchOpt = Annotated[str | None, typer.Option("--branch", metavar="NAME",
                                               help="Commit on a new branch NAME (for review) instead of the current branch; your checkout is left as it is.")]
IncidentOpt = Annotated[str | None, typer.Option("--incident", metavar="ID", help="Incident id, written as a commit trailer and in the record.")]
MessageOpt = Annotated[str | None, typer.Option("--message", "-m", metavar="TEXT", help="Why: added to the commit message.")]


def rollback_prompt(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="TARGET",
                                          help="A commit sha to undo (full or abbreviated), a prompt path, or a feature name.")],
    to: ToRevOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    push: PushOpt = None,
    branch: BranchOpt = None,
    incident: IncidentOpt = None,
    message: MessageOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Roll back a prompt change in the prompt repo, as a new commit.

    TARGET is a commit sha (undo what that commit did to prompt files; its other files and later
    edits stay), a prompt path or a feature name (undo the most recent commit that touched them).
    With --to REV, the target's files are restored to their content at REV instead.

    Safety: the plan (commits undone, the exact diff, branch, push) is printed first; --dry-run
    stops there. Applying needs --yes or a yes on a terminal: a script without --yes is refused.
    It refuses, changing nothing, on uncommitted changes, a detached HEAD, a merge/rebase in
    progress, an unknown or ambiguous sha, paths outside the repo, or a conflict with later edits
    (naming the commit). History is never rewritten, pushes are never forced, and a failure half
    way restores the repo. Exit codes: 0 done (or nothing to do), 1 refused or push rejected, 2 usage.
    """
    from oncall_ai.actions.rollback import plan_prompt_rollback

    cfg = get_context(ctx).config()
    plan = plan_prompt_rollback(cfg, target, to=to, branch=branch, push=push, incident=incident,
                                message=message, interactive=_can_ask())
    return _run(ctx, plan, dry_run=dry_run, yes=yes, json_out=json_out)


def rollback_pin(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="KEY", help="The pin key (models file) or the index name (--file indexes).")],
    to: Annotated[str | None, typer.Option("--to", metavar="VALUE", help="The value to set (a model id, an index version).")] = None,
    change: Annotated[str | None, typer.Option("--change", metavar="SHA",
                                               help="Undo this commit's change to KEY: restore the value KEY had before it.")] = None,
    file: Annotated[str, typer.Option("--file", metavar="pins|indexes",
                                      help="pins: the `pins` file (key -> model id); indexes: the `indexes` file (<index>.version).")] = "pins",
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    push: PushOpt = None,
    branch: BranchOpt = None,
    incident: IncidentOpt = None,
    message: MessageOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Set a model pin (or an index version) back, as a commit in the platform repo.

    Only the value's characters on its line change: comments, order, quoting and layout stay, and
    the file is re-parsed to check nothing else moved. Same plan, --dry-run, --yes, safety checks,
    trailers and record as rollback-prompt. With --change SHA, a later change to the same key is
    refused rather than silently undone too.
    """
    from oncall_ai.actions.rollback import plan_pin_rollback

    cfg = get_context(ctx).config()
    plan = plan_pin_rollback(cfg, key, file=file, to_value=to, change=change, branch=branch, push=push,
                             incident=incident, message=message, interactive=_can_ask())
    return _run(ctx, plan, dry_run=dry_run, yes=yes, json_out=json_out)


def _can_ask() -> bool:
    """Whether a person can be asked on a terminal (tests replace this)."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _run(ctx: typer.Context, plan, *, dry_run: bool, yes: bool, json_out: bool) -> int:
    from oncall_ai.actions.rollback import RollbackResult, apply_plan, push_plan, record_action
    from oncall_ai.errors import DataError
    from oncall_ai.report.console import warn
    from oncall_ai.timeutil import now_ms

    result = RollbackResult()
    try:
        if not json_out:
            _print_plan(plan, dry_run=dry_run)
        if plan.nothing_to_do:
            _finish(plan, result, json_out, note=plan.nothing_to_do)
            return 0
        if dry_run:
            _finish(plan, result, json_out, note="dry run: nothing was changed")
            return 0
        plan.repo.ident()  # no git identity: say how to set it before asking anything
        if not yes:
            if not _can_ask():
                if json_out:
                    _emit_json(plan, result, refused="no --yes and no terminal to confirm on")
                raise DataError("refusing to apply without confirmation: there is no terminal to ask on; nothing was changed",
                                hint="add --yes to apply this plan, or --dry-run to only print it")
            if json_out:
                _print_plan(plan, dry_run=False, stream=sys.stderr)
            if not typer.confirm(f"Apply this rollback to {plan.branch} in {plan.repo.top}?", default=False, err=True):
                _finish(plan, result, json_out, note="not applied: nothing was changed")
                return 1
        now = now_ms()
        result = apply_plan(plan, now_ms=now)
        code = 0
        pushed = push_plan(plan, result)
        if pushed is not None and not pushed["ok"]:
            code = 1
        try:
            result.recorded = record_action(get_context(ctx).store(), plan, result, now_ms=now)
        except Exception as e:  # noqa: BLE001 - the commit is made: report the failure, never lose it
            result.record_error = str(e)
            code = 1
        _finish(plan, result, json_out)
        if result.record_error:
            warn(f"the rollback commit {result.commit} is made, but recording it in the store failed: "
                 f"{result.record_error}")
        if pushed is not None and not pushed["ok"]:
            r = plan.push_remote
            print(f"error: pushing {plan.branch} to {r} was rejected ({pushed.get('error')}); "
                  f"the rollback commit {result.commit[:10]} is on your local branch {plan.branch}.\n"
                  f"  hint: fetch and merge what is on {r} (`git pull --no-rebase {r} {plan.branch}`), check the result, "
                  f"then `git push {r} {plan.branch}`; or push it for review with "
                  f"`git push {r} {plan.branch}:rollback-{result.commit[:10]}`. Never force-push.", file=sys.stderr)
        return code
    finally:
        plan.close()


def _finish(plan, result, json_out: bool, note: str | None = None) -> None:
    if json_out:
        _emit_json(plan, result)
        if note:
            print(note, file=sys.stderr)
        return
    out = sys.stdout
    if note:
        print(note, file=out)
    if result.applied:
        where = f"new branch {plan.branch}" if plan.creates_branch else plan.branch
        print(f"rolled back: commit {result.commit} on {where} (was {plan.head[:10]})", file=out)
        if result.pushed:
            status = "pushed" if result.pushed["ok"] else "NOT pushed"
            print(f"{status}: {plan.branch} -> {result.pushed['remote']}", file=out)
        if result.recorded:
            print(f"recorded: action {result.recorded}", file=out)
        if plan.creates_branch:
            print(f"review and merge {plan.branch} to deploy it; your checkout of {plan.base_branch} is unchanged", file=out)
        elif plan.action == "rollback-prompt":
            print(f"to undo this rollback: oncall-ai rollback-prompt {result.commit} --dry-run", file=out)
        elif plan.pin:
            print(f"to undo this rollback: oncall-ai rollback-pin {plan.target} --change {result.commit}"
                  + (" --file indexes" if plan.target_kind == "index" else "") + " --dry-run", file=out)


def _emit_json(plan, result, refused: str | None = None) -> None:
    env = result.envelope(plan)
    if refused:
        env["refused"] = refused
    print(json.dumps(env, indent=2, ensure_ascii=False))


def _print_plan(plan, *, dry_run: bool, stream=None) -> None:
    from oncall_ai.actions.yaml_edit import scalar_text
    from oncall_ai.timeutil import format_time

    out = stream or sys.stdout
    w = out.write
    title = "Rollback plan" + (" (dry run)" if dry_run else "")
    w(f"{title}: oncall-ai {plan.action} {plan.target}\n")
    w(f"  repository   {plan.repo.top}\n")
    if plan.pin:
        p = plan.pin
        line = f":{p['line']}" if p.get("line") else ""
        w(f"  {p['kind']:<12} {p['field']} in {p['file']}{line}: {scalar_text(p['from'])} -> {scalar_text(p['to'])}\n")
    if plan.to and not plan.pin:
        w(f"  restore to   {plan.to}\n")
    for i, c in enumerate(plan.undoes[:20]):
        w(f"  {'undoes' if i == 0 else '':<12} {c.sha} \"{c.subject}\"\n")
        w(f"  {'':<12}   {c.author}, {format_time(c.at_ms)}\n")
    if len(plan.undoes) > 20:
        w(f"  {'':<12} ... and {len(plan.undoes) - 20} more commits\n")
    for n in plan.notes:
        w(f"  {'note':<12} {n}\n")
    for i, (s, path) in enumerate(plan.changes):
        w(f"  {'files' if i == 0 else '':<12} {s} {path}\n")
    if plan.left_alone:
        shown = ", ".join(plan.left_alone[:10]) + (" ..." if len(plan.left_alone) > 10 else "")
        w(f"  {'left alone':<12} {shown} (changed by the same commit, not prompt files in scope)\n")
    if plan.creates_branch:
        w(f"  {'commit on':<12} new branch {plan.branch} (from {plan.base_branch} at {plan.head[:10]}; your checkout is not touched)\n")
    else:
        w(f"  {'commit on':<12} {plan.branch} (now at {plan.head[:10]}); the working tree is updated\n")
    if plan.push_remote:
        w(f"  {'push':<12} yes: {plan.branch} -> {plan.push_remote} (never forced)\n")
    else:
        w(f"  {'push':<12} no (add --push [REMOTE] to push)\n")
    if plan.incident:
        w(f"  {'incident':<12} {plan.incident}\n")
    if plan.nothing_to_do:
        return
    w("\ncommit message:\n")
    for line in plan.message.rstrip("\n").splitlines():
        w(f"    {line}\n" if line else "\n")
    w("\ndiff that will be committed:\n")
    w(plan.diff if plan.diff.endswith("\n") or not plan.diff else plan.diff + "\n")
    out.flush()
