"""Modal dialogs: help (every key of the screen), engine errors, text prompts, yes/no."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text


def key_label(key: str) -> str:
    names = {"left_square_bracket": "[", "right_square_bracket": "]", "left_curly_bracket": "{",
             "right_curly_bracket": "}", "question_mark": "?", "space": "space", "enter": "enter",
             "plus": "+", "minus": "-", "equals_sign": "=", "comma": ",", "full_stop": ".", "escape": "esc", "tab": "tab"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in key.split(","))


class HelpText(VerticalScroll):
    """The help's text, focused: arrows, j k, page up/down, space, home/end scroll it; its border
    says so when it does not fit."""

    BINDINGS = [Binding("j", "scroll_down", show=False), Binding("k", "scroll_up", show=False),
                Binding("space", "page_down", show=False)]
    SCROLL_KEYS = "↑↓ j k PgUp PgDn space Home End: scroll"

    def on_resize(self) -> None:  # also when the text's height changes
        self.border_subtitle = self.SCROLL_KEYS if self.max_scroll_y else ""


class HelpScreen(ModalScreen):
    """Every key of the screen below and of the app, from their bindings (never out of date)."""

    DEFAULT_CSS = """
    /* opaque: the screen below is not drawn again behind the help (bytes over SSH) */
    HelpScreen { align: center middle; background: $background; }
    HelpScreen > HelpText { width: 84; max-width: 95%; height: auto; max-height: 90%; border: round $accent;
                            background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, title: str, about: str, bindings: list[tuple[str, str]]):
        super().__init__()
        self.title_text, self.about, self.bindings = title, about, bindings

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 1))  # a long description wraps within its column
        keys.add_column(no_wrap=True)
        keys.add_column()
        for key, description in self.bindings:
            keys.add_row(Text(f"  {key_label(key)}  "), Text(description))
        intro = Text.from_markup(f"[b]{escape(self.title_text)}[/b]   (esc closes this help)\n{escape(self.about)}\n")
        with HelpText():
            yield Static(Group(intro, keys), id="help-text")

    def on_mount(self) -> None:
        self.query_one(HelpText).focus()


class ErrorScreen(ModalScreen):
    """An engine error in words, its hint and where the details are; never a traceback. `heading`
    says whether the input needs a change (the engine refused it) or the program failed."""

    DEFAULT_CSS = """
    ErrorScreen { align: center middle; }
    ErrorScreen > Vertical { width: 70; max-width: 95%; height: auto; border: heavy $error; background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,enter,q", "dismiss", "close")]

    def __init__(self, message: str, hint: str | None, log_path: str | None, heading: str = "Something went wrong"):
        super().__init__()
        self.message, self.hint, self.log_path, self.heading = message, hint, log_path, heading

    def compose(self) -> ComposeResult:
        lines = [f"[b]{escape(self.heading)}[/b]", "", escape(self.message)]
        if self.hint:
            lines += ["", f"hint: {escape(self.hint)}"]
        if self.log_path:
            lines += ["", f"details: {escape(self.log_path)}"]
        lines += ["", "Nothing saved was lost. Press esc to go on."]
        with Vertical():
            yield Static("\n".join(lines), id="error-text")


class PromptScreen(ModalScreen[str | None]):
    """One line of text; enter gives it back, esc gives None."""

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 60; max-width: 95%; height: auto; border: round $accent; background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, value: str = ""):
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(escape(self.question))
            yield Input(value=self.value, id="answer")
            yield Static("enter: ok   esc: cancel", classes="muted")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 60; max-width: 95%; height: auto; border: round $warning; background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape", "answer(False)", "no")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(escape(self.question) + "\n\ny: yes   n: no")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


HINT_KEYS = "asdfghjklqwertyuiopzxcvbnm"  # home row first: the labels most used are the easiest to type


def hint_labels(count: int) -> list[str]:
    """Labels for `count` targets: one letter each while they suffice, else two letters."""
    if count <= len(HINT_KEYS):
        return list(HINT_KEYS[:count])
    return [a + b for a in HINT_KEYS for b in HINT_KEYS][:count]


class HintScreen(ModalScreen[str | None]):
    """Reads one hint label, typed over the screen below (which draws the labels): gives the
    label back, or None on esc or any other key that starts no label, which then acts on the
    screen below (u undoes, 5 switches step, ...)."""

    DEFAULT_CSS = """
    HintScreen { background: transparent; align: center bottom; }
    HintScreen > Static { width: auto; max-width: 100%; height: auto; background: $warning; color: $text; padding: 0 1;
                          margin-bottom: 1; }
    """

    NEXT_PAGE = "+page"  # what `pages=True` gives back for space or page down

    def __init__(self, labels: list[str], what: str = "a label", *, pages: bool = False):
        super().__init__()
        self.labels, self.what, self.typed, self.pages = set(labels), what, "", pages
        self.answered = False

    def compose(self) -> ComposeResult:
        more = ", space the next page" if self.pages else ""
        yield Static(f"type {escape(self.what)}{more} (esc ends)")

    def on_key(self, event) -> None:
        event.stop()
        event.prevent_default()
        if self.answered:  # typed after the label, before this screen was gone: meant for the screen below
            self.app.call_later(self.app.simulate_key, event.key)
            return
        if event.key == "escape":
            self.answer(None)
            return
        if self.pages and event.key in ("space", "pagedown"):
            self.answer(self.NEXT_PAGE)
            return
        letter = event.character if event.character and event.character in HINT_KEYS else None
        typed = self.typed + (letter or "")
        if letter is None or not any(label.startswith(typed) for label in self.labels):
            self.answer(None)  # no label: the labels go and the key acts below, not swallowed
            self.app.call_later(self.app.simulate_key, event.key)
            return
        self.typed = typed
        if typed in self.labels:
            self.answer(typed)

    def answer(self, result: str | None) -> None:
        self.answered = True
        self.dismiss(result)
