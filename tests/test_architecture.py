"""The shape of the code: the import graph, and migrations that match the models."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from importlinter.cli import lint_imports

from tests.processes import ROOT


def test_every_import_points_down_and_no_package_imports_itself_in_a_cycle():
    # given the contracts in pyproject.toml ([tool.importlinter])
    # when the project's import graph is checked (every import, those inside functions too)
    exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)

    # then every contract is kept (the report above says which import broke one)
    assert exit_code == 0


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    # when Django compares the models with the migrations
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
    except SystemExit:
        # then it finds nothing to write
        pytest.fail(f"A model change has no migration (run `python manage.py makemigrations`):\n{out.getvalue()}")
