from __future__ import annotations

import getpass
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relabel.roles import ROLES, grant_role


class Command(BaseCommand):
    help = (
        "Creates a user (or updates an existing one) with a role: annotator, adjudicator, "
        "researcher, admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.add_argument("--password", help="Prompted for when not given.")
        parser.add_argument("--email", default="")

    def handle(self, *args: Any, **opts: Any) -> None:
        password = opts["password"] or self._ask_password()
        User = get_user_model()
        user, created = User.objects.get_or_create(username=opts["username"])
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(
                f"password for {user.username!r}: {' '.join(exc.messages)}"
            ) from None
        user.set_password(password)
        user.email = opts["email"] or user.email
        user.is_staff = opts["role"] == "admin"
        user.save()
        grant_role(user, opts["role"])
        verb = "created" if created else "updated"
        self.stdout.write(f"{verb} {user.username} with role {opts['role']}")

    def _ask_password(self) -> str:
        if not sys.stdin.isatty():
            raise CommandError("no password given: pass --password when there is no terminal")
        first = getpass.getpass("Password: ")
        again = getpass.getpass("Password (again): ")
        if first != again:
            raise CommandError("the two passwords differ")
        if not first:
            raise CommandError("a password is required")
        return first
