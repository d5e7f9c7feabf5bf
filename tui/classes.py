"""Adding, renaming and deleting classes on the curation screen (keys N, r, d)."""
from __future__ import annotations

import simsearch

from .dialogs import ConfirmScreen, PromptScreen


class ClassActions:
    """Mixed into the curation screen: it has `class_name`, `choose_class`, `refresh_view` and `update_step_bar`."""

    def action_new_class(self) -> None:
        def created(name: str | None) -> None:
            if not name:
                return
            try:
                self.app.curation.add_class(name)
            except simsearch.SimSearchError as error:
                self.app.show_error(error)
                return
            self.app.remember(f"new class {name}", "delete_class", {"name": name})
            self.choose_class(name)
            self.refresh_view()
            self.update_step_bar()

        self.app.push_screen(PromptScreen("Name of the new class:"), created)

    def action_rename_class(self) -> None:
        old = self.class_name
        if old is None:
            return

        def renamed(new: str | None) -> None:
            if not new or new == old:
                return
            try:
                with self.app.engine_lock:
                    self.app.curation.rename_class(old, new)
            except simsearch.SimSearchError as error:
                self.app.show_error(error)
                return
            self.app.remember(f"renaming {old}", "rename_class", {"old": new, "new": old})
            self.class_name = new
            self.refresh_view()

        self.app.push_screen(PromptScreen(f"New name for {old}:", old), renamed)

    def action_delete_class(self) -> None:
        name = self.class_name
        if name is None:
            return
        prototypes = len(self.app.curation.prototypes(name))

        def answered(yes: bool) -> None:
            if not yes:
                return
            with self.app.engine_lock:
                saved = self.app.curation.delete_class(name)
            self.app.remember(f"deleting class {name}", "restore_class", {"file": str(saved)})
            self.notify(f"class {name} deleted (u undoes it)")
            self.choose_class(None)
            self.refresh_view()
            self.update_step_bar()

        self.app.push_screen(ConfirmScreen(f"Delete class {name} with its {prototypes} prototype(s), negatives and positives? "
                                           "(u brings it back)"), answered)
