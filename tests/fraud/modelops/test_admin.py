"""A model version's admin page shows what training stored as tables and lists, escaped, and
its list stays short."""

from __future__ import annotations

import re

from fraud.models import ModelStatus
from tests.factories import PASSWORD, ModelVersionFactory, trained_metrics


def _figures(page: str, caption: str) -> dict[str, list[str]]:
    """The rows of one figures table on the page (the one in the field ``caption``), by label."""
    field = re.search(rf'<div class="form-row field-{caption}">(.*?)</div>\s*</div>\s*</div>', page, re.S)
    assert field, f"no {caption} on the page"
    rows = re.findall(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', field.group(1), re.S)
    return {label: re.findall(r'<td class="cg-num">(.*?)</td>', cells) for label, cells in rows}


def test_a_model_versions_page_shows_its_figures_as_tables_and_no_json(client, dave):
    version = ModelVersionFactory(trained=True, metrics=trained_metrics(champion="fb-20260301-031502-118305"))
    client.login(username=dave.username, password=PASSWORD)
    page = client.get(f"/admin/fraud/modelversion/{version.pk}/change/").content.decode()

    figures = _figures(page, "figures_table")
    assert figures["AUC ROC"] == ["0.9712", "0.9931", "0.9623"]
    assert figures["Average precision"] == ["0.6843", "0.8126", "0.6412"]
    assert figures["Transactions"] == ["48,213", "152,904", "48,213"]
    assert figures["Fraud rate"] == ["0.85%", "0.90%", "0.85%"]
    assert "fb-20260301-031502-118305" in page  # the active model compared with
    calibration = _figures(page, "calibration_table")
    assert calibration["Expected calibration error"] == ["0.0123", "0.0019"]
    assert "slope 1.0735, intercept -0.3522" in page
    assert _figures(page, "other_figures")["Largest difference between the ONNX export and scikit-learn"] == [
        "2.98e-07"
    ]
    assert "<code>AMOUNT_HIGH_FOR_CUSTOMER</code>" in page and "<code>amount_log</code>" in page
    assert f"{len(version.feature_names)} inputs" in page

    # The stored JSON itself is never on the page, nor its keys; and there is nothing to save.
    content = page[page.index('id="content"') :]
    assert "{" not in re.sub(r"<script.*?</script>", "", content, flags=re.S)
    for key in ('"auc_roc"', "auc_roc", "neutral_values", "&quot;"):
        assert key not in content
    assert 'name="_save"' not in page


def test_what_training_stored_is_escaped_on_the_page(client, dave):
    metrics = trained_metrics(champion="<img src=x onerror=alert(1)>")
    metrics["validation"]["<script>alert(2)</script>"] = 0.5
    version = ModelVersionFactory(trained=True, metrics=metrics, feature_names=["<b>amount</b>", "amount_log"])
    client.login(username=dave.username, password=PASSWORD)
    page = client.get(f"/admin/fraud/modelversion/{version.pk}/change/").content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page and "<script>alert(2)" not in page
    assert "<code>&lt;b&gt;amount&lt;/b&gt;</code>" in page


def test_a_model_stored_without_figures_says_so(client, dave):
    version = ModelVersionFactory(metrics={}, calibration={})
    client.login(username=dave.username, password=PASSWORD)
    response = client.get(f"/admin/fraud/modelversion/{version.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "No figures stored for this model." in page
    assert "None fitted: scores are the model&#x27;s own output." in page


def test_the_list_shows_the_deciding_figures_in_short_columns(client, dave, django_assert_num_queries):
    active = ModelVersionFactory(trained=True, status=ModelStatus.ACTIVE)
    ModelVersionFactory(trained=True, shadow=True, metrics=trained_metrics(champion=active.version))
    client.login(username=dave.username, password=PASSWORD)
    client.get("/admin/fraud/modelversion/")  # the session's first request loads more
    # The same queries whatever the number of versions (session and user, two counts, the
    # sidebar's thresholds check, the page, the algorithm filter, the session's save): the figures
    # come from the row itself, and its artifact (megabytes) is never read.
    ModelVersionFactory.create_batch(3, trained=True)
    with django_assert_num_queries(10) as queries:
        page = client.get("/admin/fraud/modelversion/").content.decode()
    assert not any('"artifact"' in q["sql"].split(" FROM ")[0] for q in queries.captured_queries)
    rows = re.findall(r"<tr>.*?</tr>", page[page.index("<tbody>") :], re.S)
    assert len(rows) == 5
    shadow_row = next(r for r in rows if "in shadow" in r)
    assert re.findall(r'<td class="field-validation_ap">(.*?)</td>', shadow_row) == ["0.6843"]
    assert "0.6412" in shadow_row  # the active model's AP on the same rows
