"""The board and every task form, against faked tasks and activity APIs."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

EMAIL = "ada@example.com"


def tasks_part(page: str) -> str:
    """The task groups of a board page (not the forms, not the activity panel)."""
    return page[page.index('class="board area-board"') : page.index('class="card area-filters"')]


def test_board_requires_sign_in(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/signin?next=/")


def test_board_groups_tasks_by_status_with_counts(signed_in: FlaskClient, fake: Any) -> None:
    fake.add_task(EMAIL, "Buy milk")
    fake.add_task(
        EMAIL, "Write report", status="doing", priority=5, tags=["work"], due="2030-01-02"
    )
    fake.add_task(EMAIL, "Call mum", status="done")
    page = signed_in.get("/").get_data(as_text=True)
    counts = dict(re.findall(r'data-status="(\w+)"><strong>(\d+)</strong>', page))
    assert counts == {"todo": "1", "doing": "1", "done": "1", "total": "3"}
    sections = {
        status: page[page.index(f'id="group-{status}"') :] for status in ("todo", "doing", "done")
    }
    assert "Buy milk" in sections["todo"].split('id="group-doing"')[0]
    assert "Write report" in sections["doing"].split('id="group-done"')[0]
    assert "Call mum" in sections["done"]
    assert "P5" in page
    assert 'href="/?tag=work"' in page
    assert "2 Jan 2030" in page


def test_board_passes_filters_search_and_sort_to_the_tasks_api(
    signed_in: FlaskClient, fake: Any
) -> None:
    fake.add_task(EMAIL, "Pay rent", priority=4, tags=["home"])
    fake.add_task(EMAIL, "Pay tax", priority=2, tags=["home"])
    fake.requests.clear()
    query = (
        "/?q=pay&status=todo&priority_min=3&tag=Home"
        "&due_after=2020-01-01&due_before=2040-01-01&sort=-priority"
    )
    page = tasks_part(signed_in.get(query).get_data(as_text=True))
    params = dict(fake.calls("GET", "/v1/tasks")[0].url.params)
    assert params == {
        "q": "pay",
        "status": "todo",
        "priority_min": "3",
        "tag": "home",
        "due_after": "2020-01-01",
        "due_before": "2040-01-01",
        "sort": "-priority",
        "limit": "50",
    }
    assert "Pay rent" in page
    assert "Pay tax" not in page
    assert 'id="group-doing"' not in page
    assert "Showing tasks that match your filters." in page


def test_invalid_filters_are_shown_and_left_out(signed_in: FlaskClient, fake: Any) -> None:
    fake.add_task(EMAIL, "Anything")
    response = signed_in.get("/?status=nonsense&due_before=yesterday&tag=two%20words")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="status-error"' in page
    assert 'id="due_before-error"' in page
    assert 'id="tag-error"' in page
    assert dict(fake.calls("GET", "/v1/tasks")[-1].url.params) == {
        "sort": "-created",
        "limit": "50",
    }
    assert "Anything" in page


def test_board_paginates_with_the_cursor(signed_in: FlaskClient, fake: Any, app: Any) -> None:
    app.extensions["taskmesh_web"].settings.__dict__["page_size"] = 2
    for n in range(5):
        fake.add_task(EMAIL, f"Task {n}")
    page = tasks_part(signed_in.get("/?sort=created").get_data(as_text=True))
    assert "Task 0" in page
    assert "Task 1" in page
    assert "Task 2" not in page
    next_url = re.search(r'href="([^"]+)" rel="next"', page)
    assert next_url is not None
    second = tasks_part(signed_in.get(next_url[1].replace("&amp;", "&")).get_data(as_text=True))
    assert "Task 2" in second
    assert "Task 3" in second
    assert "Task 0" not in second
    assert "First page" in second


def test_create_task_sends_every_field_with_an_idempotency_key(
    signed_in: FlaskClient, post: Any, fake: Any
) -> None:
    form = signed_in.get("/").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', form)
    assert key is not None
    response = post(
        "/tasks",
        {
            "title": "Plan trip",
            "description": "Book train",
            "priority": "4",
            "due": "2031-05-06",
            "tags": "Travel, family travel",
            "idempotency_key": key[1],
        },
        headers={"X-Request-ID": "req-create-1"},
    )
    assert response.status_code == 303
    created = fake.calls("POST", "/v1/tasks")[-1]
    assert created.headers["Idempotency-Key"] == key[1]
    assert created.headers["X-Request-ID"] == "req-create-1"
    assert response.headers["X-Request-ID"] == "req-create-1"
    [task] = fake.user_tasks(EMAIL)
    assert task["title"] == "Plan trip"
    assert task["description"] == "Book train"
    assert task["priority"] == 4
    assert task["due"] == "2031-05-06"
    assert task["tags"] == ["travel", "family"]
    assert "Created #1 Plan trip." in signed_in.get("/").get_data(as_text=True)


def test_a_resubmitted_create_form_creates_one_task(
    signed_in: FlaskClient, post: Any, fake: Any
) -> None:
    data = {"title": "Once", "priority": "3", "idempotency_key": "key-0123456789"}
    post("/tasks", data)
    post("/tasks", data)
    assert [t["title"] for t in fake.user_tasks(EMAIL)] == ["Once"]


def test_create_task_errors_appear_next_to_the_fields(post: Any, fake: Any) -> None:
    response = post("/tasks", {"title": "", "priority": "9", "tags": "ok " + "x" * 40})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="title-error"' in page
    assert 'id="priority-error"' in page
    assert 'id="tags-error"' in page
    assert fake.calls("POST", "/v1/tasks") == []


def test_remembered_blank_fields_never_show_another_requests_values(
    signed_in: FlaskClient, post: Any
) -> None:
    blank = signed_in.get("/").get_data(as_text=True)
    assert 'id="q"' in blank
    assert 'id="title-error"' not in blank
    filtered = signed_in.get("/?q=pay&sort=-priority").get_data(as_text=True)
    assert re.search(r'<input id="q"[^>]*value="pay"', filtered)
    assert '<option selected value="-priority">' in filtered
    failed = post("/tasks", {"title": "", "description": "kept text", "priority": "9"})
    assert 'id="title-error"' in failed.get_data(as_text=True)
    assert "kept text</textarea>" in failed.get_data(as_text=True)
    # Empty, like the blank field, but with an error: rendered afresh.
    missing = post("/tasks/delete-by-number", {"del-number": ""}).get_data(as_text=True)
    assert 'id="del-number-error"' in missing
    again = signed_in.get("/").get_data(as_text=True)
    assert 'value="pay"' not in again
    assert "kept text" not in again
    assert 'id="title-error"' not in again
    assert '<option selected value="-created">' in again

    # The blank page is the same page, field for field, whether remembered or not.
    def forms(page: str) -> str:
        tokens = re.compile(r'value="[^"]{24,}"')  # CSRF tokens and idempotency keys
        return tokens.sub("", page[page.index("area-new") : page.index("area-board")])

    assert forms(again) == forms(blank)


def test_create_task_shows_backend_validation_errors(
    post: Any, fake: Any, make_problem: Any
) -> None:
    fake.overrides[("POST", "/v1/tasks")] = lambda request: make_problem(
        422, "invalid", errors=[{"loc": ["body", "due"], "msg": "Due date too far away"}]
    )
    response = post("/tasks", {"title": "Far", "priority": "3", "due": "2999-01-01"})
    assert response.status_code == 422
    assert 'id="due-error">Due date too far away' in response.get_data(as_text=True)


def test_edit_page_shows_every_field(signed_in: FlaskClient, fake: Any) -> None:
    fake.add_task(
        EMAIL,
        "Fix bike",
        description="Rear tyre",
        priority=2,
        tags=["home", "bike"],
        due="2030-03-04",
    )
    page = signed_in.get("/tasks/1/edit").get_data(as_text=True)
    assert 'value="Fix bike"' in page
    assert re.search(r">\s*Rear tyre</textarea>", page)
    assert '<option selected value="2">' in page
    assert 'value="home bike"' in page
    assert 'value="2030-03-04"' in page
    assert 'name="version" type="hidden" value="1"' in page


def test_edit_page_of_a_missing_task_is_404(signed_in: FlaskClient) -> None:
    response = signed_in.get("/tasks/99/edit")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_go_to_task_opens_its_edit_page(signed_in: FlaskClient) -> None:
    response = signed_in.get("/tasks/go?number=3")
    assert response.headers["Location"] == "/tasks/3/edit"
    response = signed_in.get("/tasks/go?number=abc")
    assert response.headers["Location"] == "/"


def test_update_changes_any_field_with_if_match(
    signed_in: FlaskClient, post: Any, fake: Any
) -> None:
    fake.add_task(EMAIL, "Fix bike")
    response = post(
        "/tasks/1",
        {
            "title": "Fix bike now",
            "description": "Both tyres",
            "priority": "5",
            "status": "doing",
            "tags": "bike",
            "due": "",
            "version": "1",
        },
    )
    assert response.status_code == 303
    patch = fake.calls("PATCH", "/v1/tasks/1")[-1]
    assert patch.headers["If-Match"] == '"1"'
    task = fake.user_tasks(EMAIL)[0]
    assert (task["title"], task["description"], task["priority"], task["status"], task["tags"]) == (
        "Fix bike now",
        "Both tyres",
        5,
        "doing",
        ["bike"],
    )
    assert "Saved #1 Fix bike now." in signed_in.get("/").get_data(as_text=True)


def test_update_with_a_stale_version_shows_the_fresh_one(post: Any, fake: Any) -> None:
    task = fake.add_task(EMAIL, "Original")
    task.update(title="Changed elsewhere", version=2)
    response = post(
        "/tasks/1", {"title": "Mine", "priority": "3", "status": "todo", "version": "1"}
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Someone changed this task while you were editing it." in page
    assert 'value="Changed elsewhere"' in page
    assert 'name="version" type="hidden" value="2"' in page
    assert "<dd>Mine</dd>" in page
    assert fake.user_tasks(EMAIL)[0]["title"] == "Changed elsewhere"
    retry = post("/tasks/1", {"title": "Mine", "priority": "3", "status": "todo", "version": "2"})
    assert retry.status_code == 303
    assert fake.user_tasks(EMAIL)[0]["title"] == "Mine"


def test_update_with_invalid_fields_is_422(post: Any, fake: Any) -> None:
    fake.add_task(EMAIL, "Keep")
    response = post("/tasks/1", {"title": "", "priority": "3", "status": "todo", "version": "1"})
    assert response.status_code == 422
    assert 'id="title-error"' in response.get_data(as_text=True)
    assert fake.user_tasks(EMAIL)[0]["title"] == "Keep"


def test_change_status_completes_a_task(signed_in: FlaskClient, post: Any, fake: Any) -> None:
    fake.add_task(EMAIL, "Pay rent")
    response = post("/tasks/1/status", {"status": "done", "version": "1"})
    assert response.status_code == 303
    assert fake.user_tasks(EMAIL)[0]["status"] == "done"
    page = signed_in.get("/").get_data(as_text=True)
    assert "#1 Pay rent is now done." in page
    assert 'aria-label="Reopen #1 Pay rent"' in page


def test_change_status_conflict_shows_the_current_task(post: Any, fake: Any) -> None:
    fake.add_task(EMAIL, "Pay rent")["version"] = 3
    response = post("/tasks/1/status", {"status": "done", "version": "1"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "This task changed since you loaded the page." in page
    assert 'name="version" value="3"' in page
    assert fake.user_tasks(EMAIL)[0]["status"] == "todo"


def test_change_status_rejects_unknown_statuses(post: Any, fake: Any) -> None:
    fake.add_task(EMAIL, "Pay rent")
    assert post("/tasks/1/status", {"status": "archived", "version": "1"}).status_code == 400


def test_delete_one_task(signed_in: FlaskClient, post: Any, fake: Any) -> None:
    fake.add_task(EMAIL, "Old")
    fake.add_task(EMAIL, "Keep")
    response = post("/tasks/1/delete", {"version": "1"})
    assert response.status_code == 303
    assert [t["title"] for t in fake.user_tasks(EMAIL)] == ["Keep"]
    assert "Deleted #1." in signed_in.get("/").get_data(as_text=True)
    assert post("/tasks/1/delete", {"version": "1"}).status_code == 303
    assert "Task #1 was already gone." in signed_in.get("/").get_data(as_text=True)


def test_delete_with_a_stale_version_keeps_the_task(post: Any, fake: Any) -> None:
    fake.add_task(EMAIL, "Changed")["version"] = 2
    response = post("/tasks/1/delete", {"version": "1"})
    assert response.status_code == 409
    assert "it was not deleted" in response.get_data(as_text=True)
    assert len(fake.user_tasks(EMAIL)) == 1


def test_delete_by_number(signed_in: FlaskClient, post: Any, fake: Any) -> None:
    fake.add_task(EMAIL, "One")
    fake.add_task(EMAIL, "Two")["version"] = 7
    response = post("/tasks/delete-by-number", {"del-number": "2"})
    assert response.status_code == 303
    assert fake.calls("DELETE", "/v1/tasks/2")[-1].headers["If-Match"] == '"7"'
    assert [t["title"] for t in fake.user_tasks(EMAIL)] == ["One"]
    assert "Deleted #2 Two." in signed_in.get("/").get_data(as_text=True)


def test_delete_by_number_of_a_missing_task_says_so_by_the_field(post: Any) -> None:
    response = post("/tasks/delete-by-number", {"del-number": "42"})
    assert response.status_code == 404
    assert 'id="del-number-error">There is no task #42.' in response.get_data(as_text=True)
    response = post("/tasks/delete-by-number", {"del-number": "zero"})
    assert response.status_code == 422


def test_delete_by_title(signed_in: FlaskClient, post: Any, fake: Any) -> None:
    for title in ("Dup", "Keep", "Dup"):
        fake.add_task(EMAIL, title)
    response = post("/tasks/delete-by-title", {"del-title": "Dup"})
    assert response.status_code == 303
    assert [t["title"] for t in fake.user_tasks(EMAIL)] == ["Keep"]
    assert "Deleted 2 tasks titled “Dup”." in signed_in.get("/").get_data(as_text=True)
    post("/tasks/delete-by-title", {"del-title": "Nope"})
    assert "No task is titled “Nope”." in signed_in.get("/").get_data(as_text=True)
    assert post("/tasks/delete-by-title", {"del-title": ""}).status_code == 422


def test_reset_asks_for_confirmation_first(signed_in: FlaskClient, post: Any, fake: Any) -> None:
    fake.add_task(EMAIL, "A")
    fake.add_task(EMAIL, "B")
    page = signed_in.get("/reset").get_data(as_text=True)
    assert "This deletes all 2 of your tasks" in page
    response = post("/reset", {})
    assert response.status_code == 422
    assert "Tick the box to confirm." in response.get_data(as_text=True)
    assert len(fake.user_tasks(EMAIL)) == 2
    response = post("/reset", {"confirm": "y"})
    assert response.status_code == 303
    assert fake.user_tasks(EMAIL) == []
    assert "Board reset: 2 tasks deleted." in signed_in.get("/").get_data(as_text=True)
    post("/tasks", {"title": "Fresh start", "priority": "3"})
    assert fake.user_tasks(EMAIL)[0]["number"] == 1


def test_activity_panel_is_on_the_board(signed_in: FlaskClient, post: Any) -> None:
    post("/tasks", {"title": "Water plants", "priority": "3"})
    page = signed_in.get("/").get_data(as_text=True)
    panel = page[page.index('id="activity-panel"') :]
    assert "You created #1 Water plants" in panel
    assert 'hx-get="/activity/panel"' in page
    assert 'href="/activity"' in page


def test_activity_panel_fragment_for_htmx(signed_in: FlaskClient, post: Any) -> None:
    post("/tasks", {"title": "Water plants", "priority": "3"})
    response = signed_in.get("/activity/panel", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in body
    assert "You created #1 Water plants" in body
    assert signed_in.get("/activity/panel").headers["Location"] == "/activity"


def test_activity_page_without_javascript(signed_in: FlaskClient, post: Any) -> None:
    post("/tasks", {"title": "Water plants", "priority": "3"})
    page = signed_in.get("/activity").get_data(as_text=True)
    assert "<h1>Activity</h1>" in page
    assert "You created #1 Water plants" in page


def test_board_works_while_activity_is_down(signed_in: FlaskClient, fake: Any) -> None:
    fake.add_task(EMAIL, "Still here")
    fake.down.add("activity")
    response = signed_in.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Still here" in page
    assert "Activity is unavailable right now." in page


def test_users_see_only_their_own_tasks(client: FlaskClient, fake: Any, login: Any) -> None:
    fake.add_user(EMAIL)
    fake.add_user("bob@example.com", "Bob")
    fake.add_task(EMAIL, "Ada secret")
    fake.add_task("bob@example.com", "Bob chore")
    login(client, "bob@example.com")
    page = tasks_part(client.get("/").get_data(as_text=True))
    assert "Bob chore" in page
    assert "Ada secret" not in page
