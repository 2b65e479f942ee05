"""The task board: list, filter, create, edit, change status, delete, reset, and activity."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from taskmesh_web.access import with_token
from taskmesh_web.auth import field_errors, signed_in
from taskmesh_web.clients import (
    ActivityPage,
    BackendError,
    Counts,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Task,
    TaskPage,
    new_idempotency_key,
)
from taskmesh_web.context import web
from taskmesh_web.errors import is_htmx_fragment
from taskmesh_web.forms import (
    STATUSES,
    DeleteByNumberForm,
    DeleteByTitleForm,
    DeleteTaskForm,
    FilterForm,
    ResetForm,
    StatusForm,
    TaskForm,
)

board = Blueprint("board", __name__)

STATUS_LABELS = dict(STATUSES)


def _task_form(task: Task | None = None) -> TaskForm:
    form = TaskForm(formdata=None)
    form.idempotency_key.data = new_idempotency_key()
    if task is not None:
        form.title.data = task.title
        form.description.data = task.description
        form.priority.data = task.priority
        form.due.data = task.due
        form.tags.data = " ".join(task.tags)
        form.status.data = task.status
        form.version.data = str(task.version)
    return form


def _activity_panel() -> ActivityPage | None:
    """The newest activity, or None when the activity service cannot answer right now."""
    limit = web().settings.activity_panel_size
    try:
        return with_token(lambda token: web().backend.activity(token=token, limit=limit))
    except BackendError:
        return None


def _settled(feed: Future[ActivityPage]) -> ActivityPage | None:
    try:
        return feed.result()
    except BackendError:
        return None


def _render_board(status: int = 200, **forms: Any) -> Response | tuple[str, int]:
    filters = FilterForm(formdata=request.args)
    filters.validate()
    params: dict[str, str | int] = {**filters.params(), "limit": web().settings.page_size}
    context = web()
    backend = context.backend

    def load(token: str) -> tuple[TaskPage, Counts, Future[ActivityPage]]:
        limit = context.settings.activity_panel_size
        feed = context.submit(backend.activity, token=token, limit=limit)
        counts = context.submit(backend.counts, token=token)
        page = backend.list_tasks(token=token, params=params)
        return page, counts.result(), feed

    try:
        page, counts, feed = with_token(load)
    except InvalidInput:
        if not request.args:
            raise
        # A cursor or filter the tasks service refuses (stale link, edited URL): start over.
        flash("Those filters could not be applied; showing all tasks.", "error")
        return redirect(url_for("board.index"), code=303)
    shown = [str(params["status"])] if "status" in params else [s for s, _ in STATUSES]
    groups = [
        (status_, STATUS_LABELS[status_], [t for t in page.items if t.status == status_])
        for status_ in shown
    ]
    next_args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "cursor"}
    page_html = render_template(
        "board/index.html",
        groups=groups,
        counts=counts,
        page=page,
        filters=filters,
        filtering=any(
            k in params for k in ("q", "status", "priority_min", "tag", "due_after", "due_before")
        ),
        next_url=url_for("board.index", **next_args, cursor=page.next_cursor)
        if page.next_cursor
        else None,
        first_url=url_for("board.index", **next_args) if request.args.get("cursor") else None,
        activity=_settled(feed),
        create_form=forms.get("create_form") or _task_form(),
        number_form=forms.get("number_form") or DeleteByNumberForm(formdata=None, prefix="del"),
        title_form=forms.get("title_form") or DeleteByTitleForm(formdata=None, prefix="del"),
    )
    return page_html, status


def _back_to_board() -> Response:
    return redirect(url_for("board.index"), code=303)


def _conflict(number: int, message: str) -> tuple[str, int]:
    fresh = with_token(lambda token: web().backend.get_task(token=token, number=number))
    return render_template("board/conflict.html", task=fresh, message=message), 409


@board.get("/")
@signed_in
def index() -> Response | tuple[str, int]:
    """The board: tasks grouped by status, with counts, filters, search, sort and paging."""
    return _render_board()


@board.post("/tasks")
@signed_in
def create() -> Response | tuple[str, int]:
    """Create a task."""
    form = TaskForm()
    if not form.validate_on_submit():
        return _render_board(422, create_form=form)
    fields = form.payload()
    fields.pop("status")
    key = form.idempotency_key.data or new_idempotency_key()
    try:
        task = with_token(
            lambda token: web().backend.create_task(token=token, fields=fields, idempotency_key=key)
        )
    except InvalidInput as exc:
        if not field_errors(form, exc):
            form.title.errors = [exc.detail or "The task was not accepted."]
        form.idempotency_key.data = new_idempotency_key()
        return _render_board(422, create_form=form)
    flash(f"Created #{task.number} {task.title}.", "success")
    return _back_to_board()


@board.get("/tasks/go")
@signed_in
def go() -> Response:
    """Open a task by number (the origin's "update by id" form, as a GET that changes nothing)."""
    form = DeleteByNumberForm(formdata=request.args, meta={"csrf": False})
    if not form.validate():
        flash("Enter a task number, like 3.", "error")
        return _back_to_board()
    return redirect(url_for("board.edit", number=form.number.data), code=303)


@board.get("/tasks/<int:number>/edit")
@signed_in
def edit(number: int) -> str:
    """The form to edit every field of a task."""
    task = with_token(lambda token: web().backend.get_task(token=token, number=number))
    return render_template("board/edit.html", task=task, form=_task_form(task))


@board.post("/tasks/<int:number>")
@signed_in
def update(number: int) -> Response | tuple[str, int]:
    """Save an edited task, if nobody changed it meanwhile."""
    form = TaskForm()
    version = _version(form.version.data)
    if not form.validate_on_submit():
        task = with_token(lambda token: web().backend.get_task(token=token, number=number))
        return render_template("board/edit.html", task=task, form=form), 422
    changes = form.payload()
    try:
        task = with_token(
            lambda token: web().backend.update_task(
                token=token, number=number, version=version, changes=changes
            )
        )
    except PreconditionFailed:
        fresh = with_token(lambda token: web().backend.get_task(token=token, number=number))
        page = render_template(
            "board/edit.html", task=fresh, form=_task_form(fresh), attempted=changes, conflict=True
        )
        return page, 409
    except InvalidInput as exc:
        if not field_errors(form, exc):
            form.title.errors = [exc.detail or "The change was not accepted."]
        task = with_token(lambda token: web().backend.get_task(token=token, number=number))
        return render_template("board/edit.html", task=task, form=form), 422
    flash(f"Saved #{task.number} {task.title}.", "success")
    return _back_to_board()


@board.post("/tasks/<int:number>/status")
@signed_in
def change_status(number: int) -> Response | tuple[str, int]:
    """Move a task to another status."""
    form = StatusForm()
    if not form.validate_on_submit():
        abort(400)
    status = form.status.data
    try:
        task = with_token(
            lambda token: web().backend.update_task(
                token=token,
                number=number,
                version=form.version.data or 0,
                changes={"status": status},
            )
        )
    except PreconditionFailed:
        return _conflict(number, "This task changed since you loaded the page. Here it is now.")
    flash(f"#{task.number} {task.title} is now {STATUS_LABELS[task.status].lower()}.", "success")
    return _back_to_board()


@board.post("/tasks/<int:number>/delete")
@signed_in
def delete(number: int) -> Response | tuple[str, int]:
    """Delete one task at the version the user saw."""
    form = DeleteTaskForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        with_token(
            lambda token: web().backend.delete_task(
                token=token, number=number, version=form.version.data or 0
            )
        )
    except PreconditionFailed:
        return _conflict(number, "This task changed since you loaded the page; it was not deleted.")
    except NotFound:
        flash(f"Task #{number} was already gone.", "info")
        return _back_to_board()
    flash(f"Deleted #{number}.", "success")
    return _back_to_board()


@board.post("/tasks/delete-by-number")
@signed_in
def delete_by_number() -> Response | tuple[str, int]:
    """The origin's "delete by id" form: delete task #N whatever its version."""
    form = DeleteByNumberForm(prefix="del")
    if not form.validate_on_submit():
        return _render_board(422, number_form=form)
    number = form.number.data or 0
    backend = web().backend

    def delete_current(token: str) -> Task:
        task = backend.get_task(token=token, number=number)
        backend.delete_task(token=token, number=number, version=task.version)
        return task

    try:
        task = with_token(delete_current)
    except NotFound:
        form.number.errors = [f"There is no task #{number}."]
        return _render_board(404, number_form=form)
    except PreconditionFailed:
        return _conflict(number, "This task changed while it was being deleted; it was kept.")
    flash(f"Deleted #{task.number} {task.title}.", "success")
    return _back_to_board()


@board.post("/tasks/delete-by-title")
@signed_in
def delete_by_title() -> Response | tuple[str, int]:
    """Delete every task with exactly the given title."""
    form = DeleteByTitleForm(prefix="del")
    if not form.validate_on_submit():
        return _render_board(422, title_form=form)
    title = (form.title.data or "").strip()
    deleted = with_token(lambda token: web().backend.delete_by_title(token=token, title=title))
    if deleted:
        noun = "task" if deleted == 1 else "tasks"
        flash(f"Deleted {deleted} {noun} titled “{title}”.", "success")
    else:
        flash(f"No task is titled “{title}”.", "info")
    return _back_to_board()


@board.route("/reset", methods=["GET", "POST"])
@signed_in
def reset() -> str | Response | tuple[str, int]:
    """Confirm, then remove every task and restart numbering at #1."""
    form = ResetForm()
    if not form.validate_on_submit():
        counts = with_token(lambda token: web().backend.counts(token=token))
        page = render_template("board/reset.html", form=form, counts=counts)
        return (page, 422) if request.method == "POST" else page
    deleted = with_token(lambda token: web().backend.reset(token=token))
    noun = "task" if deleted == 1 else "tasks"
    flash(f"Board reset: {deleted} {noun} deleted. Numbering starts again at #1.", "success")
    return _back_to_board()


@board.get("/activity")
@signed_in
def activity() -> str | Response:
    """The activity feed as a page of its own (the panel's no-JavaScript link)."""
    cursor = request.args.get("cursor") or None
    if cursor is not None and len(cursor) > 512:
        abort(400)
    try:
        feed = with_token(
            lambda token: web().backend.activity(token=token, limit=50, cursor=cursor)
        )
    except InvalidInput:
        return redirect(url_for("board.activity"), code=303)
    return render_template("board/activity.html", feed=feed)


@board.get("/activity/panel")
@signed_in
def activity_panel() -> str | Response:
    """The activity panel alone, for htmx to refresh in place."""
    if not is_htmx_fragment():
        return redirect(url_for("board.activity"), code=303)
    return render_template("board/_activity_panel.html", activity=_activity_panel())


def _version(raw: str | None) -> int:
    try:
        return int(raw or "")
    except ValueError:
        abort(400)
