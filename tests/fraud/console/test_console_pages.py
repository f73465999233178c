"""What analysts see: the queue, a case page, the dashboard — every value escaped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from fraud.cases.services import case_add_note, case_close
from fraud.models import CaseStatus
from tests.factories import PASSWORD, CaseFactory, TransactionFactory

XSS = "<script>alert('x')</script>"
XSS_IMG = '<img src=x onerror="alert(1)">'


@pytest.fixture
def console(carol) -> Client:
    client = Client()
    client.login(username=carol.username, password=PASSWORD)
    return client


def queue_ids(console: Client, query: str = "") -> list[int]:
    response = console.get("/console/" + query)
    assert response.status_code == 200
    return [c.pk for c in response.context["page"].object_list]


def test_the_queue_filters_and_sorts(console, carol, dave):
    now = datetime.now(UTC)
    small = CaseFactory(score=0.55, amount=Decimal("12"), priority=1.0)
    big = CaseFactory(score=0.95, amount=Decimal("4000"), priority=3.0, assignee=carol, status=CaseStatus.IN_REVIEW)
    old = CaseFactory(
        score=0.75,
        amount=Decimal("300"),
        priority=2.0,
        opened_at=now - timedelta(hours=50),
        due_at=now - timedelta(hours=26),
    )
    closed = CaseFactory(score=0.6, amount=Decimal("50"), priority=1.5)
    case_close(case=closed, actor=dave, outcome="legitimate")

    assert queue_ids(console) == [big.pk, old.pk, small.pk]  # active cases by priority
    assert queue_ids(console, "?assignee=me") == [big.pk]
    assert queue_ids(console, "?assignee=unassigned") == [old.pk, small.pk]
    assert queue_ids(console, "?score_min=0.7&score_max=0.9") == [old.pk]
    assert queue_ids(console, "?amount_min=100") == [big.pk, old.pk]
    assert queue_ids(console, "?older_than_hours=24") == [old.pk]
    assert queue_ids(console, "?overdue=on") == [old.pk]
    assert queue_ids(console, "?status=closed") == [closed.pk]
    assert queue_ids(console, "?sort=amount") == [small.pk, old.pk, big.pk]
    assert queue_ids(console, "?sort=opened") == [old.pk, small.pk, big.pk]
    assert queue_ids(console, "?sort=due")[0] == old.pk


def test_overdue_cases_are_marked(console):
    now = datetime.now(UTC)
    CaseFactory(opened_at=now - timedelta(hours=30), due_at=now - timedelta(hours=6))
    html = console.get("/console/").content.decode()
    assert 'class="overdue"' in html and "Overdue" in html


def test_bad_filters_show_an_error_not_a_crash(console):
    CaseFactory()
    response = console.get("/console/?score_min=high&amount_max=-1&older_than_hours=٣&sort=evil&assignee=<b>&page=zzz")
    assert response.status_code == 200
    assert response.context["form"].errors
    assert len(response.context["page"].object_list) == 1  # the default queue is still shown


def test_the_queue_costs_a_fixed_number_of_queries(console, django_assert_num_queries):
    for _ in range(30):
        CaseFactory()
    # session, user, count, one page of cases with transactions and assignees, the page's
    # related open cases (the "+N related" marks), analysts list, and the session saved again in
    # its own savepoint (savepoint, update, release): that save slides the 15-minute idle
    # timeout forward
    with django_assert_num_queries(9):
        response = console.get("/console/")
    assert len(response.context["page"].object_list) == 25


def test_the_case_page_shows_the_transaction_reasons_history_and_context(console, carol):
    tx = TransactionFactory(
        customer_id="C42",
        merchant_id="M7",
        fraud_score=0.91,
        decision="decline",
        reasons=[
            {
                "code": "AMOUNT_HIGH_FOR_CUSTOMER",
                "value": 8.4,
                "contribution": 0.5,
                "message": "amount is 8.4× this customer's 30-day average",
            }
        ],
    )
    TransactionFactory(
        owner=tx.owner,
        customer_id="C42",
        merchant_id="M9",
        timestamp=tx.timestamp - timedelta(days=2),
        amount=Decimal("17.25"),
    )
    TransactionFactory(
        owner=tx.owner,
        customer_id="C99",
        merchant_id="M7",
        timestamp=tx.timestamp - timedelta(days=3),
        label="fraud",
        label_time=tx.timestamp - timedelta(days=1),
    )
    case = CaseFactory(transaction=tx)
    case_add_note(case=case, author=carol, body="looks like a stolen card")

    html = console.get(f"/console/cases/{case.pk}/").content.decode()
    assert "amount is 8.4× this customer&#x27;s 30-day average" in html
    assert "17.25" in html  # the customer's earlier transaction on the timeline
    assert "1 (100%)" in html  # the merchant's known fraud in the last 7 and 30 days
    assert "case.note_added" in html and carol.username in html and "looks like a stolen card" in html


def test_html_in_ids_and_notes_renders_as_text(console, carol):
    tx = TransactionFactory(
        merchant_id=XSS,
        customer_id=XSS_IMG,
        transaction_id="x<b>1</b>",
        fraud_score=0.9,
        decision="review",
        reasons=[{"code": "X", "value": 1, "contribution": 0.1, "message": XSS}],
    )
    case = CaseFactory(transaction=tx)
    case_add_note(case=case, author=carol, body=XSS_IMG)

    for url in ("/console/", f"/console/cases/{case.pk}/"):
        html = console.get(url).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>1</b>" not in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_actions_from_the_case_page_change_the_case_and_say_so(console, carol):
    case = CaseFactory()
    response = console.post(
        f"/console/cases/{case.pk}/close/", {"outcome": "confirmed_fraud", "note": "confirmed by phone"}, follow=True
    )
    assert "Closed." in response.content.decode()
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED and case.transaction.label == "fraud"
    again = console.post(f"/console/cases/{case.pk}/close/", {"outcome": "legitimate"}, follow=True)
    assert f"case {case.pk} is closed" in again.content.decode()
    invalid = console.post(f"/console/cases/{case.pk}/note/", {"body": ""}, follow=True)
    assert "This field is required." in invalid.content.decode()


def test_bulk_actions_from_the_queue(console, dave):
    cases = [CaseFactory() for _ in range(3)]
    ids = [str(c.pk) for c in cases]
    console.post("/console/bulk/", {"action": "assign", "assignee": str(dave.pk), "cases": ids[:2]})
    assert sorted(c.assignee_id or 0 for c in [type(cases[0]).objects.get(pk=c.pk) for c in cases]) == [
        0,
        dave.pk,
        dave.pk,
    ]
    response = console.post("/console/bulk/", {"action": "close", "outcome": "", "cases": ids}, follow=True)
    assert "Choose an outcome." in response.content.decode()
    console.post("/console/bulk/", {"action": "close", "outcome": "legitimate", "cases": ids})
    assert {type(cases[0]).objects.get(pk=c.pk).status for c in cases} == {CaseStatus.CLOSED}


def test_take_next_takes_me_to_my_case(console, carol):
    case = CaseFactory()
    response = console.post("/console/take-next/")
    assert response.status_code == 302 and response["Location"] == f"/console/cases/{case.pk}/"
    empty = console.post("/console/take-next/", follow=True)
    assert "No unassigned open cases left" in empty.content.decode()


def test_the_dashboard_draws_charts_from_our_own_markup(console, carol):
    now = datetime.now(UTC)
    for i in range(5):
        TransactionFactory(
            timestamp=now - timedelta(days=i), fraud_score=0.1 * i, decision="approve" if i < 3 else "review"
        )
    case = CaseFactory()
    case_close(case=case, actor=carol, outcome="confirmed_fraud")
    html = console.get("/console/dashboard/").content.decode()
    assert html.count("<svg") == 4
    assert "Transactions per day" in html and "Confirmed-fraud rate by transaction day" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
    assert "50.00%" in html  # yesterday: the case's transaction (confirmed fraud) and one other


def svg_texts(svg: str, css_class: str) -> list[str]:
    return re.findall(rf'<text[^>]*class="{css_class}"[^>]*>([^<]*)</text>', svg)


def test_the_decision_mix_shows_all_three_decisions_on_a_log_axis_from_one(console):
    now = datetime.now(UTC)
    for i in range(120):
        TransactionFactory(timestamp=now - timedelta(hours=i), fraud_score=0.05, decision="approve")
    for i in range(3):
        TransactionFactory(timestamp=now - timedelta(hours=i), fraud_score=0.6, decision="review")
    chart = console.get("/console/dashboard/").context["decision_chart"]
    ticks = svg_texts(chart, "tick")
    assert ticks[-3:] == ["approve", "review", "decline"]  # the decline bar is there, at 0
    assert svg_texts(chart, "value") == ["120", "3", "0"]
    assert ticks[:4] == ["1", "10", "100", "1,000"]  # the log axis starts at 1, not "0"
    assert svg_texts(chart, "axis-title") == ["Decision", "Transactions (log scale)"]


def test_the_confirmed_fraud_rate_is_a_line_over_the_labelled_days(console):
    now = datetime.now(UTC)
    for day in range(10):
        for i in range(4):
            TransactionFactory(
                timestamp=now - timedelta(days=day, minutes=i),
                label="fraud" if i == 0 else "",
                label_time=now if i == 0 else None,
            )
    chart = console.get("/console/dashboard/").context["rate_chart"]
    assert chart.count("<circle") >= 10 and "<polyline" in chart
    assert "25.0%" in chart  # one of each day's four transactions
    assert "Transaction day (UTC, month-day)" in chart


def test_an_analyst_uploads_a_batch_watches_it_and_downloads_the_results(console, alice, active_model, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from fraud.models import BatchJob
    from tests.fraud.batches.test_batch_jobs import HEADER, good_rows
    from tests.helpers import run_batch_job

    settings.BATCH_CHUNK_SIZE = 3
    upload = SimpleUploadedFile("mine.csv", ("\n".join([HEADER, *good_rows(5)]) + "\n").encode())
    response = console.post("/console/batches/", {"client": alice.pk, "file": upload})
    job = BatchJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/console/batches/{job.pk}/"
    assert job.owner == alice and job.total == 5

    page = console.get(f"/console/batches/{job.pk}/").content.decode()
    assert 'http-equiv="refresh"' in page and 'value="0"' in page  # live progress while queued
    run_batch_job(job.pk)
    page = console.get(f"/console/batches/{job.pk}/").content.decode()
    assert 'http-equiv="refresh"' not in page and "Download results" in page and "100%" in page
    csv_text = b"".join(console.get(f"/console/batches/{job.pk}/results.csv").streaming_content).decode()
    assert csv_text.splitlines()[0].startswith("row,transaction_id,status") and len(csv_text.splitlines()) == 6


def test_a_bad_console_upload_says_what_is_wrong(console, alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = console.post(
        "/console/batches/", {"client": alice.pk, "file": SimpleUploadedFile("x.csv", b"a,b\n1,2\n")}
    )
    assert response.status_code == 200 and "missing columns" in response.content.decode()


def test_the_drift_page_charts_reports(console, active_model):
    from datetime import date

    from fraud.models import DriftReport

    assert "No drift report yet" in console.get("/console/drift/").content.decode()
    for d in range(1, 4):
        DriftReport.objects.create(
            day=date(2026, 11, d),
            model_version=active_model,
            n=100,
            score_psi=0.05 * d,
            feature_psi={"amount_log": 0.3, "c_n_1h": 0.01},
        )
    html = console.get("/console/drift/").content.decode()
    assert "<svg" in html and "amount_log" in html and "0.150" in html
