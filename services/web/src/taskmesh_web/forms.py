"""Flask-WTF forms: every state-changing form carries a CSRF token."""

# flask_wtf ships no type information, so its FlaskForm is `Any` to mypy.
# mypy: disallow-subclassing-any=False

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SearchField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

STATUSES = [("todo", "To do"), ("doing", "Doing"), ("done", "Done")]
PRIORITIES = [
    (5, "5 · urgent"),
    (4, "4 · high"),
    (3, "3 · normal"),
    (2, "2 · low"),
    (1, "1 · lowest"),
]
SORTS = [
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("-priority", "Highest priority"),
    ("priority", "Lowest priority"),
    ("due", "Due soonest"),
    ("-due", "Due latest"),
]
TITLE_MAX = 200
DESCRIPTION_MAX = 2000
MAX_TAGS = 10
_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def _choices(pairs: list[tuple[Any, str]]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


def parse_tags(text: str) -> list[str]:
    """Split "home, Urgent work" into ["home", "urgent", "work"], dropping repeats."""
    words = [word.lower() for word in re.split(r"[\s,]+", text) if word]
    return list(dict.fromkeys(words))


def _valid_tags(_: Any, field: StringField) -> None:
    tags = parse_tags(field.data or "")
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"Use at most {MAX_TAGS} tags.")
    bad = [tag for tag in tags if not _TAG.match(tag)]
    if bad:
        raise ValidationError(
            "Tags are single words of letters, digits and - (up to 32 characters)."
        )


class SignUpForm(FlaskForm):
    """Create an account."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    display_name = StringField("Display name", validators=[DataRequired(), Length(max=80)])
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=12, max=256, message="Use at least 12 characters.")],
    )
    confirm = PasswordField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
    )


class SignInForm(FlaskForm):
    """Sign in with email and password."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    next = HiddenField()


class SignOutForm(FlaskForm):
    """Sign out (a POST, so a link elsewhere cannot sign anyone out)."""


class PasswordForm(FlaskForm):
    """Change the password."""

    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=256)]
    )
    new_password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(min=12, max=256, message="Use at least 12 characters.")],
    )
    confirm = PasswordField(
        "Repeat new password",
        validators=[DataRequired(), EqualTo("new_password", message="The passwords differ.")],
    )


class DeleteAccountForm(FlaskForm):
    """Delete the account and every task in it."""

    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    confirm = BooleanField(
        "I understand that my account and all my tasks are deleted for good",
        validators=[DataRequired(message="Tick the box to confirm.")],
    )


class TaskForm(FlaskForm):
    """Create or edit a task."""

    title = StringField("Title", validators=[DataRequired(), Length(max=TITLE_MAX)])
    description = TextAreaField("Description", validators=[Length(max=DESCRIPTION_MAX)])
    priority = SelectField("Priority", choices=_choices(PRIORITIES), coerce=int, default=3)
    due = DateField("Due", validators=[Optional()])
    tags = StringField(
        "Tags", validators=[Length(max=400), _valid_tags], description="Words separated by spaces"
    )
    status = SelectField("Status", choices=_choices(STATUSES), default="todo")
    version = HiddenField()
    idempotency_key = HiddenField(validators=[Optional(), Regexp(r"^[A-Za-z0-9-]{8,64}$")])

    def payload(self) -> dict[str, Any]:
        """The task fields as the tasks API takes them."""
        return {
            "title": (self.title.data or "").strip(),
            "description": (self.description.data or "").strip(),
            "priority": self.priority.data,
            "due": self.due.data.isoformat() if self.due.data else None,
            "tags": parse_tags(self.tags.data or ""),
            "status": self.status.data,
        }


class StatusForm(FlaskForm):
    """Move a task to another status."""

    status = SelectField("Status", choices=_choices(STATUSES))
    version = IntegerField(validators=[InputRequired()])


class DeleteTaskForm(FlaskForm):
    """Delete one task at the version the user saw."""

    version = IntegerField(validators=[InputRequired()])


class DeleteByNumberForm(FlaskForm):
    """The origin's "delete by id" form."""

    number = IntegerField("Number to delete", validators=[InputRequired(), NumberRange(min=1)])


class DeleteByTitleForm(FlaskForm):
    """Delete every task with exactly this title."""

    title = StringField("Title to delete", validators=[DataRequired(), Length(max=TITLE_MAX)])


class ResetForm(FlaskForm):
    """Remove every task and restart numbering at #1."""

    confirm = BooleanField(
        "Yes, delete all my tasks and start again at #1",
        validators=[DataRequired(message="Tick the box to confirm.")],
    )


class FilterForm(FlaskForm):
    """The board's filters, search and sort, read from the query string."""

    class Meta:
        csrf = False  # a GET that changes nothing

    q = SearchField("Search", validators=[Optional(), Length(max=200)])
    status = SelectField("Status", choices=_choices([("", "Any status"), *STATUSES]), default="")
    priority_min = SelectField(
        "Priority at least",
        choices=_choices([("", "Any priority")] + [(str(v), label) for v, label in PRIORITIES]),
        default="",
    )
    tag = StringField(
        "Tag",
        validators=[Optional(), Length(max=32), Regexp(_TAG.pattern, message="One word.")],
        filters=[lambda value: value.strip().lower() if value else value],
    )
    due_after = DateField("Due after", validators=[Optional()])
    due_before = DateField("Due before", validators=[Optional()])
    sort = SelectField("Sort", choices=_choices(SORTS), default="-created")
    cursor = HiddenField(validators=[Optional(), Length(max=512)])

    def params(self) -> dict[str, str]:
        """The valid filters as tasks API query parameters; invalid ones are left out."""
        params: dict[str, str] = {}
        for name in ("q", "status", "priority_min", "tag", "sort", "cursor"):
            field = getattr(self, name)
            if field.data and not field.errors:
                params[name] = field.data
        for name in ("due_after", "due_before"):
            field = getattr(self, name)
            if field.data and not field.errors:
                params[name] = field.data.isoformat()
        return params
