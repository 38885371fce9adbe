"""Files and the unserved experiments through the SDK against ``stepwell serve``.

``client.files`` list/get/create_upload/complete_upload/get_download_link over the
server's file store (a run's documents are files too; an uploaded file is a run
document by reference), and ``client.workflows.experiments`` answering 501.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest
from retab import Retab
from retab.types.mime import FileRef

from tests.engine.sdk_server import (
    DOCUMENT_SPEC,
    INVOICE_PDF,
    KEY_A,
    KEY_B,
    ServeProcess,
    error_of,
    wait_for,
)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("files")) as process:
        yield process


@pytest.fixture(scope="module")
def a(serve: ServeProcess) -> Retab:
    return serve.client(KEY_A)


@pytest.fixture(scope="module")
def b(serve: ServeProcess) -> Retab:
    return serve.client(KEY_B)


def upload(client: Retab, data: bytes, name: str) -> tuple[str, object]:
    opened = client.files.create_upload(name, len(data), content_type="application/pdf",
                                        sha256=hashlib.sha256(data).hexdigest())
    put = httpx.put(opened.upload_url, content=data, headers=opened.upload_headers, timeout=30)
    assert put.status_code == 200, put.text
    return opened.file_id, client.files.complete_upload(opened.file_id,
                                                        sha256=hashlib.sha256(data).hexdigest())


def test_upload_then_run_with_the_file(a: Retab, b: Retab) -> None:
    data = INVOICE_PDF.read_bytes()
    upload_id, mime = upload(a, data, "march.pdf")
    assert mime.filename == "march.pdf" and "/v1/files/" in mime.url
    file_id = mime.url.split("/v1/files/")[1].split("/")[0]
    info = a.files.get(file_id)
    assert (info.filename, info.mime_type) == ("march.pdf", "application/pdf")
    assert a.files.get(upload_id).id == file_id  # the upload id names the file too
    link = a.files.get_download_link(file_id)
    body = httpx.get(link.download_url, headers={"Api-Key": KEY_A}, timeout=30)
    assert body.content == data
    assert file_id in [f.id for f in a.files.list(limit=100).data]
    assert [f.id for f in a.files.list(filename="marc", limit=100).data] == [file_id]

    wid = a.workflows.apply(DOCUMENT_SPEC).workflow_id
    run = a.workflows.runs.create(wid, documents={"upload": FileRef(
        id=file_id, filename="march.pdf", mime_type="application/pdf")})
    assert wait_for(a, run.id).lifecycle.status == "completed"
    assert a.workflows.runs.get(run.id).inputs.documents["upload"].id == file_id

    for call in (lambda: b.files.get(file_id), lambda: b.files.get_download_link(file_id),
                 lambda: b.files.complete_upload(upload_id)):
        assert error_of(call).status_code == 404
    assert file_id not in [f.id for f in b.files.list(limit=100).data]
    stolen = error_of(lambda: b.workflows.runs.create(
        b.workflows.apply(DOCUMENT_SPEC).workflow_id,
        documents={"upload": {"filename": "x.pdf", "url": mime.url}}))
    assert stolen.status_code == 404
    assert httpx.get(link.download_url, headers={"Api-Key": KEY_B}).status_code == 404


def test_run_documents_are_listed_as_files(b: Retab) -> None:
    wid = b.workflows.apply(DOCUMENT_SPEC).workflow_id
    run = wait_for(b, b.workflows.runs.create(wid, documents={"upload": INVOICE_PDF}).id)
    document = run.inputs.documents["upload"]
    assert b.files.get(document.id).filename == "invoice.pdf"  # org_b's own entry
    assert [f.id for f in b.files.list(limit=100).data] == [document.id]


def test_uploads_that_do_not_match_are_refused(a: Retab, serve: ServeProcess) -> None:
    data = b"%PDF-1.4 a tiny file"
    opened = a.files.create_upload("tiny.pdf", len(data) + 5)
    short = httpx.put(opened.upload_url, content=data)
    assert short.status_code == 422
    incomplete = error_of(lambda: a.files.complete_upload(opened.file_id))
    assert incomplete.status_code == 409
    wrong_token = httpx.put(opened.upload_url.replace("token=", "token=x"), content=data)
    assert wrong_token.status_code == 404
    checked = a.files.create_upload("tiny.pdf", len(data), sha256="0" * 64)
    assert httpx.put(checked.upload_url, content=data).status_code == 422
    http = serve.http(KEY_A)
    assert http.post("/v1/files/upload", json={"filename": "x", "size_bytes": 0}
                     ).status_code == 422
    assert http.post("/v1/files/upload", json={"filename": "x", "size_bytes": 3,
                                               "sha256": "nothex"}).status_code == 422
    assert error_of(lambda: a.files.get("file_missing")).status_code == 404


def test_blueprints_and_experiments_answer_501(a: Retab, serve: ServeProcess) -> None:
    blueprint = error_of(lambda: a.files.create_blueprint("file_x"))
    assert blueprint.status_code == 501 and blueprint.code == "NOT_IMPLEMENTED"
    experiments = a.workflows.experiments
    for call in (lambda: experiments.list(workflow_id="wf_x"),
                 lambda: experiments.get("exp_x"),
                 lambda: experiments.delete("exp_x"),
                 lambda: experiments.runs.list(experiment_id="exp_x"),
                 lambda: experiments.runs.get("exprun_x"),
                 lambda: experiments.runs.cancel("exprun_x"),
                 lambda: experiments.results.get("expres_x")):
        refused = error_of(call)
        assert refused.status_code == 501 and "Retab's cloud" in refused.message
    unauthenticated = httpx.get(f"{serve.url}/v1/workflows/experiments")
    assert unauthenticated.status_code == 401
