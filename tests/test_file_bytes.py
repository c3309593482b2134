"""An uploaded file's bytes leave the storage with its row, whichever way the row goes
(the API, a queryset, its owner's deletion), and only once that deletion is committed.

Real commits (a transactional database) and the real ``files`` storage, on disk in a
directory of the test's own."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction

from scheduler_app import deployment
from scheduler_app.models import StoredFile
from tests.helpers import client_for, files_stored_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def file_storage(settings, tmp_path):
    return files_stored_in(settings, tmp_path / "files")


@pytest.fixture
def uploader():
    return get_user_model().objects.create_user("uploader", password="uploader-password-1")


def stored(owner, content: bytes = b"listen 8080\n") -> StoredFile:
    name = deployment.store(ContentFile(content, name="app.conf"))
    return StoredFile.objects.create(owner=owner, name="app.conf", size=len(content),
                                     sha256="0" * 64, storage_name=name)  # fmt: skip


def test_deleting_the_row_deletes_its_bytes(uploader, file_storage):
    row = stored(uploader)
    assert (file_storage / row.storage_name).read_bytes() == b"listen 8080\n"
    row.delete()
    assert not (file_storage / row.storage_name).exists()


def test_a_queryset_delete_deletes_every_rows_bytes(uploader, file_storage):
    rows = [stored(uploader, b"one"), stored(uploader, b"two")]
    StoredFile.objects.filter(owner=uploader).delete()
    assert not any((file_storage / row.storage_name).exists() for row in rows)


def test_deleting_the_owner_deletes_their_files_bytes(uploader, file_storage):
    row = stored(uploader)
    uploader.delete()
    assert not StoredFile.objects.exists()
    assert not (file_storage / row.storage_name).exists()


def test_the_api_delete_deletes_the_bytes(uploader, file_storage):
    row = stored(uploader)
    assert client_for(uploader).delete(f"/api/v1/files/{row.pk}/").status_code == 204
    assert not (file_storage / row.storage_name).exists()


def test_a_rolled_back_delete_keeps_the_row_and_its_bytes(uploader, file_storage):
    row = stored(uploader)
    with pytest.raises(RuntimeError), transaction.atomic():
        uploader.delete()
        assert (file_storage / row.storage_name).exists()  # not before the commit
        raise RuntimeError("changed my mind")
    assert StoredFile.objects.filter(pk=row.pk).exists()
    assert (file_storage / row.storage_name).read_bytes() == b"listen 8080\n"


def test_bytes_already_gone_do_not_stop_the_delete(uploader, file_storage):
    row = stored(uploader)
    (file_storage / row.storage_name).unlink()
    row.delete()
    assert not StoredFile.objects.exists()
