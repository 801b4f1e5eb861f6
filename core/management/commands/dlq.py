"""``manage.py dlq list | replay | purge``: look at, replay and delete dead-lettered task messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.exceptions import OperationalError as BrokerError

from core.dead_letters import (
    LIST_LIMIT,
    SCAN_LIMIT,
    DeadLetteredMessage,
    DeadLetterError,
    DeadLetterResult,
    dead_letter_list,
    dead_letter_purge,
    dead_letter_replay,
)

MAX_SHOWN_ARGUMENT_CHARS = 200
# The most a listing may ask for: every letter listed is held in memory, here and by the broker.
MAX_LIST_LIMIT = SCAN_LIMIT


def _short(value: Any, limit: int = MAX_SHOWN_ARGUMENT_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# How the audit trail names who replayed or purged from the command line.
COMMAND_ACTOR = "manage.py dlq"


class Command(BaseCommand):
    help = "Dead-lettered task messages: list them, replay them to their original queue, or purge them."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,replay,purge}")

        listing = actions.add_parser("list", help="show the dead letters without removing them")
        listing.add_argument("--queue", help="only this queue's dead letters (e.g. notifications)")
        listing.add_argument("--json", action="store_true", help="print a JSON array")
        listing.add_argument(
            "--limit",
            type=int,
            default=LIST_LIMIT,
            help=f"show at most this many, the oldest first (default {LIST_LIMIT}, at most {MAX_LIST_LIMIT})",
        )

        for name, help_text in (
            ("replay", "send dead letters back to their original queue"),
            ("purge", "delete dead letters for good"),
        ):
            sub = actions.add_parser(name, help=help_text)
            sub.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids, as `dlq list` shows them")
            sub.add_argument("--all", action="store_true", help="every dead letter (of --queue, if given)")
            sub.add_argument("--queue", help="only this queue's dead letters (e.g. notifications)")
            if name == "purge":
                sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
            else:
                sub.add_argument(
                    "--dry-run", action="store_true", help="show what would be replayed, and how; change nothing"
                )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            if action == "list":
                self._list(queue=options["queue"], as_json=options["json"], limit=options["limit"])
                return
            ids = self._ids(options["ids"], every=options["all"])
            if action == "replay":
                self._replay(ids=ids, queue=options["queue"], dry_run=options["dry_run"])
            else:
                self._purge(ids=ids, queue=options["queue"], assume_yes=options["yes"])
        except DeadLetterError as exc:
            raise CommandError(str(exc)) from exc
        except BrokerError as exc:
            raise CommandError(f"RabbitMQ is unavailable: {exc}") from exc

    @staticmethod
    def _ids(ids: list[str], *, every: bool) -> list[str] | None:
        if every and ids:
            raise CommandError("Give dead letter IDs or --all, not both.")
        if not every and not ids:
            raise CommandError("Give the IDs of the dead letters, or --all.")
        return None if every else ids

    def _list(self, *, queue: str | None, as_json: bool, limit: int) -> None:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise CommandError(f"--limit must be between 1 and {MAX_LIST_LIMIT}.")
        letters = dead_letter_list(queue=queue, limit=limit)
        if as_json:
            # A JSON array, as before; how many were left unread goes to stderr.
            self.stdout.write(json.dumps([letter.as_json() for letter in letters], indent=2, default=str))
        else:
            for letter in letters:
                self.stdout.write(self._describe(letter))
            self.stdout.write(f"{len(letters)} dead letter(s).")
        if letters.more:
            self.stderr.write(
                f"{letters.more} more dead letter(s) not shown (the oldest {len(letters)} are); "
                "use --limit, or --queue, to see others."
            )

    def _describe(self, letter: DeadLetteredMessage) -> str:
        died = letter.died_at.isoformat() if letter.died_at else "?"
        return "\n".join(
            [
                self.style.WARNING(letter.id),
                f"  queue:  {letter.queue} (in {letter.dead_letter_queue}, "
                f"dead {letter.death_count} time(s), last at {died}, {letter.reason})",
                f"  task:   {letter.task or '-'}",
                f"  args:   {_short(letter.args)}  kwargs: {_short(letter.kwargs)}",
                f"  error:  {letter.error}",
            ]
        )

    def _report_not_found(self, result: DeadLetterResult) -> None:
        for letter, reason in result.skipped:
            self.stderr.write(f"Skipped {letter.id}: {reason}")
        if result.unread:
            self.stderr.write(
                f"Only the oldest {SCAN_LIMIT} dead letters were read; {result.unread} more were left for another run."
            )
        if result.not_found:
            among = f" among the oldest {SCAN_LIMIT}" if result.unread else ""
            raise CommandError(f"No dead letter with ID {', '.join(result.not_found)}{among}.")
        if result.skipped:
            raise CommandError(f"{len(result.skipped)} dead letter(s) could not be replayed.")

    def _replay(self, *, ids: list[str] | None, queue: str | None, dry_run: bool) -> None:
        verb = "Would replay" if dry_run else "Replayed"

        def progress(letter: DeadLetteredMessage, note: str) -> None:
            self.stdout.write(f"{verb} {letter.id} ({letter.task or 'raw message'}) {note}")

        result = dead_letter_replay(ids=ids, queue=queue, on_done=progress, dry_run=dry_run, actor_name=COMMAND_ACTOR)
        self.stdout.write(self.style.SUCCESS(f"{verb} {len(result.done)} dead letter(s)."))
        if dry_run:
            self.stdout.write("Dry run: nothing was replayed or removed.")
        self._report_not_found(result)

    def _purge(self, *, ids: list[str] | None, queue: str | None, assume_yes: bool) -> None:
        def confirm(letters: Sequence[DeadLetteredMessage]) -> bool:
            for letter in letters:
                self.stdout.write(f"  {letter.id}  {letter.queue}  {letter.task or 'raw message'}")
            if assume_yes:
                return True
            answer = input(f"Delete these {len(letters)} dead letter(s) for good? [y/N] ")
            return answer.strip().lower() in ("y", "yes")

        result = dead_letter_purge(ids=ids, queue=queue, confirm=confirm, actor_name=COMMAND_ACTOR)
        if result.cancelled:
            self.stdout.write("Nothing deleted.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Deleted {len(result.done)} dead letter(s)."))
        self._report_not_found(result)
