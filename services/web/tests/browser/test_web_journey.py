"""The whole user journey in a real browser, with JavaScript (htmx) and without it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect
from taskmesh.system import System

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[4] / "docs" / "screenshots"
ACTIVITY_WAIT_SECONDS = 30


class Visitor:
    """One person in one browser context, doing what a person does and checking what they see."""

    def __init__(self, context: BrowserContext, base_url: str) -> None:
        self.context = context
        self.base_url = base_url
        self.page: Page = context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        # A strict CSP must not break the page: any violation or script error is a failure.
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self.problems.append(text)

    def flash(self, text: str) -> None:
        expect(self.page.locator(".flashes")).to_contain_text(text)

    def expect_counts(self, **counts: int) -> None:
        for status, value in counts.items():
            expect(self.page.locator(f'.count[data-status="{status}"] strong')).to_have_text(
                str(value)
            )

    def expect_in_group(self, status: str, text: str) -> None:
        expect(self.page.locator(f"section.group:has(#group-{status}) .task-list")).to_contain_text(
            text
        )

    def tasks_text(self) -> str:
        return self.page.locator(".board").inner_text()

    def sign_up(self, email: str, name: str) -> None:
        self.page.goto(self.base_url + "/")
        expect(self.page).to_have_url(re.compile(r"/signin"))
        self.page.get_by_role("link", name="Create an account").click()
        expect(self.page.get_by_role("heading", name="Create your account")).to_be_visible()
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Display name").fill(name)
        self.page.get_by_label("Password", exact=True).fill(PASSWORD)
        self.page.get_by_label("Repeat password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign up").click()
        self.flash(f"Welcome to Taskmesh, {name}!")
        expect(self.page.get_by_role("heading", name="Your board")).to_be_visible()
        self.expect_counts(total=0)

    def sign_in(self, email: str, name: str) -> None:
        self.page.goto(self.base_url + "/signin")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.flash(f"Signed in as {name}.")
        expect(self.page.get_by_role("heading", name="Your board")).to_be_visible()

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Sign out").click()
        self.flash("You are signed out.")
        expect(self.page.get_by_role("heading", name="Sign in")).to_be_visible()
        self.page.goto(self.base_url + "/")
        expect(self.page).to_have_url(re.compile(r"/signin\?next="))

    def create(self, title: str, *, priority: str = "3", due: str = "", tags: str = "") -> None:
        form = self.page.locator("form[action='/tasks']")
        form.get_by_label("Title", exact=True).fill(title)
        form.get_by_label("Priority").select_option(priority)
        if due:
            form.get_by_label("Due").fill(due)
        form.get_by_label("Tags").fill(tags)
        form.get_by_role("button", name="Add task").click()
        self.flash("Created #")
        self.flash(f"{title}.")

    def activity_shows(self, text: str) -> None:
        """The activity page shows `text` once the event pipeline has delivered it."""
        deadline = time.monotonic() + ACTIVITY_WAIT_SECONDS
        while True:
            self.page.goto(self.base_url + "/activity")
            if text in self.page.locator("main").inner_text():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"activity never showed {text!r}")
            time.sleep(0.5)

    def activity_text(self) -> str:
        self.page.goto(self.base_url + "/activity")
        return self.page.locator("main").inner_text()

    def board(self) -> None:
        self.page.goto(self.base_url + "/")
        expect(self.page.get_by_role("heading", name="Your board")).to_be_visible()


def _journey(browser: Browser, system: System, *, javascript: bool) -> None:
    mode = "js" if javascript else "nojs"
    base = system.public_url
    ada_email, bob_email = f"ada-{mode}@example.com", f"bob-{mode}@example.com"
    ada_context = browser.new_context(java_script_enabled=javascript, base_url=base)
    bob_context = browser.new_context(java_script_enabled=javascript, base_url=base)
    try:
        ada = Visitor(ada_context, base)

        # Sign up, sign out, sign in.
        ada.sign_up(ada_email, "Ada")
        ada.sign_out()
        ada.sign_in(ada_email, "Ada")

        # Three tasks.
        ada.create("Buy milk", priority="2", tags="shop home")
        ada.create("Write report", priority="5", due="2031-03-14", tags="work")
        ada.create("Call plumber", priority="4")
        ada.expect_counts(todo=3, doing=0, done=0, total=3)
        for title in ("#1 Buy milk", "#2 Write report", "#3 Call plumber"):
            ada.expect_in_group("todo", title)
        expect(ada.page.locator("#task-2")).to_contain_text("14 Mar 2031")
        expect(ada.page.locator("#task-2")).to_contain_text("P5")

        # Edit one: every field is on the edit page.
        ada.page.get_by_role("link", name="Edit #2 Write report").click()
        expect(ada.page.get_by_role("heading", name=re.compile("Edit #2"))).to_be_visible()
        expect(ada.page.get_by_label("Title")).to_have_value("Write report")
        ada.page.get_by_label("Title").fill("Write the report")
        ada.page.get_by_label("Description").fill("Quarterly numbers, two pages")
        ada.page.get_by_label("Status").select_option("doing")
        ada.page.get_by_role("button", name="Save").click()
        ada.flash("Saved #2 Write the report.")
        ada.expect_in_group("doing", "#2 Write the report")
        expect(ada.page.locator("#task-2")).to_contain_text("Quarterly numbers, two pages")
        ada.expect_counts(todo=2, doing=1, done=0, total=3)

        # Complete one.
        ada.page.get_by_role("button", name="Complete #1 Buy milk").click()
        ada.flash("#1 Buy milk is now done.")
        ada.expect_in_group("done", "#1 Buy milk")
        ada.expect_counts(todo=1, doing=1, done=1, total=3)

        if javascript:
            # htmx refreshes the panel in place (it polls); no reload happens here.
            expect(ada.page.locator("#activity-panel")).to_contain_text(
                "You completed #1 Buy milk", timeout=ACTIVITY_WAIT_SECONDS * 1000
            )
            _screenshots(ada.page)
        else:
            ada.activity_shows("You completed #1 Buy milk")
            ada.board()

        # A second user sees none of it, and the first sees nothing of theirs.
        bob = Visitor(bob_context, base)
        bob.sign_up(bob_email, "Bob")
        board_text = bob.tasks_text()
        for title in ("Buy milk", "Write the report", "Call plumber"):
            assert title not in board_text
        bob.create("Bob private errand")
        bob.activity_shows("You created #1 Bob private errand")
        bob_activity = bob.activity_text()
        assert "Buy milk" not in bob_activity
        assert "report" not in bob_activity
        ada.board()
        assert "Bob private errand" not in ada.tasks_text()
        ada.activity_shows("You created #3 Call plumber")
        ada_activity = ada.activity_text()
        assert "Bob private errand" not in ada_activity
        assert "You completed #1 Buy milk" in ada_activity
        ada.board()

        # Delete by number.
        ada.page.get_by_label("Number to delete").fill("3")
        ada.page.get_by_role("button", name="Delete by number").click()
        ada.flash("Deleted #3 Call plumber.")
        assert "Call plumber" not in ada.tasks_text()
        ada.expect_counts(total=2)

        # Delete by title.
        ada.page.get_by_label("Title to delete").fill("Buy milk")
        ada.page.get_by_role("button", name="Delete by title").click()
        ada.flash("Deleted 1 task titled “Buy milk”.")
        assert "Buy milk" not in ada.tasks_text()
        ada.expect_counts(todo=0, doing=1, done=0, total=1)

        # Reset, with its confirmation step.
        ada.page.get_by_role("link", name="Reset the board…").click()
        expect(ada.page.get_by_role("heading", name="Reset the board?")).to_be_visible()
        expect(ada.page.locator("main")).to_contain_text("This deletes all 1 of your tasks")
        ada.page.get_by_role("button", name="Delete all my tasks").click()
        expect(ada.page.locator(".field-error")).to_contain_text("Tick the box to confirm.")
        ada.page.get_by_label("Yes, delete all my tasks and start again at #1").check()
        ada.page.get_by_role("button", name="Delete all my tasks").click()
        ada.flash("Board reset: 1 task deleted. Numbering starts again at #1.")
        ada.expect_counts(todo=0, doing=0, done=0, total=0)
        ada.create("After the reset")
        ada.flash("Created #1 After the reset.")
        ada.activity_shows("You reset your board (1 task removed)")

        # Bob's board is untouched by Ada's reset.
        bob.board()
        bob.expect_in_group("todo", "#1 Bob private errand")
        assert "After the reset" not in bob.tasks_text()

        ada.board()
        ada.sign_out()
        bob.sign_out()
        assert ada.problems == []
        assert bob.problems == []
    finally:
        ada_context.close()
        bob_context.close()


def _screenshots(page: Page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.screenshot(path=str(SCREENSHOTS / "board-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "board-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


def test_journey_with_javascript(browser: Browser, system: System) -> None:
    _journey(browser, system, javascript=True)


def test_journey_without_javascript(browser: Browser, system: System) -> None:
    _journey(browser, system, javascript=False)


def _tab_to(page: Page, element_id: str, *, limit: int = 60) -> None:
    """Press Tab until the element is focused, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"#{element_id} has no visible focus"
            return
    pytest.fail(f"#{element_id} cannot be reached with the keyboard")


def test_keyboard_only(browser: Browser, system: System) -> None:
    context = browser.new_context(base_url=system.public_url)
    try:
        page = context.new_page()
        page.goto(system.public_url + "/signup")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        _tab_to(page, "email")
        page.keyboard.type("kay@example.com")
        page.keyboard.press("Tab")
        page.keyboard.type("Kay")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page.locator(".flashes")).to_contain_text("Welcome to Taskmesh, Kay!")
        _tab_to(page, "title")
        page.keyboard.type("Typed, not clicked")
        page.keyboard.press("Enter")
        expect(page.locator(".flashes")).to_contain_text("Created #1 Typed, not clicked.")
        expect(page.locator("#task-1")).to_contain_text("Typed, not clicked")
    finally:
        context.close()


def test_profile_password_change_and_account_deletion(browser: Browser, system: System) -> None:
    context = browser.new_context(java_script_enabled=False, base_url=system.public_url)
    try:
        pat = Visitor(context, system.public_url)
        pat.sign_up("pat@example.com", "Pat")
        pat.create("Soon gone")
        pat.page.get_by_role("link", name="Pat").click()
        expect(pat.page.get_by_role("heading", name="Your account")).to_be_visible()
        expect(pat.page.locator("main")).to_contain_text("pat@example.com")

        new_password = "a fresh and longer passphrase"
        pat.page.get_by_label("Current password").fill("not my password at all")
        pat.page.get_by_label("New password", exact=True).fill(new_password)
        pat.page.get_by_label("Repeat new password").fill(new_password)
        pat.page.get_by_role("button", name="Change password").click()
        expect(pat.page.locator(".field-error")).to_contain_text("The current password is wrong.")

        pat.page.get_by_label("Current password").fill(PASSWORD)
        pat.page.get_by_label("New password", exact=True).fill(new_password)
        pat.page.get_by_label("Repeat new password").fill(new_password)
        pat.page.get_by_role("button", name="Change password").click()
        pat.flash("Your password was changed.")
        pat.board()
        pat.expect_in_group("todo", "#1 Soon gone")

        pat.sign_out()
        pat.page.goto(system.public_url + "/signin")
        pat.page.get_by_label("Email").fill("pat@example.com")
        pat.page.get_by_label("Password").fill(PASSWORD)
        pat.page.get_by_role("button", name="Sign in").click()
        expect(pat.page.locator(".field-error")).to_contain_text("Wrong email or password.")
        pat.page.get_by_label("Password").fill(new_password)
        pat.page.get_by_role("button", name="Sign in").click()
        pat.flash("Signed in as Pat.")

        pat.page.get_by_role("link", name="Pat").click()
        pat.page.locator("form[action='/profile/delete']").get_by_label("Password").fill(
            new_password
        )
        pat.page.get_by_label("I understand that my account and all my tasks are deleted").check()
        pat.page.get_by_role("button", name="Delete my account").click()
        pat.flash("Your account and all its tasks were deleted.")
        pat.page.get_by_label("Email").fill("pat@example.com")
        pat.page.get_by_label("Password").fill(new_password)
        pat.page.get_by_role("button", name="Sign in").click()
        expect(pat.page.locator(".field-error")).to_contain_text("Wrong email or password.")
        assert pat.problems == []
    finally:
        context.close()
